"""Running a suite: every metric over one option's outputs (or model), then the gates and slices."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ftharness import ui
from ftharness.errors import BadInput
from ftharness.jsonrecord import doc
from ftharness.suites.gates import GateOutcome, check_gate
from ftharness.suites.metric import MetricContext, MetricResult
from ftharness.suites.slices import SliceBucket, compute_slices
from ftharness.suites.suite import Suite

__all__ = ["GateOutcome", "SuiteResult", "run_suite"]


@dataclass
class SuiteResult:
    """One suite run on one option's outputs (or model): every metric's values, the gates, the slices."""

    suite: str = doc("the suite's name")
    option: str = doc("what was evaluated: the option, model or predictions file name")
    metrics: dict[str, MetricResult] = doc("what each metric measured, by metric name")
    gates: list[GateOutcome] = doc("the suite's gates, checked")
    slices: dict[str, dict[str, SliceBucket]] = doc(
        "per-sample scores by slice field, then label (ftharness.suites.slices)", default_factory=dict
    )
    skipped: dict[str, str] = doc("metrics that could not run, and why", default_factory=dict)
    n_samples: int = doc("samples evaluated", default=0)
    seconds: dict[str, float] = doc("compute time of each metric, in seconds", default_factory=dict)
    shared_with_base_model: bool = doc(
        "measured once on the base model and shared by every prompting option (a suite that reads the "
        "model, not the outputs, such as forgetting)",
        default=False,
    )
    passed: bool = doc("every gate passed (a suite without gates passes: it only reports)", init=False)

    def __post_init__(self) -> None:
        self.passed = all(g.passed for g in self.gates)

    @property
    def failed_gates(self) -> list[GateOutcome]:
        return [g for g in self.gates if not g.passed]

    def value(self, name: str) -> float | None:
        """``value("format.parse_rate")``: a measured value, or None when not measured."""
        metric, _, key = name.partition(".")
        result = self.metrics.get(metric)
        return None if result is None else result.values.get(key)

    def per_sample(self) -> dict[str, list[float | None]]:
        """``METRIC.VALUE -> per-sample scores`` of every metric."""
        return {f"{m}.{name}": s for m, r in self.metrics.items() for name, s in r.per_sample.items()}


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
            why = f"{gate.metric} was skipped: {skipped[gate.metric]}"
            outcomes.append(check_gate(gate, None, why, suite=suite.name))
            continue
        result = results[gate.metric]
        missing = result.details.get("missing", {}) if isinstance(result.details, dict) else {}
        outcomes.append(check_gate(gate, result.values, missing.get(gate.value), suite=suite.name,
                                   interval=result.intervals.get(gate.value)))

    out = SuiteResult(
        suite=suite.name,
        option=ctx.option,
        metrics=results,
        gates=outcomes,
        skipped=skipped,
        n_samples=len(ctx.samples),
        seconds=seconds,
    )
    out.slices = compute_slices(ctx.samples, out.per_sample(), suite.slices, file=suite.path)
    return out
