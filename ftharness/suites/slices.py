"""Slices: any metric's per-sample scores broken down by a field of the data. The one implementation:
suites (``ftharness eval``) and comparisons (``ftharness compare``, per option) both slice here.

A slice field is a key of the samples' ``meta`` (the record's other fields, e.g. ``template``), or
``input_length``: the inputs split at their median length in characters into ``short`` (at or below the
median) and ``long``. The rules:

- a sample's label is its field's value as JSON writes it, strings without quotes: ``true``/``false`` for
  booleans, ``3`` and ``0.5`` for numbers, ``ticket`` for a string; a missing field or null is
  ``(missing)``;
- a bucket's value is the mean of its samples' scores with NaN (and null) scores left out, and counted in
  the bucket's ``excluded``; a bucket with no score left has the value null;
- only score lists with one score per sample are sliced (a metric scoring something else, such as
  forgetting's QA items, is left out).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftharness.errors import BadInput
from ftharness.jsonrecord import doc
from ftharness.suites.metric import Sample

INPUT_LENGTH = "input_length"
MISSING = "(missing)"


@dataclass
class SliceBucket:
    """The samples whose slice field has one label, and the mean of each per-sample score over them."""

    n: int = doc("samples in the bucket")
    values: dict[str, float | None] = doc(
        "mean score over the bucket by METRIC.VALUE; null when none of its scores is a number",
        default_factory=dict,
    )
    excluded: dict[str, int] = doc(
        "by METRIC.VALUE, how many of the bucket's scores were NaN or null and so left out of its mean "
        "(only values that left some out)",
        default_factory=dict,
    )


Slices = dict[str, dict[str, SliceBucket]]  # field -> label -> bucket


def label_of(value: Any) -> str:
    """The bucket label of one field value (the rules of the module docstring)."""
    if value is None:
        return MISSING
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def check_slice_fields(
    metas: Iterable[dict[str, Any]], fields: Iterable[str], *, file: str | Path | None = None
) -> None:
    """BadInput for a slice field that no record has (``input_length`` needs none)."""
    metas = list(metas)
    for name in fields:
        if metas and name != INPUT_LENGTH and not any(name in m for m in metas):
            raise BadInput(
                f"slice field {name!r} is in no evaluated record; use a field of the data or {INPUT_LENGTH!r}",
                file=file,
                field="slices",
            )


def slice_labels(samples: list[Sample], field: str, *, file: str | Path | None = None) -> list[str]:
    """The bucket of each sample for ``field``."""
    if field == INPUT_LENGTH and not any(field in s.meta for s in samples):
        if not samples:
            return []
        median = statistics.median(len(s.input) for s in samples)
        return ["short" if len(s.input) <= median else "long" for s in samples]
    check_slice_fields((s.meta for s in samples), [field], file=file)
    return [label_of(s.meta.get(field)) for s in samples]


def _number(score: Any) -> float | None:
    if score is None:
        return None
    value = float(score)
    return None if math.isnan(value) else value


def compute_slices(
    samples: list[Sample],
    scores: dict[str, list[float | None]],
    fields: Iterable[str],
    *,
    file: str | Path | None = None,
) -> Slices:
    """``{field: {label: SliceBucket}}`` for every score list of ``scores`` (``METRIC.VALUE -> one score
    per sample``) that lines up with ``samples``."""
    sliced = {name: s for name, s in scores.items() if len(s) == len(samples)}
    out: Slices = {}
    for field in dict.fromkeys(fields):
        labels = slice_labels(samples, field, file=file)
        buckets: dict[str, SliceBucket] = {}
        for label in sorted(set(labels)):
            idx = [i for i, lab in enumerate(labels) if lab == label]
            bucket = SliceBucket(n=len(idx))
            for name, per_sample in sliced.items():
                picked = [_number(per_sample[i]) for i in idx]
                kept = [x for x in picked if x is not None]
                bucket.values[name] = sum(kept) / len(kept) if kept else None
                if len(kept) < len(picked):
                    bucket.excluded[name] = len(picked) - len(kept)
            buckets[label] = bucket
        out[field] = buckets
    return out

