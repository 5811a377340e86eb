"""Replay: general rows mixed into supervised training, from a source disjoint from the forgetting
reference's scored parts; language-modelling rows among supervised ones; the task fields and sweeps."""

from __future__ import annotations

import pytest
from test_compare import EXAMPLE, write_task

from ftharness.compare import replay
from ftharness.compare.task import load_task
from ftharness.data import general
from ftharness.data.records import Dataset, Example
from ftharness.errors import BadInput


def test_replay_rows_share_no_document_with_the_forgetting_reference():
    rows = replay.text_rows("general", None, 40, seed=0)
    assert len(rows) == 40 and all(r.messages == [] for r in rows)
    scored = set(general.documents(None, "test")) | set(general.documents(None, "selection"))
    assert not {r.completion for r in rows} & scored
    assert [r.completion for r in rows] == [r.completion for r in replay.text_rows("general", None, 40, seed=0)]
    assert [r.completion for r in rows] != [r.completion for r in replay.text_rows("general", None, 40, seed=1)]
    prompts = replay.self_prompts()
    assert prompts and all(p.startswith("Explain: ") for p in prompts)


def test_a_text_row_trains_every_token_and_a_task_row_only_its_answer(varied_tiny_lm):
    from ftharness.training.sequences import sft_rows

    tok = varied_tiny_lm.tokenizer
    task_row = Example(messages=[{"role": "user", "content": "Order 2 mugs"}], completion='{"qty": 2}')
    lm_row = Example(messages=[], completion="General text about rivers and towns.")
    rows, stats = sft_rows(tok, [task_row, lm_row], None, max_length=256)
    assert stats["language_modelling"] == 1
    assert rows[0]["completion_start"] > 0 and rows[0]["labels"][0] == -100
    assert rows[1]["completion_start"] == 0 and rows[1]["labels"] == rows[1]["input_ids"]
    assert rows[1]["input_ids"][-1] == tok.eos_token_id


def test_with_replay_adds_rows_and_changes_the_training_hash():
    from ftharness.training.run import examples_hash

    fit = Dataset(examples=[Example(messages=[{"role": "user", "content": "x"}], completion="y")], format="chat")
    mixed = replay.with_replay(fit, replay.text_rows("general", None, 1, seed=0))
    assert len(mixed) == 2 and examples_hash(mixed.examples) != examples_hash(fit.examples)
    assert replay.replay_count(0.2, 144) == 29 and replay.replay_count(0.0, 144) == 0


def test_replay_is_a_candidate_field_and_its_fraction_can_be_swept(tmp_path):
    candidates = """
candidates:
  - name: lora
    method: lora
    hyperparameters: {epochs: 1}
    replay: {source: general}
    sweep: {learning_rate: [1.0e-3, 2.0e-3], replay.fraction: [0, 0.2]}
    sweep_strategy: halving
"""
    task = load_task(write_task(tmp_path, candidates=candidates), check_plugins=False)
    points = {c.name: c for c in task.candidates}
    assert set(points) == {"lora-lr1e-3-replay0", "lora-lr1e-3-replay0.2", "lora-lr2e-3-replay0",
                           "lora-lr2e-3-replay0.2"}
    assert points["lora-lr1e-3-replay0.2"].replay.fraction == 0.2
    assert points["lora-lr1e-3-replay0"].replay.fraction == 0.0
    assert all(c.sweep_strategy == "halving" for c in task.candidates)


@pytest.mark.parametrize(("block", "field", "message"), [
    ("    replay: {fraction: 1.5}\n", "candidates[0].replay.fraction", ""),
    ("    replay: {source: nowhere.jsonl}\n", "candidates.lora.replay.source", "neither general nor self"),
    ("    sweep: {replay.fraction: [0.5, 2]}\n", "candidates.lora.sweep.replay.fraction", "[0, 1)"),
    ("    sweep: {replay.source: [general]}\n", "candidates.lora.sweep.replay.source", "only replay.fraction"),
    ("    sweep_strategy: halving\n", "candidates.lora.sweep_strategy", "add a sweep"),
])
def test_bad_replay_and_strategy_fields_name_their_field(tmp_path, block, field, message):
    candidates = f"candidates:\n  - name: lora\n    method: lora\n    hyperparameters: {{epochs: 1}}\n{block}"
    with pytest.raises(BadInput) as e:
        load_task(write_task(tmp_path, candidates=candidates), check_plugins=False)
    assert e.value.field == field and message in e.value.reason


def test_replay_refuses_a_candidate_that_does_not_train_on_supervised_rows(tmp_path):
    candidates = ("candidates:\n  - name: dpo\n    trainer: trl-dpo\n    method: dpo\n    hyperparameters: {epochs: 1}\n"
                  "    replay: {fraction: 0.2}\n")
    with pytest.raises(BadInput, match="supervised training rows"):
        load_task(write_task(tmp_path, candidates=candidates), check_plugins=False)
    assert EXAMPLE.is_dir()
