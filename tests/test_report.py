"""Reports from a small hand-made results dict (no models): HTML, JUnit, terminal, headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ftharness.jsonrecord import from_json, to_json
from ftharness.report.html import render_html
from ftharness.report.junit import junit_xml
from ftharness.report.records import (
    Cost,
    DataFile,
    Decision,
    Interval,
    OptionCost,
    OptionRecord,
    PairedComparison,
    Phase,
    Training,
    memory_row,
)
from ftharness.report.results import (
    CompareResults,
    SampleRow,
    Settings,
    TaskRecord,
    Timing,
    output_check,
    read_results,
)
from ftharness.report.run_dir import open_run
from ftharness.suites.gates import GateOutcome
from ftharness.suites.slices import SliceBucket

SCRIPT = "<script>document.title='pwned';console.error('injected')</script>"
SCHEMA = {
    "type": "object",
    "required": ["name", "quantity"],
    "additionalProperties": False,
    "properties": {"name": {"type": "string"}, "quantity": {"type": "integer"}},
}


def gate(name, op, thr, value, passed):
    message = f"{name} = {value} (gate {op} {thr}): {'passed' if passed else 'FAILED'}"
    return GateOutcome(name, op, thr, value, passed, message, "format")


def training(memory_kind="rss", peak=2_500_000_000):
    return Training(
        wall_s=270.0,
        total_wall_s=270.0,
        peak_memory_bytes=peak,
        memory_kind=memory_kind,
        loss_curve=[{"step": s, "epoch": s / 20, "loss": 2.0 / s} for s in range(1, 41)]
        + [{"step": 20, "epoch": 1.0, "eval_loss": 0.4}, {"step": 40, "epoch": 2.0, "eval_loss": 0.3}],
    )


def option(name, kind, rate, prompt_tokens, trained=None):
    return OptionRecord(
        name=name,
        kind=kind,
        spec={"name": name},
        metrics={"format.parse_rate": rate, "toxicity.max": 0.02},
        per_sample={"format.parse_rate": [1.0, 0.0]},
        gates=[gate("format.parse_rate", ">=", 0.9, rate, rate >= 0.9), gate("toxicity.max", "<=", 0.1, 0.02, True)],
        slices={
            "template": {
                "email": SliceBucket(n=1, values={"format.parse_rate": rate}),
                "form": SliceBucket(n=1, values={"format.parse_rate": 1.0}),
            }
        },
        suites={},
        cost=Cost(prompt_tokens_mean=prompt_tokens, new_tokens_mean=40.0, latency_s_mean=0.8, latency_s_p50=0.8,
                  generation_wall_s=3.0, tokens_per_s=20.0, hit_max_new_tokens=0),
        training=trained,
        plan={"peak_gb": 1.2} if trained else None,
        samples_file=f"samples/{name}.jsonl",
    )


def cost(o):
    return OptionCost(prompt_tokens_mean=o.cost.prompt_tokens_mean, latency_s_mean=0.8, monthly_prompt_usd=1.0,
                      requests_per_month=100_000, usd_per_prompt_token=1e-7, training_s=0.0, training_usd=0.0,
                      price_basis="")


def make_results() -> CompareResults:
    opts = [
        option("zero-shot", "baseline", 0.0, 180),
        option("few-shot-3", "baseline", 0.62, 620),
        option("lora-r16", "candidate", 1.0, 180, training()),
    ]
    comparison = PairedComparison("lora-r16", "few-shot-3", "format.parse_rate", 2, 1.0, 0.62, 0.38, 0.1, 0.6,
                                  0.95, 0.01, "better")
    return CompareResults(
        run_id="20260101-000000-test",
        task=TaskRecord(name="test <task>", file="task.yaml", hash="abc", base_model=None, instruction="Extract.",
                        schema_file=None, schema=SCHEMA, slices=["template"], gates=["format.parse_rate >= 0.9"],
                        decision_settings={}),
        settings=Settings(base_model=None, generation={"max_new_tokens": 96}, seed=0, dtype="float32", batch_size=4,
                          prompt_template=None, baselines=[], candidates=[], suites=[], resumed=False,
                          validation={}, constrained_decoding=None),
        environment={"python": "3.11"},
        data={"eval": DataFile(path="eval.jsonl", sha256="ff", n=2)},
        suites=[],
        options=opts,
        selection={},
        comparisons=[comparison],
        intervals={"lora-r16": Interval(metric="format.parse_rate", low=0.9, high=1.0, confidence=0.95)},
        decision=Decision(
            verdict="finetune",
            recommended="lora-r16",
            recommended_kind="candidate",
            passes_all_gates=True,
            headline="lora-r16: parse rate 1.00 vs 0.62 for few-shot-3; recommend finetuning",
            reasons=["prompt tokens per request: 180 vs 620"],
            metric="format.parse_rate",
            best_baseline="few-shot-3",
            comparison=comparison,
            costs={o.name: cost(o) for o in opts},
            assumptions=["CPU at $0.10/h"],
        ),
        samples=[
            SampleRow(
                id=0,
                input=f"Hi {SCRIPT} order ORD-123456",
                reference='{"name": "A", "quantity": 1}',
                meta={"template": "email"},
                outputs={
                    "zero-shot": output_check(f"Sure! {SCRIPT}", SCHEMA, "length"),
                    "lora-r16": output_check('{"name": "A", "quantity": 1}', SCHEMA, "eos"),
                },
            )
        ],
        timing=Timing(run_wall_s=400.0, experiment_wall_s=390.0, events=[], training_s={"lora-r16": 270.0},
                      generation_s={}, phases=[Phase(phase="train", option="lora-r16", wall_s=270.0,
                                                     peak_memory_bytes=2_500_000_000, memory_kind="rss")]),
    )


def test_output_check_marks_schema_errors():
    bad = output_check('JSON: {"name": "A", "quantity": "2"}', SCHEMA)
    assert not bad.strict_ok and bad.json_found
    assert any("not bare JSON" in e for e in bad.errors)
    assert any("$.quantity" in e for e in bad.errors)
    assert output_check('{"name": "A", "quantity": 2}', SCHEMA).strict_ok
    assert not output_check("no json here", SCHEMA).json_found


def test_memory_row_says_when_not_comparable():
    row = memory_row(training(peak=3_000_000_000), {"peak_gb": 1.0}, None)
    assert row.planned_peak_gb == 1.0 and row.measured_peak_gb == 3.0
    assert not row.comparable and "not directly comparable" in row.note
    assert memory_row(training("cuda_max_allocated"), {"peak_gb": 1.1}, None).comparable
    assert memory_row(None, {"peak_gb": 1.1}, None) is None  # not trained: nothing to compare


def test_html_is_self_contained_escaped_and_complete():
    html = render_html(make_results())
    assert SCRIPT not in html and "&lt;script&gt;document.title=" in html
    assert "test &lt;task&gt;" in html
    assert "<script" not in html.lower()
    for needle in (
        'id="decision"',
        "recommend finetuning",
        'id="leaderboard"',
        "<svg",
        "quality vs cost",
        "loss curves",
        'id="gates"',
        'class="fail"',
        'class="pass"',
        'id="slices"',
        'id="memory"',
        "not directly comparable",
        "no JSON found",
        'id="samples"',
        "stopped at max_new_tokens",
    ):
        assert needle in html, needle
    assert html.index('id="decision"') < html.index('id="leaderboard"')
    for remote in ("http://", "https://", "src=", "@import"):
        assert remote not in html.replace("http-equiv", ""), remote


def test_junit_has_each_gate_of_each_option():
    root = ET.fromstring(junit_xml(make_results()))
    cases = root.findall(".//testcase")
    assert len(cases) == 3 * 2 + 1
    failures = root.findall(".//failure")
    assert len(failures) == 2  # zero-shot and few-shot-3 miss the parse-rate gate
    assert root.get("tests") == "7" and root.get("failures") == "2"
    assert {s.get("name") for s in root.findall("testsuite")} == {
        "zero-shot",
        "few-shot-3",
        "lora-r16",
        "decision",
    }


def test_terminal_summary_shows_decision_and_leaderboard():
    from rich.console import Console

    from ftharness.cli.summary import print_summary

    con = Console(record=True, width=160)
    print_summary(make_results(), "reports/r[/x]/report.html", console=con)  # markup would crash on it
    text = con.export_text()
    assert "recommend finetuning" in text and "Leaderboard" in text and "lora-r16 *" in text
    assert "FAIL" in text and "reports/r[/x]/report.html" in text


def test_run_folder_never_overwrites(tmp_path):
    a = open_run(tmp_path, task_name="t", task_hash="h", task_file="t.yaml")
    a.finish()
    b = open_run(tmp_path, task_name="t", task_hash="h", task_file="t.yaml")
    assert a.root != b.root
    from ftharness.errors import BadInput

    with pytest.raises(BadInput):
        a.write("report.html", "x")
    with pytest.raises(BadInput, match=f"in use by pid {os.getpid()} "):  # b's process still works in it
        open_run(tmp_path, task_name="t", task_hash="h", task_file="t.yaml")
    b.close()
    c = open_run(tmp_path, task_name="t", task_hash="h", task_file="t.yaml")
    assert c.root == b.root and c.resumed  # unfinished: the same command resumes it
    d = open_run(tmp_path, task_name="t", task_hash="other", task_file="t.yaml")
    assert d.root not in (a.root, b.root)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(url: str, tmp_path: Path, *extra: str) -> tuple[str, str]:
    args = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'ud'}",
        "--enable-logging=stderr",
        "--v=0",
        *extra,
        url,
    ]
    p = subprocess.run(args, capture_output=True, text=True, timeout=120)
    return p.stdout, p.stderr


def console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package `chromium`)")
def test_report_in_headless_chromium(tmp_path):
    # The harness notices console messages at all: a page that logs one is caught.
    control = tmp_path / "control.html"
    control.write_text("<html><body><script>console.error('control-marker')</script></body></html>")
    _, err = chromium(control.as_uri(), tmp_path, "--dump-dom")
    assert any("control-marker" in m for m in console_messages(err)), "chromium console logging not captured"

    page = tmp_path / "report.html"
    page.write_text(render_html(make_results()), encoding="utf-8")
    dom, err = chromium(page.as_uri(), tmp_path, "--dump-dom")
    assert console_messages(err) == []
    assert "<title>ftharness compare: test &lt;task&gt; (20260101-000000-test)</title>" in dom
    assert "pwned" not in dom.split("</title>")[0]
    assert 'id="decision"' in dom and "recommend finetuning" in dom
    assert 'id="leaderboard"' in dom and "lora-r16" in dom
    assert "&lt;script&gt;document.title='pwned'" in dom  # shown as text
    assert "<script" not in dom.lower()  # never a live element
    shot = tmp_path / "shot.png"
    chromium(page.as_uri(), tmp_path, f"--screenshot={shot}", "--window-size=1200,900")
    assert shot.is_file() and shot.stat().st_size > 10_000


def test_results_json_round_trips_and_follows_the_schema(tmp_path, check_results):
    results = make_results()
    results.options[0].metrics["format.parse_rate"] = float("nan")  # NaN is written as null
    text = json.dumps(to_json(results), allow_nan=False)
    doc = check_results(json.loads(text))
    assert doc["options"][0]["metrics"]["format.parse_rate"] is None
    assert doc["options"][2]["passed"] and doc["options"][2]["memory"]["planned_peak_gb"] == 1.2
    (tmp_path / "results.json").write_text(text)
    back = read_results(tmp_path / "results.json")
    assert isinstance(back, CompareResults)
    assert to_json(back) == doc  # every field reads back as it was written
    assert back.options[2].training.loss_curve[-1]["eval_loss"] == 0.3


def test_published_schema_is_the_generated_one():
    from ftharness.report.schema import SCHEMA_FILE, schema_text

    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_text(), (
        "ftharness/report/results.schema.json is stale: run python -m ftharness.report.schema"
    )


def test_schema_generation_refuses_an_undocumented_field():
    from dataclasses import dataclass

    from ftharness.jsonrecord import doc, json_schema

    @dataclass
    class Documented:
        n: int = doc("a count")

    @dataclass
    class Undocumented:
        n: int

    assert json_schema(Documented, id="x", title="t", description="d")["$defs"]["Documented"]["required"] == ["n"]
    with pytest.raises(TypeError, match="Undocumented.n says nothing"):
        json_schema(Undocumented, id="x", title="t", description="d")


def test_the_schema_rejects_what_the_records_do_not_write(check_results):
    doc = to_json(make_results())
    check_results(doc)
    doc["options"][0]["colour"] = "blue"  # a key no record writes
    with pytest.raises(AssertionError, match="colour"):
        check_results(doc)
    doc = to_json(make_results())
    doc["decision"]["verdict"] = "maybe"
    with pytest.raises(AssertionError, match="maybe"):
        check_results(doc)


def test_results_of_schema_1_read_back(tmp_path):
    """results.json as written before the records were typed: no kind, an interval row for the reference,
    an estimate that failed as an {"error"} object in its place."""
    doc = to_json(make_results())
    del doc["kind"], doc["intervals"]
    doc["schema_version"] = 1
    doc["comparisons"][0].update(option_ci_low=0.9, option_ci_high=1.0)
    doc["comparisons"].append({"option": "few-shot-3", "reference": "few-shot-3", "metric": "format.parse_rate",
                               "n": 2, "diff": 0.0, "ci_low": 0.0, "ci_high": 0.0, "p_value": 1.0,
                               "verdict": "reference", "confidence": 0.95, "method": "reference",
                               "option_ci_low": 0.3, "option_ci_high": 0.8})
    doc["options"][2]["plan"] = {"error": "plan unavailable: ImportError: no planner"}
    for o in doc["options"]:
        del o["unavailable"]
        for buckets in o["slices"].values():
            for bucket in buckets.values():
                del bucket["excluded"]
    doc["decision"]["comparison"] = {"option": "lora-r16", "reference": "few-shot-3", "metric": "format.parse_rate",
                                     "verdict": "inconclusive", "note": "no paired per-example scores"}
    del doc["decision"]["comparison_note"]
    (tmp_path / "results.json").write_text(json.dumps(doc))
    old = read_results(tmp_path / "results.json")
    assert isinstance(old, CompareResults) and old.schema_version == 1
    assert [c.option for c in old.comparisons] == ["lora-r16"]
    assert old.intervals["few-shot-3"].low == 0.3 and old.intervals["lora-r16"].high == 1.0
    lora = next(o for o in old.options if o.name == "lora-r16")
    assert lora.plan is None and "ImportError" in lora.unavailable["plan"]
    assert lora.memory.plan_error == lora.unavailable["plan"]
    assert old.decision.comparison is None and old.decision.comparison_note == "no paired per-example scores"
    assert old.options[0].slices["template"]["email"].excluded == {}
    render_html(old)  # an old run renders


def test_read_results_names_the_file_when_it_is_not_results(tmp_path):
    from ftharness.errors import BadInput

    (tmp_path / "a.json").write_text('{"hello": 1}')
    with pytest.raises(BadInput, match="a.json.*no known 'kind'"):
        read_results(tmp_path / "a.json")
    (tmp_path / "b.json").write_text('{"kind": "ftharness-compare", "options": "many"}')
    with pytest.raises(BadInput, match="b.json: not a readable results.json"):
        read_results(tmp_path / "b.json")
    assert from_json(SliceBucket, {"n": 2}).values == {}
