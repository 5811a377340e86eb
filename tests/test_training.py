"""Training runs as a whole: the cache key, resuming an interrupted run, the prompt-loss weight, padding-free
batches, early stopping, memory measurement, and `ftharness train` with its bad inputs and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
SYSTEM = "Extract the order as JSON."


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _data(n_train=8, n_eval=2):
    from ftharness.data.loading import load_dataset

    d = load_dataset(DATA / "train_tiny.jsonl")
    return (type(d)(d.examples[:n_train], d.format, d.file, d.sha256),
            type(d)(d.examples[n_train:n_train + n_eval], d.format, d.file, d.sha256) if n_eval else None)


def _spec(tiny, **hp):
    from ftharness.training.trainer import CandidateSpec

    base = {"max_steps": 4, "batch_size": 4, "learning_rate": 2e-2, "early_stopping_patience": None}
    return CandidateSpec(name="tiny-lora", method="lora", base_model=str(tiny), hyperparameters={**base, **hp})


def _stop_after(step):
    from transformers import TrainerCallback

    class Stop(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step >= step:
                raise KeyboardInterrupt  # as if the user pressed Ctrl-C after this step

    return Stop()


# -- resume and cache ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_interrupted_training_resumes_from_its_last_checkpoint(tiny_model_dir, isolated_cache):
    from ftharness.training.run import train_candidate

    train, evald = _data()
    spec = _spec(tiny_model_dir, checkpoint_steps=1, max_steps=5)
    with pytest.raises(KeyboardInterrupt):
        train_candidate(spec, train, evald, system_prompt=SYSTEM, progress=False, callbacks=[_stop_after(3)])
    folders = list((isolated_cache / "artifacts").iterdir())
    assert len(folders) == 1 and not (folders[0] / "candidate.json").exists()  # incomplete
    checkpoints = sorted(p.name for p in (folders[0] / "work").iterdir() if p.name.startswith("checkpoint-"))
    assert checkpoints == ["checkpoint-2"]  # step 3's checkpoint was never written: the run stopped first

    art = train_candidate(spec, train, evald, system_prompt=SYSTEM, progress=False)
    assert not art.cached and art.path == folders[0]
    assert art.result.extra["resumed_from_step"] == 2 and art.result.extra["global_step"] == 5
    steps = [p["step"] for p in art.result.loss_curve if "loss" in p]
    assert steps == [1, 2, 3, 4, 5]  # the curve before the interruption comes back from the checkpoint
    assert (art.path / "candidate.json").is_file() and not (art.path / "work").exists()


@pytest.mark.slow
def test_cache_key_covers_settings_data_and_prompt_but_not_the_name(tiny_model_dir, isolated_cache):
    from dataclasses import replace

    from ftharness.training.run import train_candidate

    train, evald = _data()
    spec = _spec(tiny_model_dir, max_steps=1)
    first = train_candidate(spec, train, evald, system_prompt=SYSTEM, progress=False)
    renamed = train_candidate(replace(spec, name="same-settings"), train, evald, system_prompt=SYSTEM,
                              progress=False)
    assert renamed.cached and renamed.path == first.path and renamed.spec.name == "same-settings"
    explicit_default = train_candidate(_spec(tiny_model_dir, max_steps=1, r=16), train, evald,
                                       system_prompt=SYSTEM, progress=False)
    assert explicit_default.cached  # hyperparameters are compared after filling in defaults
    record = json.loads((first.path / "candidate.json").read_text())
    assert record["hyperparameters"]["r"] == 16 and record["seed"] == 0
    assert record["base_model"]["sha256"] and record["data"]["train"]["examples"] == 8
    assert {"torch", "transformers", "peft", "trl"} <= set(record["libraries"])
    for other in (
        lambda: train_candidate(_spec(tiny_model_dir, max_steps=1, r=8), train, evald, system_prompt=SYSTEM,
                                progress=False),
        lambda: train_candidate(spec, train, evald, system_prompt="Another instruction.", progress=False),
        lambda: train_candidate(spec, _data(n_train=7)[0], evald, system_prompt=SYSTEM, progress=False),
    ):
        art = other()
        assert not art.cached and art.path != first.path


# -- losses and batches -----------------------------------------------------------------------------------


def test_padding_free_batches_give_the_logits_of_separate_sequences(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    from ftharness.training.sequences import SequenceCollator

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="sdpa").eval()
    torch.manual_seed(0)
    rows = [{"input_ids": torch.randint(5, 1000, (n,)).tolist()} for n in (7, 12, 5)]
    for r in rows:
        r["labels"] = list(r["input_ids"])
    batch = SequenceCollator(pad_token_id=0, padding_free=True)(rows)
    assert batch["input_ids"].shape == (1, 24) and "attention_mask" not in batch
    assert batch["labels"][0, 7] == -100 and batch["labels"][0, 19] == -100  # no cross-sequence targets
    with torch.no_grad():
        flat = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        start = 0
        for r in rows:
            alone = model(input_ids=torch.tensor([r["input_ids"]]), use_cache=False).logits[0]
            n = len(r["input_ids"])
            assert torch.allclose(flat[start:start + n], alone, atol=1e-5)
            start += n


def test_sft_rows_mask_the_prompt_and_end_with_the_end_of_turn(tiny_model_dir):
    from transformers import AutoTokenizer

    from ftharness.training.sequences import sft_rows

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    train, _ = _data(2, 0)
    rows, stats = sft_rows(tok, train.examples, SYSTEM, max_length=512)
    row = rows[0]
    start = row["completion_start"]
    assert row["labels"][:start] == [-100] * start and row["labels"][start:] == row["input_ids"][start:]
    assert tok.decode(row["input_ids"][start:]).endswith("<|im_end|>")
    assert SYSTEM in tok.decode(row["input_ids"][:start])
    weighted, _ = sft_rows(tok, train.examples, SYSTEM, max_length=512, prompt_loss_weight=0.25)
    assert weighted[0]["loss_weights"][:start] == [0.25] * start and weighted[0]["loss_weights"][-1] == 1.0
    cut, stats = sft_rows(tok, train.examples, SYSTEM, max_length=start + 2)
    assert stats["truncated"] == 2 and len(cut[0]["input_ids"]) == start + 2


@pytest.mark.slow
def test_prompt_loss_weight_lies_between_completion_only_and_full_sequence(tiny_model_dir, isolated_cache):
    """The first logged loss is computed before any update: a weighted mean of prompt and completion token
    losses is monotone in the weight, so w=0.5 must fall between w=0 and w=1."""
    from ftharness.training.run import train_candidate

    train, _ = _data()
    first = {}
    for w in (0.0, 0.5, 1.0):
        art = train_candidate(_spec(tiny_model_dir, max_steps=1, prompt_loss_weight=w, padding_free=w != 0.5),
                              train, None, system_prompt=SYSTEM, progress=False)
        first[w] = art.result.loss_curve[0]["loss"]
    lo, hi = sorted((first[0.0], first[1.0]))
    assert first[0.0] != pytest.approx(first[1.0], abs=1e-3)
    assert lo < first[0.5] < hi, first


def test_early_stopping_stops_after_patience_and_restores_the_best(tmp_path):
    import torch
    from transformers import TrainerControl, TrainerState

    from ftharness.training.callbacks import best_eval_callback

    model = torch.nn.Linear(2, 1)
    cb = best_eval_callback(2, tmp_path / "best.pt")
    state, control = TrainerState(), TrainerControl()
    for step, loss in ((1, 1.0), (2, 0.5), (3, 0.7), (4, 0.8)):
        with torch.no_grad():
            model.weight.fill_(float(step))
        state.log_history.append({"step": step, "eval_loss": loss})
        cb.on_evaluate(None, state, control, metrics={"eval_loss": loss}, model=model)
        assert control.should_training_stop == (step == 4)
    cb.on_train_end(None, state, control, model=model)
    assert cb.restored_from_step == 2 and float(model.weight[0, 0]) == 2.0


def test_measure_reports_peak_rss_of_the_block():
    import mmap
    import time

    from ftharness.training.measure import Measure

    size = 300 * 2**20
    with Measure(cuda=False, interval_s=0.01) as m:
        # A fresh anonymous mapping: malloc could hand back memory the process freed earlier, already resident.
        block = mmap.mmap(-1, size)
        for offset in range(0, size, mmap.PAGESIZE):  # touch every page so it is resident
            block[offset] = 1
        time.sleep(0.1)
        block.close()
    r = m.result
    assert r.memory_kind == "rss" and r.samples > 0 and r.wall_s >= 0.1
    assert r.peak_memory_bytes - r.start_memory_bytes > 250 * 2**20


# -- the command line -------------------------------------------------------------------------------------


def _candidate(tmp_path, text, name="cand.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def _cli(capsys, *argv):
    from ftharness.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_cli_trains_then_reuses_the_cache_with_json(tiny_model_dir, isolated_cache, tmp_path, capsys):
    p = _candidate(tmp_path, f"""
name: cli-lora
base_model: {tiny_model_dir}
hyperparameters: {{max_steps: 2, batch_size: 4, learning_rate: 0.02}}
data: {{train: {DATA / 'train_tiny.jsonl'}}}
system_prompt: {SYSTEM}
""")
    code, out, err = _cli(capsys, "train", str(p), "--json", "--no-progress")
    assert code == 0, err
    doc = json.loads(out)  # stdout holds the JSON document and nothing else
    assert doc["cached"] is False and doc["kind"] == "adapter" and doc["result"]["train_tokens"] > 0
    assert doc["model_args"]["adapter"] == doc["path"]
    code, out, err = _cli(capsys, "train", str(p), "--json", "--no-progress")
    assert code == 0 and json.loads(out)["cached"] is True


@pytest.mark.parametrize("body, field", [
    ("hyperparameters: {rank: 8}", "hyperparameters.rank"),
    ("hyperparameters: {r: sixteen}", "hyperparameters.r"),
    ("hyperparameters: {learning_rate: -1}", "hyperparameters.learning_rate"),
    ("hyperparameters: {prompt_loss_weight: 2}", "hyperparameters.prompt_loss_weight"),
    ("trainer: nosuch", "trainer"),
    ("method: dpo", "method"),
    ("method: distill", "method"),
    ("colour: blue", "colour"),
    ("data: {train: missing.jsonl}", "data.train"),
    ("start_from: nowhere.yaml", "start_from"),
])
def test_cli_bad_candidate_files_exit_2_with_one_line(tmp_path, capsys, body, field):
    data = "" if body.startswith("data:") else f"data: {{train: {DATA / 'train_tiny.jsonl'}}}\n"
    p = _candidate(tmp_path, f"name: bad\n{data}{body}\n")
    code, out, err = _cli(capsys, "train", str(p))
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and field in err and str(p) in err, err


@pytest.mark.parametrize("method, why", [("prefix", "do not fold into the base weights"),
                                         ("full", "has nothing to merge")])
def test_cli_merge_to_is_refused_before_training_what_cannot_merge(tmp_path, capsys, isolated_cache, method, why):
    p = _candidate(tmp_path, f"name: m\nmethod: {method}\ndata: {{train: {DATA / 'train_tiny.jsonl'}}}\n")
    code, out, err = _cli(capsys, "train", str(p), "--merge-to", str(tmp_path / "merged"))
    assert code == 2 and out == "" and why in err, err
    assert not (isolated_cache / "artifacts").exists() or not any((isolated_cache / "artifacts").iterdir())


def test_cli_unsloth_on_cpu_exits_3_before_any_work(tmp_path, capsys, isolated_cache):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the unsloth check is for CPU-only machines")
    p = _candidate(tmp_path, f"name: fast\ntrainer: unsloth\nmethod: qlora\n"
                             f"data: {{train: {DATA / 'train_tiny.jsonl'}}}\n")
    code, out, err = _cli(capsys, "train", str(p))
    assert code == 3 and out == ""
    assert len(err.strip().splitlines()) == 1 and "needs an NVIDIA GPU with CUDA" in err
    assert not (isolated_cache / "artifacts").exists() or not any((isolated_cache / "artifacts").iterdir())
    import sys

    assert "unsloth" not in sys.modules  # never imported: importing it patches transformers


def test_plugins_lists_unsloth_as_unavailable_here(capsys):
    import torch

    from ftharness.plugins import get_plugins

    plugins = get_plugins()
    found = plugins.entries("trainers")
    assert {"peft", "trl-dpo", "unsloth"} <= set(found)
    assert set(found["peft"].methods) >= {"lora", "qlora", "dora", "ia3", "prefix", "prompt-tuning", "full", "partial"}
    if not torch.cuda.is_available():
        assert plugins.unavailable_reason("trainers", "unsloth", "qlora").startswith("needs an NVIDIA GPU with CUDA")
        code, out, _ = _cli(capsys, "plugins", "--json")
        info = next(i for i in json.loads(out) if i["name"] == "unsloth_trainer")
        assert "unsloth" in info["unavailable"]


def test_example_candidate_files_are_valid():
    from ftharness.training.spec import load_candidate_file

    files = sorted((Path(__file__).parent.parent / "examples" / "candidates").glob("*.yaml"))
    assert len(files) >= 4
    for f in files:
        cf = load_candidate_file(f)
        assert cf.spec.name


def test_padding_free_only_where_attention_splits_packed_sequences():
    import types

    from ftharness.training.sft import varlen_attention

    def model(impl):
        return types.SimpleNamespace(config=types.SimpleNamespace(_attn_implementation=impl))

    assert varlen_attention(model("flash_attention_2")) and varlen_attention(model("flash_attention_3"))
    assert not varlen_attention(model("sdpa")) and not varlen_attention(model("eager"))
    assert not varlen_attention(types.SimpleNamespace())


# -- the model card ----------------------------------------------------------------------------------------


def test_the_artifact_card_states_hyperparameters_data_and_losses_and_takes_eval_results(tiny_model_dir,
                                                                                       isolated_cache):
    from ftharness.io import sha256_file
    from ftharness.suites.gates import GateOutcome
    from ftharness.training.card import EVALUATION, record_evaluation
    from ftharness.training.run import examples_hash, train_candidate

    train, evald = _data()
    art = train_candidate(_spec(tiny_model_dir, max_steps=2, r=4, eval_steps=1), train, evald,
                          system_prompt=SYSTEM, progress=False)
    card = (art.path / "README.md").read_text()
    assert "[More Information Needed]" not in card  # PEFT's template is replaced
    import yaml

    front = yaml.safe_load(card.split("---\n")[1])  # the front matter the Hub reads
    assert front == {"library_name": "peft", "tags": ["ftharness", "peft", "lora"]}  # a local base: no hub id
    assert "| r | `4` | the candidate |" in card and "| learning_rate | `0.02` | the candidate |" in card
    assert "| lora_alpha | `32` |" in card  # a default, with where it comes from
    assert sha256_file(train.file) in card and examples_hash(train.examples) in card
    assert examples_hash(evald.examples) in card and f"| {Path(train.file).stat().st_size} |" in card
    assert "training loss:" in card and "validation loss:" in card and SYSTEM in card
    gate = GateOutcome(name="format.parse_rate", op=">=", threshold=0.9, value=0.5, passed=False, message="")
    for run in ("run-1", "run-2"):
        assert record_evaluation(art.path, run=run, option="tiny-lora", metrics={"format.parse_rate": 0.5},
                                 gates=[gate])
    card = (art.path / "README.md").read_text()
    assert card.count(EVALUATION) == 1 and "run-2" in card and "run-1" not in card
    assert "| format.parse_rate >= 0.9 | 0.5 | FAIL |" in card and "0 of 1 gates passed" in card
    assert not record_evaluation(art.path.parent, run="r", option="o", metrics={}, gates=[])  # not a card of ours


@pytest.mark.slow
def test_a_stopped_stage_continues_to_the_full_budget(tiny_model_dir, isolated_cache):
    """Successive halving's stages: stop at a step keeping a checkpoint, then continue from it."""
    from ftharness.training.run import RESUME_DIR, train_candidate

    train, evald = _data()
    spec = _spec(tiny_model_dir, max_steps=4, eval_steps=4)
    first = train_candidate(spec, train, evald, system_prompt=SYSTEM, progress=False, stop_at_step=2)
    assert first.result.extra["global_step"] == 2 and (first.path / RESUME_DIR).is_dir()
    assert any(p.get("eval_loss") is not None and p["step"] == 2 for p in first.result.loss_curve)  # validated there
    rest = train_candidate(spec, train, evald, system_prompt=SYSTEM, progress=False, resume_from=first)
    assert rest.path != first.path and rest.record["resumed_from"]["key"] == first.key
    assert rest.result.extra["resumed_from_step"] == 2 and rest.result.extra["global_step"] == 4
    assert [p["step"] for p in rest.result.loss_curve if "loss" in p] == [1, 2, 3, 4]
    assert not (rest.path / RESUME_DIR).exists()
    again = train_candidate(spec, train, evald, system_prompt=SYSTEM, progress=False, resume_from=first)
    assert again.cached and again.path == rest.path
