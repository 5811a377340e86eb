"""Gates: ``format.parse_rate: ">= 0.98"`` parsed once, checked against a metric's values.

A gate never passes on a value that is missing or not a finite number: a metric that could not
measure something has not shown that it is good enough.

A value that comes with a confidence interval (``MetricResult.intervals``) is read the way the decision
reads a difference between options: the gate **passed** when the whole interval meets the threshold,
**failed** when none of it does, and is **inconclusive** when the interval straddles the threshold.
An inconclusive gate does not pass (nothing has shown the value is good enough); its message says that
more data would settle it.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftharness.errors import BadInput
from ftharness.jsonrecord import doc

OPS = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}
_EXPR = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
_NAME = re.compile(r"^[A-Za-z_][\w-]*\.[A-Za-z_][\w.-]*$")


@dataclass(frozen=True)
class Gate:
    name: str  # "format.parse_rate"
    op: str
    threshold: float

    @property
    def metric(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def value(self) -> str:
        return self.name.split(".", 1)[1]

    @property
    def text(self) -> str:
        return f"{self.name} {self.op} {self.threshold:g}"


@dataclass
class GateOutcome:
    """One gate checked against what was measured."""

    name: str = doc("the gated value, METRIC.VALUE (format.parse_rate)")
    op: str = doc("the comparison: >=, <=, >, <, == or !=")
    threshold: float = doc("the number the value is compared with")
    value: float | None = doc("the measured value; null when it was not measured or not a finite number")
    passed: bool = doc("the value is measured, finite and meets the threshold")
    message: str = doc("one line saying what was measured and the verdict, or why nothing was")
    suite: str | None = doc(
        "the suite the gate belongs to ('task' for a task file's own gates; null when checked alone)",
        default=None,
    )
    verdict: str = doc("passed, failed, inconclusive (an interval straddles the threshold) or not measured",
                       default="")
    interval: list[float] | None = doc("the value's confidence interval [low, high], when its metric gives one",
                                       default=None)

    def __post_init__(self) -> None:
        if not self.verdict:
            self.verdict = "passed" if self.passed else ("not measured" if self.value is None else "failed")


def parse_gate(name: Any, expr: Any, *, file: str | Path | None = None) -> Gate:
    """``("format.parse_rate", ">= 0.98")`` -> :class:`Gate`; anything else is a BadInput naming the
    gate's field."""
    field = f"gates.{name}"
    if not isinstance(name, str) or not _NAME.match(name):
        raise BadInput("a gate is named METRIC.VALUE, e.g. format.parse_rate", file=file, field=field)
    if not isinstance(expr, str):
        raise BadInput(
            f"expected a quoted comparison such as \">= 0.98\", got {expr!r}", file=file, field=field
        )
    m = _EXPR.match(expr)
    if not m:
        raise BadInput(
            f"cannot read {expr!r}; write an operator ({', '.join(OPS)}) and a number, e.g. \">= 0.98\"",
            file=file,
            field=field,
        )
    return Gate(name=name, op=m.group(1), threshold=float(m.group(2)))


def check_gate(
    gate: Gate, values: dict[str, Any] | None, why_missing: str | None = None, *, suite: str | None = None,
    interval: list[float] | tuple[float, float] | None = None,
) -> GateOutcome:
    """Compare the measured value (and its ``interval``, when it has one) with the threshold. Missing or
    NaN values fail, saying why."""
    value = None if values is None else values.get(gate.value)
    if value is None:
        reason = why_missing or f"{gate.metric} did not produce {gate.value!r}"
        return GateOutcome(
            gate.name, gate.op, gate.threshold, None, False, f"{gate.text}: not measured ({reason})", suite
        )
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        return GateOutcome(
            gate.name, gate.op, gate.threshold, None, False,
            f"{gate.text}: measured {value!r}, not a finite number, so the gate cannot pass", suite,
        )
    ends = _finite_interval(interval)
    if ends is None:
        passed = bool(OPS[gate.op](number, gate.threshold))
        verdict = "passed" if passed else "failed"
        shown = f"{number:.6g}"
    else:
        meets = [bool(OPS[gate.op](x, gate.threshold)) for x in ends]
        passed = all(meets)
        verdict = "passed" if passed else ("failed" if not any(meets) else "inconclusive")
        shown = f"{number:.6g} [{ends[0]:.3g}, {ends[1]:.3g}]"
    said = {"passed": "passed", "failed": "FAILED",
            "inconclusive": "INCONCLUSIVE (the interval straddles the threshold; more data would settle it)"}
    return GateOutcome(
        gate.name, gate.op, gate.threshold, number, passed,
        f"{gate.name} = {shown} (gate {gate.op} {gate.threshold:g}): {said[verdict]}", suite,
        verdict, None if ends is None else list(ends),
    )


def _finite_interval(interval: Any) -> tuple[float, float] | None:
    if interval is None:
        return None
    try:
        lo, hi = (float(x) for x in interval)
    except (TypeError, ValueError):
        return None
    return (lo, hi) if math.isfinite(lo) and math.isfinite(hi) else None
