"""The pluggy contract between the ftharness core and its plugins.

Each hook receives a ``register`` callable; a plugin calls it once per thing it provides, as
``llm``'s ``register_models`` does. The objects registered follow the protocols named in each hook's
docstring. Built-in plugins live in ``plugins/`` (the ``ftharness_plugins`` package); third-party
plugins declare an entry point in the group ``ftharness``::

    [project.entry-points.ftharness]
    my_trainer = "my_package.my_module"
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("ftharness")
hookimpl = pluggy.HookimplMarker("ftharness")


@hookspec
def register_trainers(register: Callable[[Any], None]) -> None:
    """Register trainers: objects following :class:`ftharness.training.trainer.Trainer`.

    A trainer declares the methods it can train and whether it needs CUDA, and trains one candidate
    into an artifact folder.
    """


@hookspec
def register_metrics(register: Callable[[Any], None]) -> None:
    """Register metrics: objects following :class:`ftharness.suites.metric.Metric`.

    A metric scores an option's generations (or the model itself, for forgetting) and returns named
    values that suites gate on, e.g. ``format.parse_rate``.
    """


@hookspec
def register_toxicity_scorers(register: Callable[[Any], None]) -> None:
    """Register toxicity scorers: objects following :class:`ftharness.suites.toxicity.ToxicityScorer`."""


@hookspec
def register_report_sections(register: Callable[[Any], None]) -> None:
    """Register extra sections of ``report.html``: objects following
    :class:`ftharness.report.sections.ReportSection`."""
