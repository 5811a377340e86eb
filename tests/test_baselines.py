"""Prompting baselines: zero-shot, few-shot and retrieved few-shot prompt construction."""

from __future__ import annotations

import pytest

from ftharness.baselines import BaselineSpec, build_messages, build_prompts, select_shots, zero_shot_messages
from ftharness.data.records import Example
from ftharness.errors import BadInput


def ex(text, answer=None, system=None):
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
    return Example(messages=messages, completion=answer)


TRAIN = [
    ex("the cat sat on the mat", "cat"),
    ex("dogs bark at the mailman", "dog"),
    ex("a cat chased the red ball", "cat"),
    ex("fish swim in the sea", "fish"),
    ex("birds fly south in winter", "bird"),
    ex("my cat sleeps on the mat all day", "cat"),
]
EVAL = [ex("the cat sat on the mat", "cat"), ex("which fish swim in the deep sea", "fish")]


def test_zero_shot_puts_the_instruction_in_the_system_turn():
    assert zero_shot_messages("Name the animal.", EVAL[0]) == [
        {"role": "system", "content": "Name the animal."},
        {"role": "user", "content": "the cat sat on the mat"},
    ]
    assert zero_shot_messages(None, EVAL[0]) == [{"role": "user", "content": "the cat sat on the mat"}]
    merged = zero_shot_messages("Name the animal.", ex("x", system="Be brief."))
    assert merged[0] == {"role": "system", "content": "Name the animal.\n\nBe brief."} and len(merged) == 2
    spec = BaselineSpec("zs", "zero-shot")
    assert build_messages(spec, "Name the animal.", TRAIN, EVAL) == [zero_shot_messages("Name the animal.", e) for e in EVAL]


def test_few_shot_same_shots_for_every_input_fixed_by_seed():
    spec = BaselineSpec("fs", "few-shot", k=3, seed=7)
    shots = select_shots(spec, TRAIN, EVAL)
    assert shots[0] == shots[1] and len(shots[0]) == 3
    assert select_shots(BaselineSpec("fs", "few-shot", k=3, seed=7), TRAIN, EVAL) == shots
    assert 0 not in shots[0]  # train[0] equals an eval input: never a shot
    other = {tuple(select_shots(BaselineSpec("fs", "few-shot", k=3, seed=s), TRAIN, EVAL)[0]) for s in range(6)}
    assert len(other) > 1  # the seed matters
    messages = build_messages(spec, "Name the animal.", TRAIN, EVAL)[1]
    assert messages[0] == {"role": "system", "content": "Name the animal."}
    assert [m["role"] for m in messages[1:]] == ["user", "assistant"] * 3 + ["user"]
    assert messages[-1] == {"role": "user", "content": "which fish swim in the deep sea"}
    for j, i in enumerate(shots[1]):
        assert messages[1 + 2 * j] == {"role": "user", "content": TRAIN[i].input_text}
        assert messages[2 + 2 * j] == {"role": "assistant", "content": TRAIN[i].completion}


def test_retrieved_picks_most_similar_last_and_never_the_input_itself():
    spec = BaselineSpec("rag", "retrieved", k=2)
    shots = select_shots(spec, TRAIN, EVAL)
    assert 0 not in shots[0]  # the exact same input is excluded
    assert shots[0][-1] == 5  # "my cat sleeps on the mat": the most similar, nearest the input
    assert set(shots[0]) == {5, 2}
    assert shots[1][-1] == 3  # fish
    messages = build_messages(spec, None, TRAIN, EVAL)[1]
    assert messages[-3] == {"role": "user", "content": "fish swim in the sea"}
    assert messages[-2] == {"role": "assistant", "content": "fish"}


def test_shots_skip_unlabeled_examples_and_need_some():
    train = [ex("no answer here"), ex("a cat", "cat")]
    assert select_shots(BaselineSpec("fs", "few-shot", k=5), train, EVAL) == [[1], [1]]
    with pytest.raises(BadInput, match="needs labeled training examples"):
        select_shots(BaselineSpec("fs", "retrieved", k=2), [ex("x")], EVAL)


def test_spec_validation_and_dict():
    with pytest.raises(BadInput, match="unknown baseline kind"):
        BaselineSpec("x", "rag-ish")
    with pytest.raises(BadInput, match="k >= 1"):
        BaselineSpec("x", "few-shot", k=0)
    assert BaselineSpec("z", "zero_shot").to_dict() == {"name": "z", "kind": "zero-shot"}
    assert BaselineSpec("f", "few-shot", k=2, seed=3).to_dict() == {"name": "f", "kind": "few-shot", "k": 2, "seed": 3}
    assert "TF-IDF" in BaselineSpec("r", "retrieved").to_dict()["retrieval"]


def test_rendered_prompts_use_the_chat_template(tiny_model_dir):
    from ftharness.models.loading import load_tokenizer

    tok = load_tokenizer(str(tiny_model_dir))
    prompts = build_prompts(BaselineSpec("fs", "few-shot", k=2), "Name the animal.", TRAIN, EVAL, tok)
    assert len(prompts) == 2
    assert prompts[0].startswith("<|im_start|>system\nName the animal.<|im_end|>")
    assert prompts[0].endswith("<|im_start|>user\nthe cat sat on the mat<|im_end|>\n<|im_start|>assistant\n")
    assert prompts[0].count("<|im_start|>assistant") == 3
