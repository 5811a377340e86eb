"""The validation split and what it decides: deterministic, disjoint from eval, the only data that chooses a
sweep's finalist, and the trainer never sees the eval set. Also: `prompt: bare` is the same at train and
serve time."""

from __future__ import annotations

import random
import types
from dataclasses import replace
from pathlib import Path

import pytest
from fake_engine import use_rule_engine
from test_compare import EXAMPLE, FakeBackend, builtin_plugins, write_task

from ftharness.compare import backend as backend_mod
from ftharness.compare import run as run_mod
from ftharness.compare.selection import choose
from ftharness.compare.task import load_task
from ftharness.data.dedup import normalise
from ftharness.data.loading import load_dataset
from ftharness.data.split import carve_validation, validation_size
from ftharness.errors import BadInput
from ftharness.report.records import SweepPoint

# --- the split -------------------------------------------------------------------------------------


def test_split_is_deterministic_and_independent_of_row_order():
    train = load_dataset(EXAMPLE / "train.jsonl")
    fit, val = carve_validation(train, fraction=0.1, minimum=16, seed=0)
    fit2, val2 = carve_validation(train, fraction=0.1, minimum=16, seed=0)
    assert [e.input_text for e in val.examples] == [e.input_text for e in val2.examples]
    shuffled = list(train.examples)
    random.Random(1).shuffle(shuffled)
    _, val3 = carve_validation(replace(train, examples=shuffled), fraction=0.1, minimum=16, seed=0)
    assert {e.input_text for e in val3.examples} == {e.input_text for e in val.examples}
    assert len(val) == 16 and len(fit) == 144
    _, other_seed = carve_validation(train, fraction=0.1, minimum=16, seed=1)
    assert {e.input_text for e in other_seed.examples} != {e.input_text for e in val.examples}


def test_split_is_disjoint_from_training_rows_and_from_eval():
    train = load_dataset(EXAMPLE / "train.jsonl")
    evalset = load_dataset(EXAMPLE / "eval.jsonl")
    fit, val = carve_validation(train, fraction=0.1, minimum=16, seed=0)
    held = {normalise(e.input_text) for e in val.examples}
    assert not held & {normalise(e.input_text) for e in fit.examples}
    assert not held & {normalise(e.input_text) for e in evalset.examples}


def test_split_moves_every_copy_of_a_held_input():
    train = load_dataset(EXAMPLE / "train.jsonl")
    dup = train.examples[:20] + train.examples[:20]  # every input twice
    fit, val = carve_validation(replace(train, examples=dup), fraction=0.1, minimum=4, seed=0)
    assert not {e.input_text for e in fit.examples} & {e.input_text for e in val.examples}
    assert len(fit) + len(val) == 40


def test_split_sizes_and_too_little_data():
    assert validation_size(160, 0.1, 16) == 16
    assert validation_size(1000, 0.1, 16) == 100
    assert validation_size(20, 0.1, 16) == 10  # never more than half
    train = load_dataset(EXAMPLE / "train.jsonl")
    with pytest.raises(BadInput, match="too few training rows"):
        carve_validation(replace(train, examples=train.examples[:1]), fraction=0.1, minimum=16, seed=0)


def point(name, metrics, validation_loss=None):
    return SweepPoint(name=name, hyperparameters={}, metrics=metrics, validation_loss=validation_loss,
                      stopped_early=None, restored_best_from_step=None, training_wall_s=None, global_step=None,
                      outputs=[])


def test_selection_order():
    points = [
        point("a", {"m": 0.5, "format.parse_rate": 1.0}, 0.1),
        point("b", {"m": 0.7, "format.parse_rate": 0.2}, 0.9),
        point("c", {"m": 0.7, "format.parse_rate": 0.9}, 0.5),
        point("d", {"m": 0.7, "format.parse_rate": 0.9}, 0.4),
    ]
    assert choose(points, "m") == "d"  # best metric, then parse rate, then validation loss
    assert choose(points, "m", higher_is_better=False) == "a"
    assert choose([point("x", {}), point("y", {"m": 0.0})], "m") == "y"


# --- sweeps are chosen on validation only ------------------------------------------------------------

SWEEP = """
candidates:
  - name: lora
    method: lora
    hyperparameters: {epochs: 1}
    sweep: {learning_rate: [1.0e-4, 1.0e-3]}
"""


class SplitBrainBackend(FakeBackend):
    """The lr=1e-4 point answers the validation rows right and the eval rows wrong; lr=1e-3 the reverse.
    A selection that looked at the eval set would pick lr=1e-3."""

    def load_trained(self, artifact):
        return types.SimpleNamespace(name=f"trained:{artifact.lr}", adapter=None, tokenizer=None, model=None)

    def train(self, option, data, parent, progress):
        art = super().train(option, data, parent, progress)
        art.lr = option.entry.hyperparameters["learning_rate"]
        return art

    def generate(self, lm, prompts, constrained=None):
        self._count("generate")
        evals = {ex.input_text: ex.completion for ex in self._data.eval.examples}
        others = {ex.input_text: ex.completion for ex in self._data.train.examples}
        out = []
        for p in prompts:
            inp = next(i for i in [*evals, *others] if p.endswith(i))
            ref = evals.get(inp) or others[inp]
            good = (inp in evals) == (lm.name == "trained:0.001")
            text = ref if good else "Sure! " + ref
            out.append(types.SimpleNamespace(text=text, prompt_tokens=len(p) // 4, new_tokens=40,
                                             latency_s=0.5, finish_reason="eos"))
        return out


def test_sweep_finalist_is_chosen_on_validation_and_only_it_meets_eval(tmp_path, monkeypatch, check_results):
    builtin_plugins(monkeypatch)
    SplitBrainBackend.calls = {}
    monkeypatch.setattr(run_mod, "Backend", SplitBrainBackend)
    use_rule_engine(FakeBackend)
    path = write_task(tmp_path, candidates=SWEEP)
    outcome = run_mod.run_compare(path, out=tmp_path / "r", progress=False)
    check_results(outcome.run.root / "results.json")
    results = outcome.results
    sel = results.selection["lora"]
    assert sel.on == "validation" and sel.n == 16
    assert sel.chosen == "lora-lr1e-4"
    by_point = {p.name: p for p in sel.points}
    assert by_point["lora-lr1e-4"].metrics["format.parse_rate"] == 1.0
    assert by_point["lora-lr1e-3"].metrics["format.parse_rate"] == 0.0
    names = [o.name for o in results.options]
    assert "lora-lr1e-4" in names and "lora-lr1e-3" not in names  # only the finalist meets eval
    assert next(o for o in results.options if o.name == "lora-lr1e-4").metrics["format.parse_rate"] == 0.0  # its honest eval score
    assert results.data["validation"].n == 16 and results.data["validation"].trained_on == 144
    phases = {(p.phase, p.option) for p in results.timing.phases}
    assert ("validate: generate", "lora-lr1e-3") in phases and ("generate", "lora-lr1e-4") in phases


def test_the_trainer_never_sees_the_eval_set(tmp_path, monkeypatch):
    """What reaches train_candidate (rows, validation rows, system prompt) is identical for two different
    eval files: the artifact cannot depend on eval data."""
    builtin_plugins(monkeypatch)
    import ftharness.training.run as training_run
    from ftharness.training.run import examples_hash

    seen = []

    def capture(spec, train, validation, *, system_prompt=None, start_from=None, progress=True, typed_hyperparameters=None,
                launch=None):
        seen.append((examples_hash(train.examples), examples_hash(validation.examples), system_prompt,
                     spec.hyperparameters))
        return None

    monkeypatch.setattr(training_run, "train_candidate", capture)
    path = write_task(tmp_path)
    rows = (EXAMPLE / "eval.jsonl").read_text().splitlines()
    for i, subset in enumerate((rows[:12], rows[12:])):
        other = tmp_path / f"eval{i}.jsonl"
        other.write_text("\n".join(subset) + "\n")
        text = path.read_text().replace(str(EXAMPLE / "eval.jsonl"), str(other))
        p = tmp_path / f"task{i}.yaml"
        p.write_text(text)
        task = load_task(p)
        backend = backend_mod.Backend(task)
        data = backend.load_data()
        option = next(o for o in backend_mod.options_of(task) if o.kind == "candidate")
        backend.train(option, data, None, False)
    assert len(seen) == 2 and seen[0] == seen[1]
    assert seen[0][2] is not None  # prompt: instruction (the default) trains with the instruction


# --- prompt: bare -----------------------------------------------------------------------------------


def test_bare_prompt_is_the_same_at_train_and_serve_time(tmp_path, monkeypatch, tiny_model_dir):
    from transformers import AutoTokenizer

    import ftharness.training.run as training_run
    from ftharness.models.generation import encode_prompt
    from ftharness.models.prompts import render_prompt
    from ftharness.training.sequences import sft_rows

    builtin_plugins(monkeypatch)
    seen = {}

    def capture(spec, train, validation, *, system_prompt=None, start_from=None, progress=True, typed_hyperparameters=None,
                launch=None):
        seen["system_prompt"], seen["train"] = system_prompt, train
        return None

    monkeypatch.setattr(training_run, "train_candidate", capture)
    cands = "candidates:\n  - {name: bare, method: lora, prompt: bare}\n"
    task = load_task(write_task(tmp_path, candidates=cands))
    backend = backend_mod.Backend(task)
    data = backend.load_data()
    option = next(o for o in backend_mod.options_of(task) if o.kind == "candidate")
    backend.train(option, data, None, False)
    assert seen["system_prompt"] is None

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    ex = seen["train"].examples[0]
    served = backend.messages(option, data, [ex])[0]
    assert all(task.instruction not in m["content"] for m in served)
    serve_ids = encode_prompt(tok, render_prompt(tok, served))
    (row,), _ = sft_rows(tok, [ex], seen["system_prompt"], max_length=1024)
    assert row["input_ids"][: row["completion_start"]] == serve_ids
    # the instruction candidate's prompt carries the instruction, and is longer
    instr = replace(option.entry, prompt="instruction")
    long = backend.messages(replace(option, entry=instr), data, [ex])[0]
    assert long[0]["role"] == "system" and task.instruction in long[0]["content"]


def test_results_validate_record(tmp_path, monkeypatch, check_results):
    """A plain run (no sweep) still records its validation split."""
    builtin_plugins(monkeypatch)
    FakeBackend.calls = {}
    monkeypatch.setattr(run_mod, "Backend", FakeBackend)
    use_rule_engine(FakeBackend)
    outcome = run_mod.run_compare(write_task(tmp_path), out=tmp_path / "r", progress=False)
    doc = check_results(outcome.run.root / "results.json")
    assert doc["data"]["validation"]["carved_from"] == "train"
    assert doc["selection"] == {}
    assert Path(doc["data"]["eval"]["path"]).name == "eval.jsonl"
