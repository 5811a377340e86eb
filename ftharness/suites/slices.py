"""Slices: any metric's per-sample scores broken down by a field of the data.

A slice field is a key of the samples' ``meta`` (the record's other fields, e.g. ``template``), or
``input_length``: the inputs split at their median length in characters into ``short`` (at or below the
median) and ``long``. A bucket's value is the mean of its samples' scores, NaN scores left out.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from ftharness.errors import BadInput
from ftharness.suites.metric import MetricResult, Sample

INPUT_LENGTH = "input_length"
MISSING = "(missing)"


def slice_labels(samples: list[Sample], field: str, *, file: str | Path | None = None) -> list[str]:
    """The bucket of each sample for ``field``."""
    if field == INPUT_LENGTH and not any(field in s.meta for s in samples):
        if not samples:
            return []
        median = statistics.median(len(s.input) for s in samples)
        return ["short" if len(s.input) <= median else "long" for s in samples]
    if samples and not any(field in s.meta for s in samples):
        raise BadInput(
            f"slice field {field!r} is in no evaluated record; use a field of the data or {INPUT_LENGTH!r}",
            file=file,
            field="slices",
        )
    return [_label(s.meta.get(field, MISSING)) for s in samples]


def _label(value: Any) -> str:
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def compute_slices(
    samples: list[Sample],
    results: dict[str, MetricResult],
    fields: list[str],
    *,
    file: str | Path | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{field: {bucket: {"n": count, "values": {"metric.value": mean}}}}`` for every per-sample score
    list that lines up with ``samples``."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for field in fields:
        labels = slice_labels(samples, field, file=file)
        buckets: dict[str, dict[str, Any]] = {}
        for label in sorted(set(labels)):
            idx = [i for i, lab in enumerate(labels) if lab == label]
            values: dict[str, float | None] = {}
            for metric, result in results.items():
                for name, scores in result.per_sample.items():
                    if len(scores) != len(samples):
                        continue  # not per evaluated example (e.g. per QA item)
                    picked = [float(scores[i]) for i in idx if scores[i] is not None and not math.isnan(float(scores[i]))]
                    values[f"{metric}.{name}"] = sum(picked) / len(picked) if picked else None
            buckets[label] = {"n": len(idx), "values": values}
        out[field] = buckets
    return out
