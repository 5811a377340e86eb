"""`ftharness advise`: should we finetune at all, and how? Rules from the literature, made explicit.

``load_scenario(path) -> Scenario`` reads and checks a scenario file; ``advise(scenario) -> Advice``
decides; ``Advice.to_dict()`` is the ``--json`` output.

The names are loaded on first use (PEP 562): every command's parser reads the scenario's fields for
advise's flags, and only advise needs the rules and the planner behind them.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_WHERE = {
    "Advice": "decide",
    "Alternative": "decide",
    "advise": "decide",
    "Scenario": "scenario",
    "load_scenario": "scenario",
    "scenario_from_mapping": "scenario",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
