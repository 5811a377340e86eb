"""The validation split: carved from the training data, never from the eval set.

Contract:
- Deterministic: the same training file and seed give the same split on any machine and in any row order.
  A row's place is decided by ``sha256(seed, normalised input, answer)``, so adding a row elsewhere in the
  file moves no other row across the split.
- Disjoint: a validation row whose normalised input also occurs in the kept training rows is moved to the
  validation side with all its copies, so the model is never validated on an input it trained on.
- Size: ``max(minimum, round(fraction * n))`` rows, never more than half of the training rows (at least
  one row is always left to train on).

The eval set is not an argument of anything here: what selects checkpoints and sweep points cannot see it.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from ftharness.data.dedup import normalise
from ftharness.data.records import Dataset, Example
from ftharness.errors import BadInput


def validation_size(n: int, fraction: float, minimum: int) -> int:
    """How many of ``n`` training rows go to validation (0 when there are fewer than 2 rows)."""
    if n < 2:
        return 0
    return min(max(int(minimum), round(float(fraction) * n)), n // 2)


def _rank(seed: int, example: Example) -> str:
    text = f"{seed}\x00{normalise(example.input_text)}\x00{example.completion or example.chosen or ''}"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def carve_validation(train: Dataset, *, fraction: float, minimum: int, seed: int) -> tuple[Dataset, Dataset]:
    """``(kept training rows, validation rows)``, both in file order."""
    n = len(train.examples)
    size = validation_size(n, fraction, minimum)
    if size == 0:
        raise BadInput(
            f"too few training rows ({n}) to carve a validation split from; add rows or give a "
            "validation file",
            file=train.file or None,
            field="validation",
        )
    order = sorted(range(n), key=lambda i: _rank(seed, train.examples[i]))
    chosen = set(order[:size])
    held_inputs = {normalise(train.examples[i].input_text) for i in chosen}
    chosen |= {i for i, ex in enumerate(train.examples) if normalise(ex.input_text) in held_inputs}
    if len(chosen) >= n:
        raise BadInput(
            "every training row shares its input with a validation row; give a validation file",
            file=train.file or None,
            field="validation",
        )
    kept = [ex for i, ex in enumerate(train.examples) if i not in chosen]
    held = [ex for i, ex in enumerate(train.examples) if i in chosen]
    return replace(train, examples=kept), replace(train, examples=held)


def drop_overlap(train: Dataset, validation: Dataset) -> Dataset:
    """Training rows whose normalised input occurs in a given validation file are left out of training."""
    held = {normalise(ex.input_text) for ex in validation.examples}
    kept = [ex for ex in train.examples if normalise(ex.input_text) not in held]
    if not kept:
        raise BadInput("every training row also occurs in the validation file", file=train.file or None,
                       field="validation.file")
    return replace(train, examples=kept)
