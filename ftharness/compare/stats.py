"""Is an option really better than the best prompting baseline, or is the difference noise?

Both options are scored on the same eval examples, so the comparison is paired: per example, the
difference of the two scores. Two standard tools, both seeded so a report is reproducible:

- the paired bootstrap percentile interval of the mean difference (Efron & Tibshirani 1993, *An
  Introduction to the Bootstrap*, ch. 13; the paired form for NLP in Koehn 2004, "Statistical Significance
  Tests for Machine Translation Evaluation");
- the paired approximate randomization (sign-flip permutation) test of "no difference", which Dror et al.
  2018 ("The Hitchhiker's Guide to Testing Statistical Significance in Natural Language Processing", ACL)
  recommend for metrics with unknown distributions.

A difference whose interval contains zero is *inconclusive*, never a win.
"""

from __future__ import annotations

from ftharness.report.records import PairedComparison
from ftharness.suites.bootstrap import bootstrap_ci

__all__ = ["bootstrap_ci", "paired_compare"]


def paired_compare(
    option_scores: list[float],
    reference_scores: list[float],
    *,
    option: str = "option",
    reference: str = "reference",
    metric: str = "score",
    higher_is_better: bool = True,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> PairedComparison:
    """Paired bootstrap CI and randomization p-value of mean(option) - mean(reference).

    ``verdict`` is from the option's point of view: "better" when the whole interval lies on the good
    side of zero (above for ``higher_is_better``), "worse" when on the bad side, else "inconclusive".
    """
    import numpy as np

    a = np.asarray(option_scores, dtype=float)
    b = np.asarray(reference_scores, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired scores need equal lengths, got {a.shape[0]} and {b.shape[0]}")
    n = int(a.shape[0])
    if n == 0:
        raise ValueError("no paired scores to compare")
    d = a - b
    diff = float(d.mean())
    rng = np.random.default_rng(seed)
    if np.all(d == 0):
        return PairedComparison(
            option,
            reference,
            metric,
            n,
            float(a.mean()),
            float(b.mean()),
            0.0,
            0.0,
            0.0,
            confidence,
            1.0,
            "same",
        )
    idx = rng.integers(0, n, size=(n_resamples, n))
    boot = d[idx].mean(axis=1)
    alpha = 1.0 - confidence
    lo, hi = (float(x) for x in np.quantile(boot, [alpha / 2, 1 - alpha / 2]))
    signs = rng.choice(np.array([-1.0, 1.0]), size=(n_resamples, n))
    null = np.abs((signs * d).mean(axis=1))
    # +1 in numerator and denominator: the observed assignment is one of the permutations (Dror et al. 2018).
    p = float((np.sum(null >= abs(diff) - 1e-12) + 1) / (n_resamples + 1))
    good_low, good_high = (lo, hi) if higher_is_better else (-hi, -lo)
    if good_low > 0:
        verdict = "better"
    elif good_high < 0:
        verdict = "worse"
    else:
        verdict = "inconclusive"
    return PairedComparison(
        option, reference, metric, n, float(a.mean()), float(b.mean()), diff, lo, hi, confidence, p, verdict
    )
