"""`ftharness eval`: predictions and model modes, exit codes, results files, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftharness.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "extraction"


@pytest.fixture(autouse=True)
def _results_follow_the_schema(tmp_path, check_results):
    """Every results.json these runs write follows the published schema."""
    yield
    for path in tmp_path.rglob("results.json"):
        check_results(path)


def write_preds(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def suite_file(tmp_path, gates="format.parse_rate: \">= 0.5\"", metrics="format: {}", extra=""):
    p = tmp_path / "suite.yaml"
    p.write_text(f"name: t\nmetrics:\n  {metrics}\ngates:\n  {gates}\n{extra}")
    return p


GOOD = [{"output": '{"a": 1}', "input": "x", "kind": "k1"}, {"output": '{"a": 2}', "input": "yy", "kind": "k2"}]


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_predictions_pass_and_write_results(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    preds = write_preds(tmp_path / "p.jsonl", GOOD)
    suite = suite_file(tmp_path, extra="slices: [kind]\n")
    assert main(["eval", "--predictions", str(preds), "--suite", str(suite)]) == 0
    out = capsys.readouterr().out
    assert "format.parse_rate" in out and "pass" in out
    runs = sorted((tmp_path / "reports").glob("eval-*/results.json"))
    assert len(runs) == 1
    data = json.loads(runs[0].read_text())
    assert data["passed"] and data["result"]["gates"][0]["value"] == 1.0
    assert data["result"]["slices"]["kind"]["k2"]["n"] == 1
    assert data["source"]["mode"] == "predictions" and len(data["samples"]) == 2
    assert data["kind"] == "ftharness-eval" and data["instruction"] is None  # model-mode fields are null
    assert main(["eval", "--predictions", str(preds), "--suite", str(suite)]) == 0
    assert len(list((tmp_path / "reports").glob("eval-*/results.json"))) == 2  # never overwritten


def test_eval_results_read_back_with_those_of_schema_1(tmp_path):
    from ftharness.jsonrecord import to_json
    from ftharness.report.results import read_results
    from ftharness.suites.evaluate import Evaluation

    preds = write_preds(tmp_path / "p.jsonl", GOOD)
    assert main(["eval", "--predictions", str(preds), "--suite", str(suite_file(tmp_path, extra="slices: [kind]\n")),
                 "--out", str(tmp_path / "o")]) == 0
    path = tmp_path / "o" / "results.json"
    back = read_results(path)
    assert isinstance(back, Evaluation) and back.passed and back.result.slices["kind"]["k1"].n == 1
    assert to_json(back) == json.loads(path.read_text())
    old = json.loads(path.read_text())
    del old["schema_version"]  # what schema 1 wrote
    for key in ("instruction", "generation", "generation_wall_s", "finish_reasons", "template"):
        del old[key]
    old_file = tmp_path / "old.json"
    old_file.write_text(json.dumps(old))
    assert read_results(old_file).schema_version == 1 and read_results(old_file).samples[1].output == '{"a": 2}'


def test_failing_gate_exits_1_and_json_is_one_document(tmp_path, capsys):
    preds = write_preds(tmp_path / "p.jsonl", [*GOOD, {"output": "no"}, {"output": "nope"}, {"output": "x"}])
    suite = suite_file(tmp_path)
    code = main(["eval", "--predictions", str(preds), "--suite", str(suite), "--json", "--out", str(tmp_path / "o")])
    assert code == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["passed"] is False
    assert doc["result"]["gates"][0]["message"].startswith("format.parse_rate = 0.4 (gate >= 0.5)")
    assert Path(doc["results_path"]) == tmp_path / "o" / "results.json"
    # the same --out again: refused, the earlier results stay
    code = main(["eval", "--predictions", str(preds), "--suite", str(suite), "--out", str(tmp_path / "o")])
    assert code == 2
    assert "already holds" in one_line(capsys.readouterr().err)


def test_schema_flag_applies(tmp_path, capsys):
    schema = tmp_path / "s.json"
    schema.write_text(json.dumps({"type": "object", "required": ["b"]}))
    preds = write_preds(tmp_path / "p.jsonl", GOOD)
    code = main(["eval", "--predictions", str(preds), "--suite", str(suite_file(tmp_path)), "--schema", str(schema),
                 "--out", str(tmp_path / "o")])
    assert code == 1
    data = json.loads((tmp_path / "o" / "results.json").read_text())
    assert data["result"]["metrics"]["format"]["values"]["schema_fail_rate"] == 1.0


@pytest.mark.parametrize(
    ("rows", "expect"),
    [
        ([GOOD[0], "{not json"], "p.jsonl:2: not valid JSON"),
        ([GOOD[0], {"outptu": "x"}], "p.jsonl:2: output: missing required field"),
        ([{"output": 3}], "p.jsonl:1: output: must be text"),
        ([GOOD[0], GOOD[1], ["a list"]], "p.jsonl:3: each line must be a JSON object"),
        ([{"output": "x", "latency_s": -1}], "p.jsonl:1: latency_s"),
        ([{"output": "x", "reference": 5}], "p.jsonl:1: reference"),
        ([], "no predictions in the file"),
    ],
)
def test_bad_predictions_exit_2_with_file_and_line(tmp_path, capsys, rows, expect):
    preds = write_preds(tmp_path / "p.jsonl", rows)
    assert main(["eval", "--predictions", str(preds), "--suite", str(suite_file(tmp_path)), "--out", str(tmp_path / "o")]) == 2
    assert expect in one_line(capsys.readouterr().err)
    assert not (tmp_path / "o" / "results.json").exists()


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["--suite", "format"], "nothing to evaluate"),
        (["--suite", "format", "--predictions", "P", "--model", "m"], "not both"),
        (["--suite", "no-such-suite", "--predictions", "P"], "no suite named"),
        (["--suite", "format", "--predictions", "missing.jsonl"], "missing.jsonl: file not found"),
        (["--suite", "format", "--data", "missing.jsonl"], "missing.jsonl: data file not found"),
        (["--suite", "format", "--predictions", "P", "--limit", "0"], "--limit"),
        (["--suite", "format", "--predictions", "P", "--schema", "nope.json"], "nope.json: --schema: JSON Schema file not found"),
    ],
)
def test_usage_errors_exit_2(tmp_path, monkeypatch, capsys, args, expect):
    monkeypatch.chdir(tmp_path)
    write_preds(tmp_path / "P", GOOD)
    assert main(["eval", *args]) == 2
    assert expect in one_line(capsys.readouterr().err)


def test_bad_suite_file_exits_2(tmp_path, capsys):
    preds = write_preds(tmp_path / "p.jsonl", GOOD)
    bad = suite_file(tmp_path, gates='format.parse_rate: ">= abc"')
    assert main(["eval", "--predictions", str(preds), "--suite", str(bad)]) == 2
    assert "suite.yaml: gates.format.parse_rate: cannot read" in one_line(capsys.readouterr().err)


def test_model_mode_on_a_tiny_model(tmp_path, tiny_model_dir, capsys):
    data = tmp_path / "eval.jsonl"
    rows = [{"prompt": f"Give me JSON number {i}", "completion": json.dumps({"n": i}), "kind": "a" if i % 2 else "b"}
            for i in range(5)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ref = tmp_path / "ref.txt"
    ref.write_text("A short general text.\n\nAnother short paragraph about rivers and bread.\n")
    suite = suite_file(
        tmp_path,
        metrics=f"format: {{}}\n  task: {{}}\n  throughput: {{}}\n  forgetting: {{reference: {ref}, qa_limit: 3}}",
        gates='format.json_rate_lenient: ">= 0"\n  forgetting.ppl_delta_pct: "== 0"\n  throughput.tokens_per_s: "> 0"',
        extra="slices: [kind]\n",
    )
    code = main(["eval", "--model", str(tiny_model_dir), "--base-model", str(tiny_model_dir), "--data", str(data),
                 "--suite", str(suite), "--limit", "4", "--max-new-tokens", "4", "--instruction", "Answer in JSON.",
                 "--out", str(tmp_path / "o"), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0, doc["result"]["gates"]
    r = doc["result"]
    assert r["n_samples"] == 4 and len(doc["samples"]) == 4
    assert all(0 < s["new_tokens"] <= 4 and s["prompt_tokens"] > 0 for s in doc["samples"])
    assert doc["samples"][0]["reference"] == json.dumps({"n": 0})
    assert doc["instruction"] == "Answer in JSON." and doc["template"]["kind"] == "chat_template"
    assert doc["generation"]["max_new_tokens"] == 4
    assert r["metrics"]["forgetting"]["values"]["ppl_delta_pct"] == 0.0
    assert set(r["slices"]["kind"]) == {"a", "b"}
    assert doc["source"]["data"]["n"] == 4 and doc["source"]["base_model"] is not None


@pytest.mark.e2e
def test_e2e_embedded_model_format_suite(tmp_path, embedded_dir, capsys):
    """The real embedded model on the bundled extraction eval set, format suite, first 8 records."""
    from ftharness_plugins.format_metric import score_format

    if (EXAMPLE / "eval.jsonl").exists():
        data, schema, instruction = EXAMPLE / "eval.jsonl", EXAMPLE / "schema.json", EXAMPLE / "instruction.txt"
    else:  # pragma: no cover - the bundled example is part of the repository
        pytest.fail("examples/extraction/eval.jsonl is missing")
    code = main(["eval", "--data", str(data), "--suite", "format", "--schema", str(schema),
                 "--instruction-file", str(instruction), "--limit", "8", "--max-new-tokens", "16", "--batch-size", "8",
                 "--out", str(tmp_path / "o"), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == (0 if doc["passed"] else 1)
    r = doc["result"]
    assert r["n_samples"] == 8 and doc["source"]["model"]["name"]
    outputs = [s["output"] for s in doc["samples"]]
    assert all(isinstance(o, str) for o in outputs) and any(o.strip() for o in outputs)
    again = score_format(outputs, json.loads(schema.read_text()))
    assert r["metrics"]["format"]["values"]["parse_rate"] == pytest.approx(again.values["parse_rate"])
    assert r["metrics"]["throughput"]["values"]["tokens_per_s"] > 0
    gate = r["gates"][0]
    assert gate["name"] == "format.parse_rate" and gate["passed"] == (gate["value"] >= 0.98)
