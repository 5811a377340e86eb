"""Running a suite: every metric over one option's outputs (or model), then the gates and slices."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from ftharness import ui
from ftharness.errors import BadInput
from ftharness.suites.gates import GateOutcome, check_gate
from ftharness.suites.metric import MetricContext, MetricResult
from ftharness.suites.slices import compute_slices
from ftharness.suites.suite import Suite

__all__ = ["GateOutcome", "SuiteResult", "run_suite"]


@dataclass
class SuiteResult:
    suite: str
    option: str
    metrics: dict[str, MetricResult]
    gates: list[GateOutcome]
    slices: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # metric -> why it could not run
    n_samples: int = 0
    seconds: dict[str, float] = field(default_factory=dict)  # metric -> compute time

    @property
    def passed(self) -> bool:
        """True when every gate passed (a suite without gates passes: it only reports)."""
        return all(g.passed for g in self.gates)

    @property
    def failed_gates(self) -> list[GateOutcome]:
        return [g for g in self.gates if not g.passed]

    def value(self, name: str) -> float | None:
        """``value("format.parse_rate")``: a measured value, or None when not measured."""
        metric, _, key = name.partition(".")
        result = self.metrics.get(metric)
        return None if result is None else result.values.get(key)

    def to_dict(self) -> dict[str, Any]:
        return json_safe(
            {
                "suite": self.suite,
                "option": self.option,
                "passed": self.passed,
                "n_samples": self.n_samples,
                "gates": [g.to_dict() for g in self.gates],
                "metrics": {k: v.to_dict() for k, v in self.metrics.items()},
                "skipped": self.skipped,
                "slices": self.slices,
                "seconds": self.seconds,
            }
        )


def json_safe(obj: Any) -> Any:
    """NaN and infinities become None: results files are strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj


def run_suite(suite: Suite, ctx: MetricContext, *, progress: bool = True) -> SuiteResult:
    """Compute the suite's metrics on ``ctx`` and check its gates.

    Output-based metrics need samples: an empty run is a BadInput, never a pass. A model-based metric
    with no model in ``ctx`` (a predictions-only run) is skipped, and gates on it fail saying so.
    """
    from ftharness.plugins import metrics as installed_metrics

    available = installed_metrics()
    chosen = {}
    for name in suite.metrics:
        if name not in available:
            raise BadInput(f"metric {name!r} is not installed", file=suite.path, field=f"metrics.{name}")
        chosen[name] = available[name]
    if not ctx.samples and any(not getattr(m, "needs_model", False) for m in chosen.values()):
        raise BadInput(
            f"suite {suite.name!r}: nothing was evaluated (no samples); check the data, --limit and filters",
            file=suite.path,
        )

    results: dict[str, MetricResult] = {}
    skipped: dict[str, str] = {}
    seconds: dict[str, float] = {}
    for name, metric in chosen.items():
        if getattr(metric, "needs_model", False) and ctx.model is None:
            skipped[name] = "needs a model, and this run has only predictions; run with --model"
            continue
        if progress and getattr(metric, "needs_model", False):  # the slow ones (they run the model) say so
            ui.status(f"[{suite.name}] computing {name} on {ctx.option or 'the model'}")
        t0 = time.perf_counter()
        results[name] = metric.compute(ctx, dict(suite.metrics[name]))
        seconds[name] = round(time.perf_counter() - t0, 3)

    if skipped and not results:
        raise BadInput(
            f"suite {suite.name!r}: nothing was evaluated; every metric needs a model "
            f"({', '.join(skipped)}) and this run has only predictions",
            file=suite.path,
        )
    outcomes = []
    for gate in suite.gates:
        if gate.metric in skipped:
            outcomes.append(check_gate(gate, None, f"{gate.metric} was skipped: {skipped[gate.metric]}"))
            continue
        result = results[gate.metric]
        missing = result.details.get("missing", {}) if isinstance(result.details, dict) else {}
        outcomes.append(check_gate(gate, result.values, missing.get(gate.value)))

    slices = compute_slices(ctx.samples, results, suite.slices, file=suite.path) if suite.slices else {}
    return SuiteResult(
        suite=suite.name,
        option=ctx.option,
        metrics=results,
        gates=outcomes,
        slices=slices,
        skipped=skipped,
        n_samples=len(ctx.samples),
        seconds=seconds,
    )
