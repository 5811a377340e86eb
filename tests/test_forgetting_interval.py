"""Forgetting with its uncertainty: the document bootstrap, the three-way gate, the reference's parts."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ftharness.data import general
from ftharness.errors import BadInput
from ftharness.suites.bootstrap import paired_ratio_ci, ratio_change_pct
from ftharness.suites.gates import check_gate, parse_gate

NEW = [120.0, 80.5, 301.0, 55.0, 98.0]
OLD = [110.0, 82.0, 280.0, 50.0, 97.5]
TOKENS = [40, 30, 100, 20, 35]


def _quantile(sorted_values: list[float], q: float) -> float:
    """numpy's default (linear) quantile, by hand."""
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def test_the_interval_equals_a_bootstrap_computed_by_hand():
    draws = np.random.default_rng(7).integers(0, len(NEW), size=(500, len(NEW))).tolist()
    ppl, bpb = [], []
    for row in draws:
        n = sum(NEW[i] for i in row)
        o = sum(OLD[i] for i in row)
        t = sum(TOKENS[i] for i in row)
        ppl.append((math.exp((n - o) / t) - 1) * 100)
        bpb.append((n / o - 1) * 100)
    ppl.sort()
    bpb.sort()
    got = paired_ratio_ci(NEW, OLD, TOKENS, n_resamples=500, seed=7, confidence=0.9)
    assert got["ppl_delta_pct"] == pytest.approx((_quantile(ppl, 0.05), _quantile(ppl, 0.95)), rel=1e-12)
    assert got["bpb_delta_pct"] == pytest.approx((_quantile(bpb, 0.05), _quantile(bpb, 0.95)), rel=1e-12)
    point = ratio_change_pct(NEW, OLD, TOKENS)
    assert got["ppl_delta_pct"][0] <= point["ppl_delta_pct"] <= got["ppl_delta_pct"][1]
    # perplexity is exp(mean nll per token): the point change from the sums
    assert point["ppl_delta_pct"] == pytest.approx(
        (math.exp(sum(NEW) / sum(TOKENS)) / math.exp(sum(OLD) / sum(TOKENS)) - 1) * 100)


def test_identical_models_have_a_zero_width_interval():
    got = paired_ratio_ci(OLD, OLD, TOKENS)
    assert got == {"ppl_delta_pct": (0.0, 0.0), "bpb_delta_pct": (0.0, 0.0)}


@pytest.mark.parametrize(("interval", "verdict", "passed"), [
    ([1.0, 4.0], "passed", True),
    ([5.5, 9.0], "failed", False),
    ([3.0, 7.0], "inconclusive", False),
    (None, "passed", True),  # no interval: the point value decides
])
def test_a_gate_reads_the_interval(interval, verdict, passed):
    gate = parse_gate("forgetting.ppl_delta_pct", "< 5")
    out = check_gate(gate, {"ppl_delta_pct": 2.5 if verdict != "failed" else 7.0}, interval=interval)
    assert (out.verdict, out.passed) == (verdict, passed)
    if interval:
        assert out.interval == interval and f"[{interval[0]:.3g}, {interval[1]:.3g}]" in out.message
    if verdict == "inconclusive":
        assert "INCONCLUSIVE" in out.message


def test_a_missing_value_is_not_measured_whatever_its_interval():
    out = check_gate(parse_gate("forgetting.ppl_delta_pct", "< 5"), {}, "no base", interval=[0, 1])
    assert (out.verdict, out.passed) == ("not measured", False)


def test_the_bundled_reference_parts_share_no_document_and_the_test_part_is_large():
    docs = general.read_documents()
    by_part = {p: [d for d in docs if d.part == p] for p in general.PARTS}
    assert all(by_part.values())
    texts = {p: {d.text for d in ds} for p, ds in by_part.items()}
    assert not (texts["test"] & texts["selection"]) and not (texts["replay"] & (texts["test"] | texts["selection"]))
    ids = [d.id for d in docs]
    assert len(ids) == len(set(ids))
    # at least 20k tokens at the conservative 4.5 characters per token of English prose
    assert sum(len(t) for t in texts["test"]) / 4.5 > 20_000


def test_a_users_reference_is_split_by_its_text_and_a_part_can_be_named(tmp_path):
    plain = tmp_path / "general.txt"
    plain.write_text("\n\n".join(f"Paragraph number {i} of general text." for i in range(40)), encoding="utf-8")
    docs = general.read_documents(plain)
    parts = {d.part for d in docs}
    assert parts == {"test", "selection"}
    assert [d.part for d in docs] == [general.part_of(d.text) for d in docs]  # the same on every call
    rows = tmp_path / "general.jsonl"
    rows.write_text(json.dumps({"text": "kept for training", "part": "replay"}) + "\n"
                    + json.dumps({"text": "judged on", "part": "test"}) + "\n", encoding="utf-8")
    assert general.documents(rows, "test") == ["judged on"]
    with pytest.raises(BadInput, match="no document in its selection part"):
        general.documents(rows, "selection")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "x", "part": "train"}) + "\n", encoding="utf-8")
    with pytest.raises(BadInput, match="part must be one of"):
        general.read_documents(bad)
