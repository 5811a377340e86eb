"""Paired bootstrap intervals and randomization tests: seeded, paired, honest about noise."""

from __future__ import annotations

import random

import pytest

from ftharness.compare.stats import bootstrap_ci, paired_compare


def test_clear_win_is_better():
    a = [1.0] * 22 + [0.0] * 2
    b = [0.0] * 18 + [1.0] * 6
    c = paired_compare(a, b, option="lora", reference="few-shot")
    assert c.verdict == "better"
    assert c.diff == pytest.approx(22 / 24 - 6 / 24)
    assert 0 < c.ci_low <= c.diff <= c.ci_high
    assert c.p_value < 0.01


def test_small_difference_on_few_examples_is_inconclusive():
    a = [1, 1, 1, 0, 1, 0, 1, 1]
    b = [1, 0, 1, 1, 1, 0, 1, 0]
    c = paired_compare(a, b)
    assert c.verdict == "inconclusive"
    assert c.ci_low < 0 < c.ci_high
    assert c.p_value > 0.05


def test_worse_and_lower_is_better():
    a = [0.0] * 20
    b = [1.0] * 20
    assert paired_compare(a, b).verdict == "worse"
    # for a metric where lower is better (toxicity), lower scores are the win
    assert paired_compare(a, b, higher_is_better=False).verdict == "better"


def test_identical_scores_are_the_same():
    c = paired_compare([1, 0, 1], [1, 0, 1])
    assert c.verdict == "same" and c.p_value == 1.0 and c.diff == 0.0


def test_pairing_matters():
    """Unpaired, these two look identical in mean; paired, every example moved the same way."""
    rng = random.Random(0)
    base = [rng.random() for _ in range(30)]
    better = [x + 0.05 for x in base]
    c = paired_compare(better, base)
    assert c.verdict == "better" and c.ci_low == pytest.approx(0.05) and c.ci_high == pytest.approx(0.05)


def test_seeded_and_reproducible():
    a = [random.Random(1).random() for _ in range(40)]
    b = [random.Random(2).random() for _ in range(40)]
    assert paired_compare(a, b, seed=3) == paired_compare(a, b, seed=3)
    assert bootstrap_ci(a, seed=3) == bootstrap_ci(a, seed=3)


def test_bad_input():
    with pytest.raises(ValueError):
        paired_compare([1, 0], [1])
    with pytest.raises(ValueError):
        paired_compare([], [])


def test_bootstrap_ci_covers_the_mean():
    xs = [1.0] * 15 + [0.0] * 9
    lo, hi = bootstrap_ci(xs)
    assert lo < 15 / 24 < hi and lo >= 0 and hi <= 1
