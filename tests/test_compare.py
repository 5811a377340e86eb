"""`ftharness compare` orchestration with fakes: task files, bad input, decision flow, resume, run folders.

The fake backend replaces only models (training, generation); data loading, prompt building, suites,
gates, statistics, decision and reports are the real code.
"""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest
from fake_engine import use_rule_engine

from ftharness.cli import main
from ftharness.compare import backend as backend_mod
from ftharness.compare import run as run_mod
from ftharness.compare.task import load_task

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "extraction"

SUITE = """
name: fmt
metrics:
  format: {}
gates:
  format.parse_rate: ">= 0.9"
"""


def builtin_plugins(monkeypatch):
    """The built-in plugins only: no third-party plugin installed here changes what the tests see."""
    import ftharness.plugins as plugins

    only_builtins = plugins.Plugins(entry_points=False)
    monkeypatch.setattr(plugins, "get_plugins", lambda: only_builtins)


def write_task(tmp_path: Path, extra: str = "", candidates: str | None = None, gates: str = "") -> Path:
    (tmp_path / "fmt.yaml").write_text(SUITE)
    if candidates is None:
        candidates = """
candidates:
  - name: lora
    method: lora
    hyperparameters: {epochs: 1}
"""
    text = f"""
name: tiny
instruction_file: {EXAMPLE / "instruction.txt"}
schema: {EXAMPLE / "schema.json"}
data:
  train: {EXAMPLE / "train.jsonl"}
  eval: {EXAMPLE / "eval.jsonl"}
  preference: {EXAMPLE / "preference.jsonl"}
slices: [template]
generation: {{max_new_tokens: 16, batch_size: 4}}
baselines:
  - {{name: zero-shot, kind: zero-shot}}
  - {{name: few-shot-2, kind: few-shot, k: 2}}
{candidates}
suites: [fmt.yaml]
{gates}
decision: {{bootstrap_samples: 500}}
{extra}
"""
    p = tmp_path / "task.yaml"
    p.write_text(text)
    return p


class FakeLM:
    def __init__(self, name: str, adapter=None):
        self.name, self.adapter, self.tokenizer, self.model = name, adapter, None, None


class FakeBackend(backend_mod.Backend):
    """Models replaced by rules: the trained candidate answers with the reference JSON, the few-shot
    prompt gets it right two times in three, zero-shot always adds a prose prefix."""

    calls: dict[str, int] = {}
    fail_on: str | None = None  # raise when generating this option's second batch (a fake kill)

    live: FakeBackend | None = None  # the backend the experiment built (what the rule engine asks)

    def __init__(self, task):
        super().__init__(task)
        self.refs = None
        FakeBackend.live = self

    def _count(self, what):
        FakeBackend.calls[what] = FakeBackend.calls.get(what, 0) + 1

    def base_model(self):
        return FakeLM("base")

    def base_model_record(self):
        return {"spec": "fake"}

    def template_record(self):
        return {"kind": "fake"}

    def environment(self):
        return {"python": "fake"}

    def train(self, option, data, parent, progress):
        self._count(f"train:{option.name}")
        result = {
            "wall_s": 120.0,
            "train_tokens": 1000,
            "tokens_per_s": 8.0,
            "peak_memory_bytes": 2e9,
            "memory_kind": "rss",
            "trainable_params": 10,
            "total_params": 100,
            "loss_curve": [{"step": 1, "epoch": 0.5, "loss": 2.0}, {"step": 2, "epoch": 1.0, "loss": 1.0}],
            "extra": {},
        }
        return types.SimpleNamespace(path=Path("/nonexistent/artifact"), result=result, cached=False)

    def load_trained(self, artifact):
        return FakeLM("trained")

    def generate(self, lm, prompts, constrained=None):
        self._count("generate")
        if (
            FakeBackend.fail_on
            and self._current == FakeBackend.fail_on
            and self._batches.get(self._current, 0) >= 1
        ):
            raise RuntimeError("fake failure injected")
        self._batches[self._current] = self._batches.get(self._current, 0) + 1
        refs = {ex.input_text: ex.completion for ex in [*self._data.eval.examples, *self._data.train.examples]}
        out = []
        for p in prompts:
            ref = next(r for inp, r in refs.items() if p.endswith(inp))
            if lm.name == "trained":
                text = ref
            elif p.count("ORD-") > 2:  # few-shot prompt: shots carry order ids too
                text = ref if sum(map(ord, p)) % 3 else "Sure! " + ref
            else:
                text = "Here is the JSON: " + ref
            out.append(
                types.SimpleNamespace(
                    text=text, prompt_tokens=len(p) // 4, new_tokens=40, latency_s=0.5, finish_reason="eos"
                )
            )
        return out

    def plan(self, option, data, seq_len):
        return {"peak_gb": 1.5}

    # the experiment tells the fake which option it is generating for
    def messages(self, option, data, examples):
        self._current, self._data = option.name, data
        if not hasattr(self, "_batches"):
            self._batches = {}
        return super().messages(option, data, examples)


@pytest.fixture
def fake(monkeypatch, tmp_path, check_results):
    """The fake backend for every run of the test; afterwards, every results.json the test's runs wrote
    follows the published schema."""
    builtin_plugins(monkeypatch)
    FakeBackend.calls = {}
    FakeBackend.fail_on = None
    monkeypatch.setattr(run_mod, "Backend", FakeBackend)
    use_rule_engine(FakeBackend)
    yield FakeBackend
    for path in tmp_path.rglob("results.json"):
        check_results(path)


# --- task files -----------------------------------------------------------------------------------


def test_default_task_loads(monkeypatch):
    builtin_plugins(monkeypatch)
    task = load_task(None, check_plugins=False)
    assert task.name == "extraction"
    points = ["lora-bare-lr1e-3-replay0", "lora-bare-lr1e-3-replay0.2", "lora-bare-lr2e-3-replay0",
              "lora-bare-lr2e-3-replay0.2"]
    assert [c.name for c in task.candidates] == points
    assert task.sweeps == {"lora-bare": points}
    assert {c.sweep_strategy for c in task.candidates} == {"halving"}
    assert {c.replay.source for c in task.candidates} == {"self"}
    assert {c.prompt for c in task.candidates} == {"bare"}
    assert {b.kind for b in task.spec.baselines} == {"zero-shot", "retrieved"}
    assert {b.constrained for b in task.spec.baselines} == {"json-schema"}
    assert task.spec.decision.metric == "task.field_accuracy"
    assert task.schema["required"][0] == "name"
    assert "JSON" in task.instruction


def test_a_task_names_its_gpu_as_people_type_it(tmp_path, monkeypatch):
    builtin_plugins(monkeypatch)
    path = write_task(tmp_path)
    path.write_text(path.read_text().replace("decision: {", "decision: {gpu: NVIDIA GeForce RTX 4090, "))
    assert load_task(path).spec.decision.gpu == "rtx-4090"


def test_full_task_expands_sweep_and_orders_start_from(monkeypatch):
    task = load_task(EXAMPLE / "task-full.yaml", check_plugins=False)
    names = [c.name for c in task.candidates]
    assert task.sweeps["lora"] == [
        "lora-instruction-lr2e-4", "lora-instruction-lr1e-3", "lora-bare-lr2e-4", "lora-bare-lr1e-3"
    ]
    assert {"lora-bare-rank-r4", "lora-bare-rank-r32"} <= set(names)
    dpo = next(c for c in task.candidates if c.method == "dpo")
    assert names.index(dpo.start_from) < names.index(dpo.name)
    assert next(c for c in task.candidates if c.name == "lora-bare-rank-r4").hyperparameters["r"] == 4
    student = next(c for c in task.candidates if c.method == "distill")
    assert student.teacher in {b.name for b in task.spec.baselines} and student.unlabeled is None
    point = next(c for c in task.candidates if c.name == "lora-bare-lr1e-3")
    assert point.prompt == "bare" and point.hyperparameters["learning_rate"] == 1e-3
    assert "prompt" not in point.hyperparameters


BAD = {
    "unknown field": ("extra", "colour: blue", "colour"),
    "unknown trainer": ("candidates", "candidates:\n  - {name: x, trainer: nope}", "unknown trainer"),
    "unknown method": ("candidates", "candidates:\n  - {name: x, method: telepathy}", "peft does not train telepathy"),
    "sweep unknown hp": (
        "candidates",
        "candidates:\n  - {name: x, sweep: {rank_of_doom: [1, 2]}}",
        "candidates.x.sweep.rank_of_doom: unknown hyperparameter for peft/lora",
    ),
    "sweep bad value": (
        "candidates",
        "candidates:\n  - {name: x, sweep: {learning_rate: [1.0e-3, -1]}}",
        "candidates.x.sweep.learning_rate: must be > 0, got -1 (sweep point x-lr-1)",
    ),
    "bad hyperparameter": (
        "candidates",
        "candidates:\n  - {name: x, hyperparameters: {lora_dropout: 1.5}}",
        "candidates.x.hyperparameters.lora_dropout: must be < 1",
    ),
    "start_from unknown": (
        "candidates",
        "candidates:\n  - {name: x, start_from: ghost}",
        "start_from names no",
    ),
    "cycle": (
        "candidates",
        "candidates:\n  - {name: a, start_from: b}\n  - {name: b, start_from: a}",
        "cycle",
    ),
    "bad gate": ("gates", "gates:\n  format.parse_rate: 'about 0.9'", "cannot read"),
    "gate name": ("gates", "gates:\n  parse_rate: '>= 0.9'", "METRIC.VALUE"),
    "duplicate names": ("candidates", "candidates:\n  - {name: zero-shot}", "unique"),
    "unknown suite": ("extra", "", None),
    "unknown gpu": ("extra", "", None),
    "ambiguous gpu": ("extra", "", None),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_task_files_exit_2_with_one_line(case, tmp_path, monkeypatch, capsys):
    builtin_plugins(monkeypatch)
    where, text, expected = BAD[case]
    kwargs = {"extra": text} if where == "extra" else {where: text}
    path = write_task(tmp_path, **kwargs)
    if case == "unknown suite":
        path.write_text(path.read_text().replace("suites: [fmt.yaml]", "suites: [no-such-suite]"))
        expected = "no suite named"
    if case in ("unknown gpu", "ambiguous gpu"):
        gpu = "abacus-9000" if case == "unknown gpu" else "A100"
        path.write_text(path.read_text().replace("decision: {", f"decision: {{gpu: {gpu}, "))
        expected = "decision.gpu: unknown GPU" if case == "unknown gpu" else "decision.gpu: GPU 'A100' matches 2"
    code = main(["compare", str(path), "--out", str(tmp_path / "reports"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert expected in err
    assert not (tmp_path / "reports").exists()  # nothing started


def test_a_method_the_trainer_does_not_declare_is_named_before_its_data(tmp_path, monkeypatch, capsys):
    """`method: dpo` on the default trainer: the trainer is what is wrong, not the missing preference file."""
    builtin_plugins(monkeypatch)
    path = write_task(tmp_path, candidates="candidates:\n  - {name: d, method: dpo}")
    path.write_text(path.read_text().replace(f"  preference: {EXAMPLE / 'preference.jsonl'}\n", ""))
    assert main(["compare", str(path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert "candidates.d.method: peft does not train dpo" in err and "dpo is trained by trl-dpo" in err, err
    assert "data.preference" not in err
    path.write_text(path.read_text().replace("{name: d, method: dpo}", "{name: d, trainer: trl-dpo, method: dpo}"))
    assert main(["compare", str(path), "--out", str(tmp_path / "r")]) == 2
    assert "trains on preference pairs but data.preference is not set" in capsys.readouterr().err


def test_missing_data_file(tmp_path, monkeypatch, capsys):
    builtin_plugins(monkeypatch)
    path = write_task(tmp_path)
    path.write_text(path.read_text().replace(str(EXAMPLE / "eval.jsonl"), str(tmp_path / "missing.jsonl")))
    assert main(["compare", str(path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert "data.eval" in err and "missing.jsonl" in err and len(err.splitlines()) == 1


def test_a_scored_candidate_s_results_and_gates_go_into_its_model_card(tmp_path, fake, monkeypatch, capsys):
    from ftharness.training.card import EVALUATION, MARK

    artifact = tmp_path / "artifact"
    artifact.mkdir()
    (artifact / "README.md").write_text(f"---\nlibrary_name: peft\n---\n{MARK}\n\n# lora\n")
    train = FakeBackend.train

    def train_into_the_folder(self, option, data, parent, progress):
        return types.SimpleNamespace(**{**vars(train(self, option, data, parent, progress)), "path": artifact})

    monkeypatch.setattr(FakeBackend, "train", train_into_the_folder)
    assert main(["compare", str(write_task(tmp_path)), "--out", str(tmp_path / "r"), "--json", "--no-progress"]) == 0
    results = json.loads(capsys.readouterr().out)
    card = (artifact / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: peft") and card.count(EVALUATION) == 1
    assert f"Run `{results['run_id']}` scored this artifact as `lora`" in card
    lora = next(o for o in results["options"] if o["name"] == "lora")
    for g in lora["gates"]:
        assert f"| {g['name']} {g['op']} {g['threshold']:g} |" in card
    assert "| format.parse_rate | 1 |" in card


def test_missing_task_file(tmp_path, capsys):
    assert main(["compare", str(tmp_path / "nope.yaml")]) == 2
    assert "file not found" in capsys.readouterr().err


# --- a whole run with fakes ---------------------------------------------------------------------


def test_run_recommends_the_candidate_and_writes_reports(tmp_path, fake, capsys, check_results):
    path = write_task(tmp_path)
    out = tmp_path / "reports"
    code = main(["compare", str(path), "--out", str(out), "--json", "--no-progress"])
    captured = capsys.readouterr()
    results = check_results(json.loads(captured.out))  # --json: one JSON document on stdout
    assert code == 0
    d = results["decision"]
    assert d["recommended"] == "lora" and d["verdict"] == "finetune" and d["passes_all_gates"]
    assert "parse rate 1.00" in d["headline"] and "recommend finetuning" in d["headline"]
    by = {o["name"]: o for o in results["options"]}
    assert by["zero-shot"]["metrics"]["format.parse_rate"] == 0.0
    assert 0.3 < by["few-shot-2"]["metrics"]["format.parse_rate"] < 0.9
    assert not by["few-shot-2"]["passed"]
    assert by["lora"]["training"]["wall_s"] == 120.0
    assert by["lora"]["memory"]["planned_peak_gb"] == 1.5 and not by["lora"]["memory"]["comparable"]
    comp = next(c for c in results["comparisons"] if c["option"] == "lora")
    assert comp["reference"] == "few-shot-2" and comp["verdict"] == "better"
    assert set(by["lora"]["slices"]["template"]) == {"ticket", "email", "form", "chat"}
    run_dir = out / results["run_id"]
    for name in ("results.json", "junit.xml", "report.html", "run.json", "samples/lora.jsonl"):
        assert (run_dir / name).is_file(), name
    assert len((run_dir / "samples" / "zero-shot.jsonl").read_text().splitlines()) == 24
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"
    assert results["samples"][0]["outputs"]["zero-shot"]["strict_ok"] is False


def test_exit_1_when_nothing_passes(tmp_path, fake, capsys):
    path = write_task(tmp_path, candidates="", gates="gates:\n  format.json_rate_strict: '>= 0.99'")
    code = main(["compare", str(path), "--out", str(tmp_path / "r"), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 1
    assert "no option passes every gate" in out


def test_when_nothing_passes_the_best_candidate_is_still_compared(tmp_path, fake, capsys):
    path = write_task(tmp_path, gates="gates:\n  format.json_rate_strict: '>= 1.01'")
    assert main(["compare", str(path), "--out", str(tmp_path / "r"), "--json", "--no-progress"]) == 1
    d = json.loads(capsys.readouterr().out)["decision"]
    assert d["verdict"] == "none" and d["recommended"] is None
    c = d["comparison"]
    assert c["reference"] == d["best_baseline"] and c["verdict"] in ("better", "worse", "inconclusive", "same")
    assert d["reasons"][0].startswith(f"best candidate {c['option']} vs best prompting baseline")


def test_inconclusive_difference_keeps_prompting(tmp_path, fake, monkeypatch, capsys):
    """A candidate that is only as good as a passing baseline is not recommended over it."""
    monkeypatch.setattr(FakeBackend, "generate", _all_correct)
    path = write_task(tmp_path)
    assert main(["compare", str(path), "--out", str(tmp_path / "r"), "--json", "--no-progress"]) == 0
    d = json.loads(capsys.readouterr().out)["decision"]
    assert d["verdict"] == "prompt" and d["recommended"] in ("zero-shot", "few-shot-2")
    assert d["recommended"] == "zero-shot"  # equal quality, fewer prompt tokens


def _all_correct(self, lm, prompts, constrained=None):
    refs = {ex.input_text: ex.completion for ex in [*self._data.eval.examples, *self._data.train.examples]}
    return [
        types.SimpleNamespace(
            text=next(r for i, r in refs.items() if p.endswith(i)),
            prompt_tokens=len(p) // 4,
            new_tokens=40,
            latency_s=0.5,
            finish_reason="eos",
        )
        for p in prompts
    ]


def _interrupted_run(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(task, reports folder, run folder) of a run that died in the candidate's second batch, after the
    baselines finished."""
    path = write_task(tmp_path)
    out = tmp_path / "reports"
    FakeBackend.fail_on = "lora"
    with pytest.raises(RuntimeError, match="fake failure"):
        run_mod.run_compare(path, out=out, progress=False)
    (run_dir,) = out.iterdir()
    return path, out, run_dir


def test_resume_after_injected_failure_reuses_finished_work(tmp_path, fake, capsys):
    path, out, run_dir = _interrupted_run(tmp_path)
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["status"] == "failed"
    assert manifest["failure"] == {
        "error": "RuntimeError", "message": "fake failure injected", "exit_code": 4, "log": str(run_dir / "run.log")
    }
    assert "fake failure injected" in (run_dir / "run.log").read_text()  # the traceback
    assert (run_dir / "state" / "eval-zero-shot.json").exists()
    assert not (run_dir / "state" / "eval-lora.json").exists()
    assert len((run_dir / "samples" / "lora.jsonl").read_text().splitlines()) == 4  # one batch was kept
    before = dict(FakeBackend.calls)

    FakeBackend.fail_on = None
    outcome = run_mod.run_compare(path, out=out, progress=False)  # the same command again
    assert outcome.run.root == run_dir and outcome.run.resumed
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["status"] == "finished" and "failure" not in manifest
    generated = FakeBackend.calls["generate"] - before["generate"]
    assert generated == 5  # only the candidate's 20 remaining samples, in batches of 4
    events = outcome.results.timing.events
    assert "reused evaluation of zero-shot" in events and "reused evaluation of few-shot-2" in events
    assert len((run_dir / "samples" / "lora.jsonl").read_text().splitlines()) == 24
    assert outcome.exit_code == 0

    # a finished run is never touched again: the next run gets a new folder
    FakeBackend.calls = {}
    again = run_mod.run_compare(path, out=out, progress=False)
    assert again.run.root != run_dir and len([p for p in out.iterdir() if p.is_dir()]) == 2
    assert FakeBackend.calls.get("generate", 0) > 0


def test_resume_drops_a_samples_line_cut_short_and_generates_its_rows_again(tmp_path, fake):
    path, out, run_dir = _interrupted_run(tmp_path)
    samples = run_dir / "samples" / "lora.jsonl"
    lines = samples.read_text().splitlines(keepends=True)
    assert len(lines) == 4
    samples.write_text("".join(lines[:3]) + lines[3][:40])  # a kill -9 in the middle of the fourth row
    FakeBackend.fail_on = None
    outcome = run_mod.run_compare(path, out=out, progress=False)
    rows = [json.loads(line) for line in samples.read_text().splitlines()]  # every line whole
    assert sorted(r["id"] for r in rows) == list(range(24))  # the torn row again, once, and no other twice
    assert all(row.outputs["lora"] is not None for row in outcome.results.samples)
    assert len(outcome.results.samples) == 24
    lora = next(o for o in outcome.results.options if o.name == "lora")
    assert len(lora.per_sample["format.parse_rate"]) == 24


def test_an_internal_error_exits_4_with_one_line_and_the_traceback_in_the_run_log(tmp_path, fake, capsys):
    path = write_task(tmp_path)
    out = tmp_path / "reports"
    FakeBackend.fail_on = "lora"
    assert main(["compare", str(path), "--out", str(out), "--no-progress"]) == 4
    err = capsys.readouterr().err.strip()
    (run_dir,) = out.iterdir()
    log = run_dir / "run.log"
    assert err == (
        f"ftharness compare: internal error (a bug, not a verdict): RuntimeError: fake failure injected; "
        f"the traceback is in {log}"
    )
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "in generate" in text
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["status"] == "failed" and manifest["failure"]["exit_code"] == 4
    FakeBackend.fail_on = None  # the same command again resumes the failed run and finishes it
    assert main(["compare", str(path), "--out", str(out), "--no-progress"]) == 0
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"


def test_an_internal_error_outside_a_run_logs_its_traceback_in_the_cache(tmp_path, fake, monkeypatch, capsys):
    monkeypatch.setenv("FTHARNESS_CACHE", str(tmp_path / "cache"))

    def broken(*args, **kwargs):
        raise KeyError("no such thing")

    monkeypatch.setattr(run_mod, "load_task", broken)
    assert main(["compare", str(write_task(tmp_path)), "--out", str(tmp_path / "r"), "--no-progress"]) == 4
    err = capsys.readouterr().err
    (log,) = (tmp_path / "cache" / "logs").iterdir()
    assert len(err.strip().splitlines()) == 1 and f"KeyError: 'no such thing'; the traceback is in {log}" in err
    assert "in broken" in log.read_text()
    assert not (tmp_path / "r").exists()


def test_run_id_of_finished_run_is_refused(tmp_path, fake, capsys):
    path = write_task(tmp_path)
    out = tmp_path / "reports"
    assert main(["compare", str(path), "--out", str(out), "--run-id", "mine", "--no-progress"]) == 0
    before = (out / "mine" / "report.html").read_bytes()
    capsys.readouterr()
    assert main(["compare", str(path), "--out", str(out), "--run-id", "mine", "--no-progress"]) == 2
    assert "already finished" in capsys.readouterr().err
    assert (out / "mine" / "report.html").read_bytes() == before


def test_resume_without_unfinished_run_is_bad_input(tmp_path, fake, capsys):
    path = write_task(tmp_path)
    assert main(["compare", str(path), "--out", str(tmp_path / "r"), "--resume", "--no-progress"]) == 2
    assert "no unfinished run" in capsys.readouterr().err


def test_start_from_trains_parent_first_and_adds_its_time(tmp_path, fake, capsys):
    cands = """
candidates:
  - {name: sft, method: lora, hyperparameters: {epochs: 1}}
  - {name: dpo, trainer: trl-dpo, method: dpo, start_from: sft}
"""
    path = write_task(tmp_path, candidates=cands)
    outcome = run_mod.run_compare(path, out=tmp_path / "r", progress=False)
    by = {o.name: o for o in outcome.results.options}
    assert by["dpo"].training.total_wall_s == 240.0  # its own 120 s on top of sft's 120 s
    assert by["dpo"].spec["data"] == "preference"
    assert FakeBackend.calls["train:sft"] == 1 and FakeBackend.calls["train:dpo"] == 1


# --- slices: the one implementation (ftharness.suites.slices) -------------------------------------


def flagged_eval(tmp_path: Path) -> Path:
    """The example eval rows with a boolean field: ``urgent`` on every other row."""
    rows = [json.loads(line) for line in (EXAMPLE / "eval.jsonl").read_text().splitlines() if line.strip()]
    out = tmp_path / "eval-flagged.jsonl"
    out.write_text("".join(json.dumps({**r, "urgent": i % 2 == 0}) + "\n" for i, r in enumerate(rows)))
    return out


def test_options_are_sliced_by_the_suites_rules(tmp_path, fake):
    path = write_task(tmp_path)
    text = path.read_text().replace(str(EXAMPLE / "eval.jsonl"), str(flagged_eval(tmp_path)))
    path.write_text(text.replace("slices: [template]", "slices: [template, urgent, input_length]"))
    outcome = run_mod.run_compare(path, out=tmp_path / "r", progress=False)
    lora = next(o for o in outcome.results.options if o.name == "lora")
    assert set(lora.slices["urgent"]) == {"true", "false"}  # booleans as JSON writes them
    assert lora.slices["urgent"]["true"].n == 12 and lora.slices["urgent"]["false"].n == 12
    assert set(lora.slices["input_length"]) == {"short", "long"}  # computed, not "(missing)"
    few = next(o for o in outcome.results.options if o.name == "few-shot-2")
    by_row = few.per_sample["format.parse_rate"]
    assert few.slices["urgent"]["true"].values["format.parse_rate"] == pytest.approx(
        sum(by_row[0::2]) / len(by_row[0::2])
    )


def test_a_slice_field_no_eval_row_has_is_bad_input_before_any_work(tmp_path, fake, capsys):
    path = write_task(tmp_path)
    path.write_text(path.read_text().replace("slices: [template]", "slices: [colour]"))
    assert main(["compare", str(path), "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "slice field 'colour'" in err and "task.yaml" in err and len(err.splitlines()) == 1
    assert FakeBackend.calls == {}  # nothing trained or generated
    (run_dir,) = (tmp_path / "r").iterdir()  # found after the run started: the run says it failed, and why
    failure = json.loads((run_dir / "run.json").read_text())["failure"]
    assert failure["error"] == "BadInput" and failure["exit_code"] == 2 and failure["log"] is None
    assert "slice field 'colour'" in failure["message"]


# --- resuming a run whose state was written by the previous version ------------------------------


def as_schema_1(record: dict) -> dict:
    """An eval record as schema 1 wrote it: no unavailable, no excluded counts, no shared flag, an estimate
    that failed as {"error"} in its place."""
    record = json.loads(json.dumps(record))
    del record["unavailable"], record["memory"], record["passed"]
    for buckets in record["slices"].values():
        for bucket in buckets.values():
            del bucket["excluded"]
    for suite in record["suites"].values():
        del suite["shared_with_base_model"]
    if record["kind"] == "candidate":
        record["plan"] = {"error": "plan unavailable: ImportError: no planner"}
    return record


def test_resume_reads_state_written_by_schema_1(tmp_path, fake):
    path, out, run_dir = _interrupted_run(tmp_path)
    for state in (run_dir / "state").glob("eval-*.json"):
        doc = json.loads(state.read_text())
        state.write_text(json.dumps({**doc, "record": as_schema_1(doc["record"])}))
    FakeBackend.fail_on = None
    outcome = run_mod.run_compare(path, out=out, progress=False)
    events = outcome.results.timing.events
    assert "reused evaluation of zero-shot" in events and "reused evaluation of few-shot-2" in events
    zero = next(o for o in outcome.results.options if o.name == "zero-shot")
    assert zero.reused and zero.slices["template"]["email"].excluded == {}
    assert outcome.exit_code == 0  # and the fake fixture checks the results.json against the schema


def test_an_old_candidate_record_keeps_its_failed_estimate():
    from ftharness.jsonrecord import from_json
    from ftharness.report.records import OptionRecord

    record = {
        "name": "lora", "kind": "candidate", "spec": {}, "metrics": {}, "per_sample": {}, "gates": [],
        "passed": True, "slices": {}, "suites": {}, "samples_file": "samples/lora.jsonl", "reused": False,
        "cost": {"prompt_tokens_mean": 1.0, "new_tokens_mean": 1.0, "latency_s_mean": None, "latency_s_p50": None,
                 "generation_wall_s": 0.0, "tokens_per_s": None, "hit_max_new_tokens": 0},
        "training": {"wall_s": 1.0, "total_wall_s": 1.0, "peak_memory_bytes": 10, "memory_kind": "rss"},
        "plan": {"error": "plan unavailable: ImportError: no planner"},
        "merged_latency": {"error": "merged latency unavailable: RuntimeError: x"},
    }
    old = from_json(OptionRecord, record)
    assert old.plan is None and old.merged_latency is None
    assert set(old.unavailable) == {"plan", "merged latency"}
    assert old.memory is not None and "no planner" in old.memory.plan_error
