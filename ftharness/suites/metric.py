"""What a metric reads and returns: :class:`Sample`, :class:`MetricContext`, :class:`MetricResult`. The metric
protocol itself is in :mod:`ftharness.hookspecs`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
    retrieved: list[dict[str, Any]] | None = doc(
        "the chunks its prompt held, best first: {id, doc_id, score} each (null: the option retrieves nothing)",
        default=None,
    )
    context: str | None = doc("the retrieved chunks' text as the prompt showed it (null: none)", default=None)


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
    intervals: dict[str, list[float]] = doc(
        "confidence intervals of values, by value name: [low, high]; a gate on a value with an interval passes "
        "only when the whole interval meets it (ftharness.suites.gates.check_gate)",
        default_factory=dict,
    )
