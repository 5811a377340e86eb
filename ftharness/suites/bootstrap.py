"""Percentile bootstrap intervals (Efron & Tibshirani 1993, *An Introduction to the Bootstrap*, ch. 13),
seeded so a report is reproducible.

- :func:`bootstrap_ci`: the interval of a mean over independent units (examples, paired differences).
- :func:`paired_ratio_ci`: the interval of a relative change between two models scored on the same
  documents, where the figure is a ratio of sums (perplexity, bits per byte), not a mean of per-document
  ratios. Documents are the resampled unit: tokens inside one document are not independent, so
  resampling tokens would give an interval that is too narrow.

Each function draws its resamples as ``rng.integers(0, n, size=(n_resamples, n))`` from
``numpy.random.default_rng(seed)`` and reads the interval with numpy's default (linear) quantile: a
hand computation with the same draws gives the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# Efron & Tibshirani 1993 (ch. 13, 19) advise 1,000 or more resamples for percentile intervals; 10,000 keeps
# the interval's end points stable to about a tenth of their standard error.
RESAMPLES = 10_000


def _indices(n: int, n_resamples: int, seed: int):
    import numpy as np

    return np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))


def bootstrap_ci(
    scores: Sequence[float], *, confidence: float = 0.95, n_resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of a mean; (nan, nan) for no scores."""
    import numpy as np

    x = np.asarray(scores, dtype=float)
    if x.size == 0:
        return (float("nan"), float("nan"))
    boot = x[_indices(x.size, n_resamples, seed)].mean(axis=1)
    alpha = 1.0 - confidence
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def paired_ratio_ci(
    new_nll: Sequence[float],
    old_nll: Sequence[float],
    tokens: Sequence[int],
    *,
    confidence: float = 0.95,
    n_resamples: int = RESAMPLES,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Intervals of the perplexity and bits-per-byte changes, in percent, of a model (``new_nll``: its
    negative log-likelihood per document, nats) against another (``old_nll``) on the same documents.

    Per resample (the same documents for both models): perplexity change ``exp((sum new - sum old) /
    sum tokens) - 1`` and bits-per-byte change ``sum new / sum old - 1`` (the bytes cancel), times 100.
    Returns ``{"ppl_delta_pct": (lo, hi), "bpb_delta_pct": (lo, hi)}``.
    """
    import numpy as np

    new = np.asarray(new_nll, dtype=float)
    old = np.asarray(old_nll, dtype=float)
    tok = np.asarray(tokens, dtype=float)
    if not new.size or new.shape != old.shape or tok.shape != new.shape:
        raise ValueError("paired per-document figures need equal, non-zero lengths")
    idx = _indices(new.size, n_resamples, seed)
    s_new, s_old, s_tok = new[idx].sum(axis=1), old[idx].sum(axis=1), tok[idx].sum(axis=1)
    alpha = 1.0 - confidence
    q = [alpha / 2, 1 - alpha / 2]
    ppl = np.quantile((np.exp((s_new - s_old) / s_tok) - 1.0) * 100.0, q)
    bpb = np.quantile((s_new / s_old - 1.0) * 100.0, q)
    return {"ppl_delta_pct": (float(ppl[0]), float(ppl[1])), "bpb_delta_pct": (float(bpb[0]), float(bpb[1]))}


def ratio_change_pct(new_nll: Sequence[float], old_nll: Sequence[float], tokens: Sequence[int]) -> dict[str, float]:
    """The point figures :func:`paired_ratio_ci` brackets, on all documents once."""
    n, o, t = math.fsum(new_nll), math.fsum(old_nll), sum(tokens)
    return {"ppl_delta_pct": (math.exp((n - o) / t) - 1.0) * 100.0, "bpb_delta_pct": (n / o - 1.0) * 100.0}
