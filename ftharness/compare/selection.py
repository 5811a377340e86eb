"""Choosing one finalist per sweep without the eval set: feasible first, then the decision metric.

Every point of a sweep is trained and served on the validation rows (the same prompt, decoding and suites
it would meet on the eval set, carved from the training data by ``ftharness.data.split``) and scored by
the suites that read outputs. A metric of the model that can measure without touching what the eval run
is judged on declares ``selection_settings`` (forgetting: ``{"part": "selection"}``, the selection part of
its general-text reference, which shares no document with the test part the gate is judged on); those
run too. Every gate of the task and its suites that these values reach is checked on them; a point is
**feasible** when each of those gates passed (an interval that straddles its threshold is not a pass).

The finalist is, in order (feasible first, as Optuna's constrained samplers rank trials):

1. a feasible point before any infeasible one; among infeasible points, fewer gates not passed first
   (the least-bad point when none is feasible, and the selection record says none was);
2. the best decision metric on validation (``decision.metric``, the metric "better" is judged on);
3. then the higher strict parse rate (``format.parse_rate``), where the task measures it;
4. then the lower validation loss (the completion loss the trainer logged on the validation rows);
5. then the name, so ties resolve the same way on every machine.

Only finalists meet the eval set and its statistics: a choice among N points made on the eval set would
report the best of N draws of eval noise as the winner's score.

**Successive halving** (``sweep_strategy: halving``; Jamieson & Talwalkar 2016, "Non-stochastic Best Arm
Identification and Hyperparameter Optimization"; its asynchronous form is Li et al. 2020, ASHA): with
reduction factor ``eta`` (``halving.eta``, 2) and ``R`` rungs (enough for one point to remain), every point
first trains ``full / eta**(R-1)`` of its optimizer steps, is validated, and the best ``ceil(n / eta)`` by
the order above continue to ``full / eta**(R-2)`` steps, and so on until the survivors reach the full
budget. ``halving.first`` sets the first rung's share of the budget instead (Hyperband's minimum budget,
Li et al. 2018): each next rung trains ``eta`` times more, the last the full budget, and whoever is left
there is validated at the end and ranked. A first rung too short to judge on misleads: a setting that
slows early learning (replay) ranks last early and may rank first at the end. A point
continues from its own checkpoint with the learning-rate schedule of its full budget, so a point that
reaches the last rung is the same training as the grid's point of the same settings (and shares its
cached artifact). :func:`halving_budgets` gives the rungs.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from ftharness.report.records import SweepPoint

PARSE_METRIC = "format.parse_rate"
ETA = 2  # Jamieson & Talwalkar 2016 and Li et al. 2020 use 2-4; 2 keeps the most points on a small grid


def selection_key(point: SweepPoint, metric: str, higher_is_better: bool) -> tuple:
    """Sort key of one validated point (smaller sorts first = better)."""
    value = point.metrics.get(metric)
    primary = float("inf") if value is None else (-value if higher_is_better else value)
    parse = point.metrics.get(PARSE_METRIC)
    loss = point.validation_loss
    return (
        point.feasible is False,
        sum(1 for g in point.gates if not g.passed),
        primary,
        -parse if parse is not None else 0.0,
        loss if loss is not None else float("inf"),
        point.name,
    )


def rank(points: list[SweepPoint], metric: str, higher_is_better: bool = True) -> list[SweepPoint]:
    """``points`` best first."""
    return sorted(points, key=lambda p: selection_key(p, metric, higher_is_better))


def choose(points: list[SweepPoint], metric: str, higher_is_better: bool = True) -> str:
    """The name of the finalist among validated ``points``."""
    if not points:
        raise ValueError("a sweep without points has no finalist")
    return rank(points, metric, higher_is_better)[0].name


def halving_budgets(full_steps: int, n_points: int, eta: int = ETA, first: float | None = None) -> list[int]:
    """The optimizer steps of each rung, last = ``full_steps``, none shorter than one step, no two equal.
    ``first`` None: as many rungs as it takes to keep one point (``ceil(log_eta n)`` + 1), the first at
    ``full / eta**(rungs - 1)``; else the first rung trains ``first`` of the full budget and each next
    one ``eta`` times more, the last cut to the full budget (Hyperband's minimum budget, Li et al. 2018)."""
    if first is None:
        rungs = 1 + (math.ceil(math.log(n_points, eta)) if n_points > 1 else 0)
        budgets = [max(1, full_steps // eta ** (rungs - 1 - r)) for r in range(rungs)]
        return sorted(set(budgets))
    if n_points <= 1:
        return [full_steps]
    budgets, steps = [], max(1, round(full_steps * first))
    while steps < full_steps:
        budgets.append(steps)
        steps *= eta
    return sorted({*budgets, full_steps})


def survivors(n: int, eta: int = ETA) -> int:
    """How many of ``n`` validated points go on to the next rung."""
    return max(1, math.ceil(n / eta))


def selection_suite(suite: Any) -> Any | None:
    """The part of ``suite`` a sweep may read: its metrics of the outputs, and its metrics of the model that
    declare ``selection_settings`` (run with those settings), with the gates on what is left; None when
    nothing is left."""
    from ftharness.plugins import metrics as installed_metrics

    available = installed_metrics()
    kept: dict[str, dict[str, Any]] = {}
    for name, settings in suite.metrics.items():
        metric = available.get(name)
        if metric is None or not getattr(metric, "needs_model", False):
            kept[name] = settings
        elif getattr(metric, "selection_settings", None):
            kept[name] = {**settings, **metric.selection_settings}
    if not kept:
        return None
    return dataclasses.replace(suite, metrics=kept, gates=[g for g in suite.gates if g.metric in kept])
