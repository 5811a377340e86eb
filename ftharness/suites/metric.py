"""The metric protocol: what a metric plugin registers through ``register_metrics``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ftharness.jsonrecord import doc


@dataclass
class Sample:
    """One evaluated example of one option: what every output-based metric reads."""

    id: int = doc("position of the example in the evaluated data, from 0")
    input: str = doc("the example's input text")
    output: str = doc("the option's output for it")
    reference: str | None = doc("the expected output, when the data has one", default=None)
    meta: dict[str, Any] = doc("the record's other fields (what slices group by)", default_factory=dict)
    prompt_tokens: int = doc("tokens of the rendered prompt", default=0)
    new_tokens: int = doc("tokens generated", default=0)
    latency_s: float = doc("seconds to generate this output (its batch's time shared out)", default=0.0)


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
    """What one metric measured on one option."""

    values: dict[str, float | None] = doc(
        "what gates read: format.parse_rate is values['parse_rate'] of the metric format (null: not a "
        "finite number)"
    )
    per_sample: dict[str, list[float | None]] = doc(
        "per-example scores by value name, in the samples' order, for paired statistics and slices "
        "(null: not measured for that example)",
        default_factory=dict,
    )
    details: dict[str, Any] = doc(
        "anything else worth reporting (common errors; details['missing'][value] says why a value is "
        "absent)",
        default_factory=dict,
    )


@runtime_checkable
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
