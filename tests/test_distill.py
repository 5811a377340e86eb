"""Distillation (`method: distill`): the teacher check at task load, the label cache, schema-failing labels
dropped and counted, eval and validation inputs never labelled; with fakes, then one tiny real run.

The fake backend replaces only models (training, generation); data loading, prompts, the label cache, the
schema check (the format metric), suites, decision and reports are the real code.
"""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest
from fake_engine import RuleEngine, register_engine, use_rule_engine
from ftharness_plugins.openai_engine import OpenAIEngine

from ftharness.cli import main
from ftharness.compare import backend as backend_mod
from ftharness.compare import distill
from ftharness.compare import run as run_mod
from ftharness.compare.task import load_task
from ftharness.data.dedup import normalise

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "extraction"
SUITE = "name: fmt\nmetrics:\n  format: {}\ngates:\n  format.parse_rate: '>= 0.9'\n"


def builtin_plugins(monkeypatch):
    import ftharness.plugins as plugins

    only_builtins = plugins.Plugins(entry_points=False)
    monkeypatch.setattr(plugins, "get_plugins", lambda: only_builtins)


def write_task(tmp_path: Path, candidates: str, data: str = "", base_model: str = "") -> Path:
    (tmp_path / "fmt.yaml").write_text(SUITE)
    data = data or f"{{train: {EXAMPLE / 'train.jsonl'}, eval: {EXAMPLE / 'eval.jsonl'}}}"
    p = tmp_path / "task.yaml"
    p.write_text(f"""
name: distil
{base_model}
instruction_file: {EXAMPLE / "instruction.txt"}
schema: {EXAMPLE / "schema.json"}
data: {data}
generation: {{max_new_tokens: 16, batch_size: 4}}
baselines:
  - {{name: zero-shot, kind: zero-shot}}
  - {{name: few-shot-2, kind: few-shot, k: 2}}
candidates:
{candidates}
suites: [fmt.yaml]
decision: {{bootstrap_samples: 200, merged_latency_prompts: 0}}
""")
    return p


STUDENT = "  - {name: student, method: distill, teacher: few-shot-2, hyperparameters: {epochs: 1}}"


# --- the task file ------------------------------------------------------------------------------


@pytest.mark.parametrize("candidates, field, expected", [
    ("  - {name: s, method: distill, teacher: ghost}", "candidates.s.teacher",
     "teacher names no option of this task: 'ghost' (options: zero-shot, few-shot-2)"),
    ("  - {name: s, method: distill, teacher: s}", "candidates.s.teacher", "cannot be its own teacher"),
    ("  - {name: s, method: distill, teacher: t}\n  - {name: t, method: lora, start_from: s}",
     "candidates.s.teacher", "the teacher depends on this candidate: t -> s"),
    ("  - {name: s, method: distill, teacher: u}\n  - {name: u, method: distill, teacher: s}",
     "candidates.s.teacher", "the teacher depends on this candidate: u -> s"),
    ("  - {name: s, method: distill}", "candidates.s.teacher", "distill needs `teacher:`"),
    ("  - {name: s, method: lora, teacher: zero-shot}", "candidates.s.teacher", "not lora"),
    ("  - {name: s, method: distill, teacher: zero-shot, unlabeled: nowhere.jsonl}", "candidates.s.unlabeled",
     "file not found"),
    ("  - {name: s, method: distill, teacher: zero-shot, hyperparameters: {student: ia3}}",
     "candidates.s.hyperparameters.student", "ia3"),
])
def test_bad_teachers_exit_2_with_one_line_before_any_work(candidates, field, expected, tmp_path, monkeypatch,
                                                          capsys):
    builtin_plugins(monkeypatch)
    path = write_task(tmp_path, candidates)
    code = main(["compare", str(path), "--out", str(tmp_path / "reports"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert field in err and expected in err, err
    assert not (tmp_path / "reports").exists()


def test_a_candidate_teacher_trains_before_its_student(tmp_path, monkeypatch):
    builtin_plugins(monkeypatch)
    task = load_task(write_task(tmp_path, "  - {name: s, method: distill, teacher: big}\n"
                                          "  - {name: big, method: lora, hyperparameters: {r: 32}}"),
                     check_plugins=False)
    assert [c.name for c in task.candidates] == ["big", "s"]


# --- a run with fakes ---------------------------------------------------------------------------


class FakeLM:
    def __init__(self, name: str):
        self.name, self.adapter, self.merged, self.tokenizer, self.model = name, None, False, None, None


class FakeBackend(backend_mod.Backend):
    """The base model answers with the reference JSON, except that every fourth input (by its characters)
    gets a quantity the schema refuses; trained models answer with the reference."""

    labelling_calls = 0
    labelled_inputs: list[str] = []
    refused: set[str] = set()
    trained: dict[str, list] = {}
    refs: dict[str, str] = {}
    live: FakeBackend | None = None

    def __init__(self, task):
        super().__init__(task)
        FakeBackend.live = self

    def base_model(self):
        return FakeLM("base")

    def base_model_record(self):
        return {"spec": "fake"}

    def template_record(self):
        return {"kind": "fake"}

    def environment(self):
        return {"python": "fake"}

    def model_identity(self):
        return "fake-base"

    def plan(self, option, data, seq_len):
        return None

    def train(self, option, data, parent, progress):
        FakeBackend.trained[option.name] = list(data.fit.examples)
        result = {"wall_s": 60.0, "train_tokens": 100, "tokens_per_s": 2.0, "peak_memory_bytes": 1e9,
                  "memory_kind": "rss", "trainable_params": 1, "total_params": 10, "loss_curve": [], "extra": {}}
        return types.SimpleNamespace(path=Path(f"/nonexistent/{option.name}"), key=f"k-{option.name}",
                                     result=result, cached=False)

    def load_trained(self, artifact):
        return FakeLM("trained")

    def teacher_messages(self, option, data, examples):
        FakeBackend.labelling_calls += 1
        FakeBackend.labelled_inputs = [ex.input_text for ex in examples]
        return super().teacher_messages(option, data, examples)

    def generate(self, lm, prompts, constrained=None):
        return [self._answer(json.loads(p), refuse=lm.name == "base") for p in prompts]

    def _answer(self, messages, *, refuse):
        text = messages[-1]["content"]
        ref = json.loads(self.refs[text])
        if refuse and sum(map(ord, text)) % 4 == 0:
            ref["quantity"] = "many"
            FakeBackend.refused.add(text)
        return types.SimpleNamespace(text=json.dumps(ref), prompt_tokens=len(json.dumps(messages)) // 4,
                                     new_tokens=30, latency_s=0.1, finish_reason="eos")

    def load_data(self):
        data = super().load_data()
        FakeBackend.refs = {ex.input_text: ex.completion for ex in [*data.train.examples, *data.eval.examples]}
        return data


class FakeEndpointEngine(OpenAIEngine):
    """The ``openai`` engine (its settings and prices) whose server is the fake backend's rule: every
    answer right."""

    def start(self, target):
        served = RuleEngine("openai", lambda lm, prompts, c: [FakeBackend.live._answer(json.loads(p), refuse=False)
                                                               for p in prompts], json.dumps).start(target)
        served.weights, served.weights_reason = None, "an endpoint's weights cannot be read here"
        return served


@pytest.fixture
def fake(monkeypatch, tmp_path, check_results):
    builtin_plugins(monkeypatch)
    monkeypatch.setenv("FTHARNESS_CACHE", str(tmp_path / "cache"))
    FakeBackend.labelling_calls, FakeBackend.labelled_inputs, FakeBackend.refused = 0, [], set()
    FakeBackend.trained = {}
    monkeypatch.setattr(run_mod, "Backend", FakeBackend)
    use_rule_engine(FakeBackend, render=json.dumps)
    register_engine(FakeEndpointEngine())
    yield FakeBackend
    for path in tmp_path.rglob("results.json"):
        check_results(path)


def _run(tmp_path, path, run_id):
    code = main(["compare", str(path), "--out", str(tmp_path / "reports"), "--run-id", run_id, "--no-progress"])
    assert code in (0, 1)
    run = tmp_path / "reports" / run_id
    return json.loads((run / "results.json").read_text()), (run / "report.html").read_text()


def test_teacher_labels_train_the_student_and_a_rerun_reads_them_from_the_cache(tmp_path, fake, capsys):
    path = write_task(tmp_path, STUDENT)
    results, html = _run(tmp_path, path, "first")
    assert "student: teacher few-shot-2 labelled 144 inputs" in capsys.readouterr().out.replace("\n", " ")
    d = {o["name"]: o for o in results["options"]}["student"]["distillation"]
    trained = fake.trained["student"]
    eval_inputs = {normalise(r["input"]) for r in results["samples"]}
    # labelled: the rows candidates train on, labels dropped; never an eval or validation input
    assert d["inputs"] == "train" and d["labelled"] == results["data"]["validation"]["trained_on"]
    assert fake.labelling_calls == 1 and len(fake.labelled_inputs) == d["labelled"]
    assert not {normalise(t) for t in fake.labelled_inputs} & eval_inputs
    # schema-failing labels dropped and counted; the student trains on the teacher's kept labels only
    refused = set(fake.labelled_inputs) & fake.refused  # fake.refused holds the eval rows' refusals too
    assert d["dropped"] == len(refused) > 0 and d["kept"] == d["labelled"] - d["dropped"]
    assert d["drop_reasons"][0]["path"] == "$.quantity" and d["drop_reasons"][0]["count"] == d["dropped"]
    assert len(trained) == d["kept"] and not {ex.input_text for ex in trained} & refused
    assert all(ex.completion == json.dumps(json.loads(fake.refs[ex.input_text])) for ex in trained)
    assert not d["cached"] and d["teacher"] == "few-shot-2" and d["teacher_kind"] == "few-shot"
    assert d["new_tokens"] == 30 * d["labelled"]
    assert 'id="distillation"' in html and "few-shot-2" in html
    assert results["decision"]["costs"]["student"]["training_s"] == 60.0 + d["wall_s"]  # labelling counts
    # a rerun in a new run folder reads the labels from the cache: the teacher generates nothing
    again, _ = _run(tmp_path, path, "second")
    d2 = {o["name"]: o for o in again["options"]}["student"]["distillation"]
    assert fake.labelling_calls == 1
    assert d2["cached"] and d2["key"] == d["key"] and d2["kept"] == d["kept"]
    assert [ex.completion for ex in fake.trained["student"]] == [ex.completion for ex in trained]


def test_an_unlabeled_file_loses_its_outputs_and_every_eval_and_validation_input(tmp_path, fake):
    train = [json.loads(line) for line in (EXAMPLE / "train.jsonl").read_text().splitlines()]
    evals = [json.loads(line) for line in (EXAMPLE / "eval.jsonl").read_text().splitlines()]
    rows = [{"prompt": r["prompt"]} for r in train[:10]] + [evals[0], evals[1]]  # two eval rows, outputs too
    (tmp_path / "inputs.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    path = write_task(tmp_path, STUDENT.replace("}}", "}, unlabeled: inputs.jsonl}"))
    results, _ = _run(tmp_path, path, "run")
    d = {o["name"]: o for o in results["options"]}["student"]["distillation"]
    assert d["inputs"] == str(tmp_path / "inputs.jsonl")
    held = {normalise(e["prompt"]) for e in evals}
    assert d["labelled"] + d["excluded"] == 12 and d["excluded"] >= 2
    assert fake.labelled_inputs and not {normalise(t) for t in fake.labelled_inputs} & held


def test_an_endpoint_teacher_labels_at_its_prices(tmp_path, fake):
    path = write_task(tmp_path, "  - {name: student, method: distill, teacher: hosted, hyperparameters: {epochs: 1}}")
    path.write_text(path.read_text().replace("baselines:\n", "baselines:\n  - {name: hosted, kind: endpoint, "
                                             "shots: few-shot, k: 2, endpoint: {base_url: 'http://127.0.0.1:9/v1', "
                                             "model: big, price_per_million_input: 1.0, "
                                             "price_per_million_output: 2.0}}\n"))
    results, html = _run(tmp_path, path, "run")
    d = {o["name"]: o for o in results["options"]}["student"]["distillation"]
    assert d["teacher_kind"] == "endpoint" and d["kept"] == d["labelled"] > 0 and d["dropped"] == 0
    assert d["usd"] == pytest.approx((d["prompt_tokens"] * 1.0 + d["new_tokens"] * 2.0) / 1e6)
    assert "big at $1 per million input" in d["price_basis"]
    cost = results["decision"]["costs"]["student"]  # training at the CPU price, labelling at the teacher's
    assert cost["training_usd"] == pytest.approx(60.0 / 3600 * 0.10 + d["usd"])
    assert fake.labelling_calls == 1 and 'id="distillation"' in html


# --- one tiny real run ----------------------------------------------------------------------------


def test_a_tiny_model_distils_through_compare(tmp_path, tiny_model_dir, isolated_cache, one_torch_thread,
                                               monkeypatch, check_results):
    """The real backend on the tiny Llama: a schema-constrained baseline labels the training inputs (every
    label valid by construction), the student trains on them and is evaluated like any candidate."""
    builtin_plugins(monkeypatch)
    for name, n in (("train", 10), ("eval", 3)):
        lines = (EXAMPLE / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()[:n]
        (tmp_path / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    path = write_task(tmp_path, "  - {name: student, method: distill, teacher: zero-shot-constrained, "
                                "hyperparameters: {r: 4, max_steps: 2, batch_size: 4}}",
                      data="{train: train.jsonl, eval: eval.jsonl}", base_model=f"base_model: {tiny_model_dir}")
    text = path.read_text().replace("  - {name: few-shot-2, kind: few-shot, k: 2}",
                                    "  - {name: zero-shot-constrained, kind: zero-shot, constrained: json-schema}")
    path.write_text(text.replace("generation: {", "validation: {fraction: 0.2, min: 2}\ngeneration: {"))
    code = main(["compare", str(path), "--out", str(tmp_path / "reports"), "--run-id", "r", "--no-progress"])
    assert code in (0, 1)
    results = check_results(tmp_path / "reports" / "r" / "results.json")
    student = {o["name"]: o for o in results["options"]}["student"]
    d = student["distillation"]
    assert d["labelled"] == results["data"]["validation"]["trained_on"] == 8
    assert d["kept"] == 8 and d["dropped"] == 0 and d["wall_s"] > 0 and d["new_tokens"] > 0
    assert student["training"]["train_tokens"] > 0
    assert student["plan"]["method"] == "distill" and student["plan"]["teacher"]["examples"] == 8  # planned too
    labels = json.loads(distill.labels_path(d["key"]).read_text())
    record = json.loads((Path(student["training"]["artifact"]) / "candidate.json").read_text())
    assert record["data"]["train"]["file"] == str(distill.labels_path(d["key"]))  # trained on the labels
    assert [r["output"] for r in labels["rows"]] and labels["teacher"] == "zero-shot-constrained"
