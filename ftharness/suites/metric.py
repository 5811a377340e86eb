"""The metric protocol: what a metric plugin registers through ``register_metrics``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class Sample:
    """One evaluated example of one option: what every output-based metric reads."""

    id: int
    input: str
    output: str
    reference: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # slice fields
    prompt_tokens: int = 0
    new_tokens: int = 0
    latency_s: float = 0.0


@dataclass
class MetricContext:
    """Everything a metric may read. Output-based metrics use ``samples``; model-based ones (forgetting)
    use ``model`` and ``base_model`` (an ``ftharness.models.loading.LoadedModel``, or None when only
    predictions were given)."""

    samples: list[Sample]
    schema: dict | None = None
    model: Any = None
    base_model: Any = None
    option: str = ""
    wall_s: float | None = None  # wall-clock seconds spent generating ``samples`` (batched), if known


@dataclass
class MetricResult:
    """``values`` are what gates read (``format.parse_rate`` is ``values["parse_rate"]`` of metric
    ``format``). ``per_sample`` holds per-example scores keyed by value name, in ``samples`` order, for
    paired statistics and slices. ``details`` is anything else worth reporting (common errors...)."""

    values: dict[str, float]
    per_sample: dict[str, list[float]] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"values": self.values, "per_sample": self.per_sample, "details": self.details}


class Metric(Protocol):
    """What a metric plugin registers.

    Optional members the suite loader and runner use when a metric has them:

    - ``value_names(settings) -> list[str]``: every value it can produce, so that a suite gating on a
      value the metric never produces is rejected when the suite is loaded, not after a long run.
    - ``check_settings(settings, *, source) -> dict``: validate the suite's settings for it (raise
      ``BadInput`` naming ``source``) and return them normalised, e.g. paths resolved against the suite
      file.
    - ``needs_base_model: bool``: it compares ``ctx.model`` with ``ctx.base_model`` (forgetting), so the
      evaluator should load the base model too.

    A value it cannot compute for this run (no references, no timings) is left out of ``values`` and the
    reason put in ``details["missing"][value_name]``: a gate on it then fails with that reason.
    """

    name: str  # "format", "task", "toxicity", "forgetting", "throughput", ...
    needs_model: bool  # True when it must read the model itself (forgetting), not only outputs

    def compute(self, ctx: MetricContext, settings: dict[str, Any]) -> MetricResult: ...
