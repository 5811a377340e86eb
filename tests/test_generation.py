"""The batched engine: greedy equals one-at-a-time generate, input order, EOS and stop strings, seeds."""

from __future__ import annotations

import pytest

from ftharness.errors import BadInput
from ftharness.models.generation import GenerationSettings, encode_prompt, generate, generation_config
from ftharness.models.prompts import render_prompt

QUESTIONS = [
    "Hi",
    "What is the capital of France?",
    "Write one long sentence about the history of the printing press in Europe and its effects.",
    "2+2?",
    "List three fruits.",
    "Translate 'thank you' into German, please, and explain the pronunciation briefly.",
    "Why?",
]


@pytest.fixture
def tiny(varied_tiny_lm):
    return varied_tiny_lm


def prompts_for(lm, questions=QUESTIONS):
    return [render_prompt(lm.tokenizer, [{"role": "user", "content": q}]) for q in questions]


def one_at_a_time(lm, prompts, settings):
    """The reference: plain model.generate on each prompt alone (no padding at all)."""
    import torch

    config = generation_config(lm, settings)
    out = []
    with torch.inference_mode():
        for p in prompts:
            ids = torch.tensor([encode_prompt(lm.tokenizer, p)])
            new = lm.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config)[0, ids.shape[1]:]
            out.append(new.tolist())
    return out


def decode_like_engine(lm, ids, eos):
    kept = ids[:-1] if ids and ids[-1] in eos else ids
    return lm.tokenizer.decode(kept, skip_special_tokens=True)


def test_greedy_batched_equals_one_at_a_time(tiny):
    prompts = prompts_for(tiny)
    settings = GenerationSettings(max_new_tokens=10, batch_size=3)
    results = generate(tiny, prompts, settings, progress=False)
    eos = set(generation_config(tiny, settings).eos_token_id)
    for r, p, ids in zip(results, prompts, one_at_a_time(tiny, prompts, settings), strict=True):
        assert r.text == decode_like_engine(tiny, ids, eos)
        assert r.new_tokens == len(ids) and r.prompt_tokens == len(encode_prompt(tiny.tokenizer, p))
        assert tiny.tokenizer.pad_token not in r.text
    assert len({r.text for r in results}) == len(prompts)  # outputs differ, so equality means something


def test_results_come_back_in_input_order(tiny):
    prompts = prompts_for(tiny)
    settings = GenerationSettings(max_new_tokens=6, batch_size=2)
    forward = generate(tiny, prompts, settings, progress=False)
    backward = generate(tiny, prompts[::-1], settings, progress=False)
    assert [r.text for r in backward] == [r.text for r in forward][::-1]
    assert [r.prompt_tokens for r in forward] == [len(encode_prompt(tiny.tokenizer, p)) for p in prompts]
    # Requests of one batch share its wall time; every request has one.
    assert all(r.latency_s > 0 for r in forward)
    assert len({r.latency_s for r in forward}) == 4  # 7 prompts in batches of 2


def test_stop_strings_cut_the_text_and_stop_the_row(tiny):
    prompts = prompts_for(tiny)
    free = generate(tiny, prompts, GenerationSettings(max_new_tokens=12, batch_size=4), progress=False)
    text = free[2].text
    stop = text[len(text) // 3: len(text) // 3 + 3]
    assert stop.strip(), "the tiny model's text should have printable characters"
    stopped = generate(tiny, prompts, GenerationSettings(max_new_tokens=12, batch_size=4, stop=[stop]), progress=False)
    for before, after in zip(free, stopped, strict=True):
        if stop in before.text:
            assert after.finish_reason == "stop"
            assert after.text == before.text[: before.text.index(stop)]
            assert after.new_tokens <= before.new_tokens
        else:  # rows without the stop string are untouched by their neighbours stopping
            assert (after.text, after.new_tokens, after.finish_reason) == (before.text, before.new_tokens, before.finish_reason)
    assert stopped[2].finish_reason == "stop" and stopped[2].new_tokens < free[2].new_tokens


def test_every_eos_id_ends_a_row(tiny):
    """The generation config's EOS ids count, not only the tokenizer's."""
    prompts = prompts_for(tiny)[:3]
    settings = GenerationSettings(max_new_tokens=8, batch_size=3)
    free = one_at_a_time(tiny, prompts, settings)
    marker = free[0][3]  # make the 4th token the first row produced an end-of-sequence id
    saved = tiny.model.generation_config.eos_token_id
    tiny.model.generation_config.eos_token_id = [saved, marker] if isinstance(saved, int) else [*saved, marker]
    try:
        results = generate(tiny, prompts, settings, progress=False)
    finally:
        tiny.model.generation_config.eos_token_id = saved
    first = free[0].index(marker) + 1
    assert results[0].finish_reason == "eos" and results[0].new_tokens == first
    assert results[0].text == tiny.tokenizer.decode(free[0][: first - 1], skip_special_tokens=True)
    for r, ids in zip(results[1:], free[1:], strict=True):
        if marker not in ids:
            assert r.finish_reason == "length" and r.new_tokens == 8


def test_sampling_is_seeded_and_leaves_global_rng_alone(tiny):
    import torch

    prompts = prompts_for(tiny)[:4]
    a = generate(tiny, prompts, GenerationSettings(max_new_tokens=8, do_sample=True, seed=1, temperature=0.9), progress=False)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    b = generate(tiny, prompts, GenerationSettings(max_new_tokens=8, do_sample=True, seed=1, temperature=0.9), progress=False)
    after = torch.rand(1)
    c = generate(tiny, prompts, GenerationSettings(max_new_tokens=8, do_sample=True, seed=2, temperature=0.9), progress=False)
    greedy = generate(tiny, prompts, GenerationSettings(max_new_tokens=8), progress=False)
    assert [r.text for r in a] == [r.text for r in b]
    assert [r.text for r in a] != [r.text for r in c]
    assert [r.text for r in a] != [r.text for r in greedy]
    assert torch.equal(before, after)


def test_settings_are_checked_and_recorded():
    with pytest.raises(BadInput):
        GenerationSettings(max_new_tokens=0)
    with pytest.raises(BadInput):
        GenerationSettings(batch_size=0)
    with pytest.raises(BadInput):
        GenerationSettings(do_sample=True, temperature=0)
    with pytest.raises(BadInput):
        GenerationSettings(top_p=1.5)
    with pytest.raises(BadInput):
        GenerationSettings(stop=[""])
    assert GenerationSettings(stop="###").stop == ["###"]
    assert "temperature" not in GenerationSettings().to_dict()
    assert GenerationSettings(do_sample=True, temperature=0.7, seed=3).to_dict()["temperature"] == 0.7


def test_empty_inputs(tiny):
    assert generate(tiny, [], progress=False) == []
    with pytest.raises(BadInput, match="prompt 1 is empty"):
        generate(tiny, ["hello", ""], progress=False)


@pytest.mark.e2e
def test_engine_equals_one_at_a_time_on_the_embedded_model(embedded_dir):
    from ftharness.models.loading import load_model

    lm = load_model()
    prompts = prompts_for(lm, ["What is 2+2?", "Name three colors.", "Say hello in French.",
                               "Write a JSON object with keys a and b.", "Why is the sky blue? Answer briefly."])
    settings = GenerationSettings(max_new_tokens=20, batch_size=5)
    results = generate(lm, prompts, settings, progress=False)
    eos = set(generation_config(lm, settings).eos_token_id)
    reference = one_at_a_time(lm, prompts, settings)
    for r, ids in zip(results, reference, strict=True):
        assert r.text == decode_like_engine(lm, ids, eos)
        assert r.new_tokens == len(ids)
        assert "<|im_end|>" not in r.text
    assert {"eos", "length"} <= {r.finish_reason for r in results}  # short answers end, long ones hit the limit
    assert "4" in results[0].text
