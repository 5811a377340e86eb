"""Forgetting: rolling log-likelihood numerics, bits per byte, QA by choice log-likelihood."""

from __future__ import annotations

import math

import pytest
from ftharness_plugins.forgetting_metric import (
    ForgettingMetric,
    ForgettingSettings,
    fitted_window,
    load_qa,
    load_reference,
)

from ftharness.errors import BadInput
from ftharness.suites.loglik import (
    Request,
    choice_logprobs,
    context_token,
    rolling_nll,
    rolling_requests,
    score_requests,
)
from ftharness.suites.metric import MetricContext

TEXTS = ["The river ran past the old mill and into the sea.", "Bread needs flour, water, salt and yeast. Ngọc 東京."]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from ftharness.models.loading import load_model

    return load_model(str(tiny_model_dir))


def by_hand(lm, text):
    """Sum of NLL (nats) and token count from one full forward pass, computed directly."""
    import torch

    ids = [context_token(lm.tokenizer), *lm.tokenizer(text, add_special_tokens=False)["input_ids"]]
    with torch.no_grad():
        logits = lm.model(input_ids=torch.tensor([ids])).logits[0].double()
    lp = torch.log_softmax(logits, dim=-1)
    nll = -sum(float(lp[j - 1, ids[j]]) for j in range(1, len(ids)))
    return nll, len(ids) - 1


def test_rolling_windows_score_every_token_once():
    ids = list(range(100, 130))  # 30 tokens after the start token
    for window, stride in ((64, 32), (8, 4), (8, 7), (2, 1)):
        reqs = rolling_requests(ids, 1, window, stride)
        scored = [t for r in reqs for t in r.ids[r.score_from:]]
        assert scored == ids
        assert all(len(r.ids) <= window and r.score_from >= 1 for r in reqs)
    later = rolling_requests(ids, 1, 8, 4)[1:]
    assert all(r.score_from >= 4 for r in later)  # window - stride tokens of context
    with pytest.raises(BadInput):
        rolling_requests(ids, 1, 8, 8)


def test_perplexity_equals_exp_mean_nll_by_hand(tiny):
    got = rolling_nll(tiny, TEXTS, window=512, stride=256)
    parts = [by_hand(tiny, t) for t in TEXTS]
    nll, tokens = sum(p[0] for p in parts), sum(p[1] for p in parts)
    assert got["tokens"] == tokens
    assert got["nll"] == pytest.approx(nll, rel=1e-5)
    assert got["ppl"] == pytest.approx(math.exp(nll / tokens), rel=1e-5)
    n_bytes = sum(len(t.encode("utf-8")) for t in TEXTS)
    assert got["bytes"] == n_bytes > sum(len(t) for t in TEXTS)  # UTF-8 bytes, not characters
    assert got["bpb"] == pytest.approx(nll / math.log(2) / n_bytes, rel=1e-5)


def test_batching_and_windows_agree(tiny):
    """Batched (padded) scoring equals one request at a time; short windows score the same tokens."""
    reqs = [Request([1, 5, 6, 7, 8, 9], 1), Request([1, 5, 6], 2), Request([1, 9, 8, 7, 6, 5, 4, 3], 3)]
    batched = score_requests(tiny, reqs, token_budget=64)
    alone = [score_requests(tiny, [r], token_budget=64)[0] for r in reqs]
    assert [n for _, n in batched] == [5, 1, 5]
    for (a, _), (b, _) in zip(batched, alone, strict=True):
        assert a == pytest.approx(b, abs=1e-4)
    full = rolling_nll(tiny, TEXTS, window=512, stride=256)
    windowed = rolling_nll(tiny, TEXTS, window=8, stride=4, token_budget=16)
    assert windowed["tokens"] == full["tokens"]
    assert math.isfinite(windowed["ppl"]) and windowed["nll"] != full["nll"]  # less context, other numbers


def test_choice_continuations(tiny):
    reqs = choice_logprobs(tiny, "Question: 2+2?\nAnswer:", [" 4", " five"])
    for r in reqs:
        assert r.ids[0] == context_token(tiny.tokenizer)
        assert tiny.tokenizer.decode(r.ids[r.score_from:]) in (" 4", " five")


@pytest.fixture
def short_reference(tmp_path):
    p = tmp_path / "ref.txt"
    p.write_text("\n\n".join(TEXTS) + "\n")
    return str(p)


def test_same_model_gives_zero_delta_and_values(tiny, short_reference):
    metric = ForgettingMetric()
    settings = metric.check_settings({"qa_limit": 6, "reference": short_reference})
    ctx = MetricContext(samples=[], model=tiny, base_model=tiny, option="tiny")
    r = metric.compute(ctx, settings)
    assert r.values["ppl_delta_pct"] == 0.0 and r.values["bpb_delta_pct"] == 0.0
    assert r.values["qa_accuracy_delta"] == 0.0
    assert r.values["ppl"] == r.values["base_ppl"] > 1
    assert 0.0 <= r.values["qa_accuracy"] <= 1.0
    assert len(r.details["qa_correct"]) == 6
    alone = metric.compute(MetricContext(samples=[], model=tiny), settings)
    assert "ppl_delta_pct" not in alone.values
    assert "base model" in alone.details["missing"]["ppl_delta_pct"]
    assert alone.values["ppl"] == pytest.approx(r.values["ppl"])


def test_different_base_model_gives_a_delta(tiny, tiny_model_dir, short_reference):
    """A second copy of the model with perturbed weights: a real, nonzero delta, same sign in ppl and bpb."""
    import torch

    from ftharness.models.loading import load_model

    other = load_model(str(tiny_model_dir))
    with torch.no_grad():
        for p in other.model.parameters():
            p.add_(torch.randn_like(p) * 0.05, alpha=1.0)
    metric = ForgettingMetric()
    settings = metric.check_settings({"qa_limit": 4, "reference": short_reference})
    r = metric.compute(MetricContext(samples=[], model=other, base_model=tiny), settings)
    assert r.values["ppl_delta_pct"] != 0.0
    assert (r.values["ppl_delta_pct"] > 0) == (r.values["bpb_delta_pct"] > 0)
    expected = (r.values["ppl"] - r.values["base_ppl"]) / r.values["base_ppl"] * 100
    assert r.values["ppl_delta_pct"] == pytest.approx(expected)


def test_bundled_reference_and_qa_are_sound(tmp_path):
    docs = load_reference(None)
    assert len(docs) >= 10 and sum(len(d) for d in docs) > 4000
    items = load_qa(None)
    assert len(items) >= 40
    assert all(0 <= it["answer"] < len(it["choices"]) for it in items)
    bad = tmp_path / "qa.jsonl"
    bad.write_text('{"question": "q", "choices": ["a", "b"], "answer": 2}\n')
    with pytest.raises(BadInput, match="qa.jsonl:1"):
        load_qa(str(bad))


def test_the_window_fits_the_positions_the_model_allows():
    import types

    def lm(config):
        return types.SimpleNamespace(model=types.SimpleNamespace(config=config))

    s = ForgettingSettings()
    assert (s.window, s.stride) == (1024, 512)
    assert fitted_window(lm(types.SimpleNamespace(max_position_embeddings=8192)), s) == (1024, 512)
    assert fitted_window(lm(types.SimpleNamespace(max_position_embeddings=256)), s) == (256, 128)
    assert fitted_window(lm({"n_positions": 600}), s) == (600, 300)
    assert fitted_window(lm(None), s) == (1024, 512)  # a model that states no limit: as set
