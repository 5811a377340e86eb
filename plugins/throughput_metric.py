"""The ``throughput`` metric: what serving this option costs per request.

``tokens_per_s``: generated tokens over wall-clock generation time (the batched run's total when the
evaluator recorded it, else the sum of per-request latencies). ``latency_p50_s`` / ``latency_p95_s``:
per-request latency percentiles (linear interpolation between order statistics, numpy's default).
``prompt_tokens_mean`` and ``new_tokens_mean``: tokens per request; prompt tokens are the cost a long
few-shot prompt adds to every call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ftharness.hookspecs import hookimpl
from ftharness.suites.metric import MetricContext, MetricResult
from ftharness.suites.settings import TypedMetric

VALUES = ["tokens_per_s", "latency_p50_s", "latency_p95_s", "prompt_tokens_mean", "new_tokens_mean"]


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation between closest ranks."""
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass
class _NoSettings:
    """throughput takes no settings."""


class ThroughputMetric(TypedMetric):
    name = "throughput"
    needs_model = False
    settings_class = _NoSettings
    values = tuple(VALUES)
    lower_is_better = frozenset({"latency_p50_s", "latency_p95_s", "prompt_tokens_mean", "new_tokens_mean"})  # cost

    def compute(self, ctx: MetricContext, settings: dict[str, Any]) -> MetricResult:
        samples = ctx.samples
        n = len(samples)
        missing: dict[str, str] = {}
        values: dict[str, float] = {}
        latencies = [s.latency_s for s in samples]
        new = [float(s.new_tokens) for s in samples]
        prompt = [float(s.prompt_tokens) for s in samples]
        timed = n > 0 and all(x > 0 for x in latencies)
        if timed:
            values["latency_p50_s"] = percentile(latencies, 50)
            values["latency_p95_s"] = percentile(latencies, 95)
        else:
            for k in ("latency_p50_s", "latency_p95_s"):
                missing[k] = "outputs carry no per-request latency (latency_s)"
        wall = ctx.wall_s if ctx.wall_s and ctx.wall_s > 0 else (sum(latencies) if timed else None)
        if wall and sum(new) > 0:
            values["tokens_per_s"] = sum(new) / wall
        else:
            missing["tokens_per_s"] = "outputs carry no generated-token counts and timings"
        if n and any(prompt):
            values["prompt_tokens_mean"] = sum(prompt) / n
        else:
            missing["prompt_tokens_mean"] = "outputs carry no prompt token counts (prompt_tokens)"
        if n and any(new):
            values["new_tokens_mean"] = sum(new) / n
        else:
            missing["new_tokens_mean"] = "outputs carry no generated-token counts (new_tokens)"
        details: dict[str, Any] = {"n": n, "wall_s": wall, "timing": "batched wall clock" if ctx.wall_s else "sum of latencies"}
        if missing:
            details["missing"] = missing
        per = {"prompt_tokens_mean": prompt, "new_tokens_mean": new} if n else {}
        return MetricResult(values=values, per_sample=per, details=details)


@hookimpl
def register_metrics(register) -> None:
    register(ThroughputMetric())
