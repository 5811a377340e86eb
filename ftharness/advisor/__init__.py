"""`ftharness advise`: should we finetune at all, and how? Rules from the literature, made explicit.

``load_scenario(path) -> Scenario`` reads and checks a scenario file; ``advise(scenario) -> Advice``
decides; ``Advice.to_dict()`` is the ``--json`` output.
"""

from ftharness.advisor.decide import Advice, Alternative, advise
from ftharness.advisor.scenario import Scenario, load_scenario, scenario_from_mapping

__all__ = ["Advice", "Alternative", "Scenario", "advise", "load_scenario", "scenario_from_mapping"]
