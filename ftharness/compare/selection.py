"""Choosing one finalist per sweep on the validation split, never on the eval set.

Every point of a sweep is trained; each is then served on the validation rows (the same prompt, decoding
and suites it would meet on the eval set, carved from the training data by ``ftharness.data.split``) and
scored. The finalist is the point with, in order:

1. the best decision metric on validation (``decision.metric``, the metric "better" is judged on);
2. then the higher strict parse rate (``format.parse_rate``), where the task measures it;
3. then the lower validation loss (the completion loss the trainer logged on the validation rows);
4. then the name, so ties resolve the same way on every machine.

Only finalists meet the eval set and its statistics: a choice among N points made on the eval set would
report the best of N draws of eval noise as the winner's score.
"""

from __future__ import annotations

from ftharness.report.records import SweepPoint

PARSE_METRIC = "format.parse_rate"


def selection_key(point: SweepPoint, metric: str, higher_is_better: bool) -> tuple:
    """Sort key of one validated point (smaller sorts first = better)."""
    value = point.metrics.get(metric)
    primary = float("inf") if value is None else (-value if higher_is_better else value)
    parse = point.metrics.get(PARSE_METRIC)
    loss = point.validation_loss
    return (
        primary,
        -parse if parse is not None else 0.0,
        loss if loss is not None else float("inf"),
        point.name,
    )


def choose(points: list[SweepPoint], metric: str, higher_is_better: bool = True) -> str:
    """The name of the finalist among validated ``points``."""
    if not points:
        raise ValueError("a sweep without points has no finalist")
    return min(points, key=lambda p: selection_key(p, metric, higher_is_better)).name
