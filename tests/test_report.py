"""Reports from a small hand-made results dict (no models): HTML, JUnit, terminal, headless Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ftharness.report.html import render_html
from ftharness.report.junit import junit_xml
from ftharness.report.results import memory_row, output_check
from ftharness.report.run_dir import open_run

SCRIPT = "<script>document.title='pwned';console.error('injected')</script>"
SCHEMA = {
    "type": "object",
    "required": ["name", "quantity"],
    "additionalProperties": False,
    "properties": {"name": {"type": "string"}, "quantity": {"type": "integer"}},
}


def gate(name, op, thr, value, passed):
    return {
        "name": name,
        "op": op,
        "threshold": thr,
        "value": value,
        "passed": passed,
        "message": f"{name} = {value} (gate {op} {thr}): {'passed' if passed else 'FAILED'}",
        "suite": "format",
    }


def option(name, kind, rate, passed, prompt_tokens, training=None):
    return {
        "name": name,
        "kind": kind,
        "spec": {"name": name},
        "reused": False,
        "passed": passed,
        "metrics": {"format.parse_rate": rate, "toxicity.max": 0.02},
        "per_sample": {"format.parse_rate": [1.0, 0.0]},
        "gates": [
            gate("format.parse_rate", ">=", 0.9, rate, rate >= 0.9),
            gate("toxicity.max", "<=", 0.1, 0.02, True),
        ],
        "slices": {
            "template": {
                "email": {"n": 1, "values": {"format.parse_rate": rate}},
                "form": {"n": 1, "values": {"format.parse_rate": 1.0}},
            }
        },
        "cost": {"prompt_tokens_mean": prompt_tokens, "latency_s_mean": 0.8, "generation_wall_s": 3.0},
        "training": training,
        "plan": {"peak_gb": 1.2} if training else None,
        "memory": memory_row({"training": training, "plan": {"peak_gb": 1.2}}) if training else None,
    }


def make_results() -> dict:
    training = {
        "wall_s": 270.0,
        "total_wall_s": 270.0,
        "peak_memory_bytes": 2.5e9,
        "memory_kind": "rss",
        "cached": False,
        "loss_curve": [{"step": s, "epoch": s / 20, "loss": 2.0 / s} for s in range(1, 41)]
        + [{"step": 20, "epoch": 1.0, "eval_loss": 0.4}, {"step": 40, "epoch": 2.0, "eval_loss": 0.3}],
    }
    opts = [
        option("zero-shot", "baseline", 0.0, False, 180),
        option("few-shot-3", "baseline", 0.62, False, 620),
        option("lora-r16", "candidate", 1.0, True, 180, training),
    ]
    return {
        "schema_version": 1,
        "run_id": "20260101-000000-test",
        "task": {
            "name": "test <task>",
            "file": "task.yaml",
            "hash": "abc",
            "instruction": "Extract.",
            "gates": ["format.parse_rate >= 0.9"],
            "decision_settings": {},
            "schema": SCHEMA,
        },
        "settings": {"seed": 0, "generation": {"max_new_tokens": 96}},
        "environment": {"python": "3.11"},
        "data": {"eval": {"path": "eval.jsonl", "sha256": "ff", "n": 2}},
        "suites": [],
        "options": opts,
        "comparisons": [
            {
                "option": "lora-r16",
                "reference": "few-shot-3",
                "metric": "format.parse_rate",
                "n": 2,
                "diff": 0.38,
                "ci_low": 0.1,
                "ci_high": 0.6,
                "p_value": 0.01,
                "verdict": "better",
                "confidence": 0.95,
                "method": "paired bootstrap",
                "option_ci_low": 0.9,
                "option_ci_high": 1.0,
            }
        ],
        "decision": {
            "verdict": "finetune",
            "recommended": "lora-r16",
            "recommended_kind": "candidate",
            "passes_all_gates": True,
            "metric": "format.parse_rate",
            "best_baseline": "few-shot-3",
            "headline": "lora-r16: parse rate 1.00 vs 0.62 for few-shot-3; recommend finetuning",
            "reasons": ["prompt tokens per request: 180 vs 620"],
            "assumptions": ["CPU at $0.10/h"],
        },
        "samples": [
            {
                "id": 0,
                "input": f"Hi {SCRIPT} order ORD-123456",
                "reference": '{"name": "A", "quantity": 1}',
                "meta": {"template": "email"},
                "outputs": {
                    "zero-shot": {
                        "text": f"Sure! {SCRIPT}",
                        "finish_reason": "length",
                        **output_check(f"Sure! {SCRIPT}", SCHEMA),
                    },
                    "lora-r16": {
                        "text": '{"name": "A", "quantity": 1}',
                        "finish_reason": "eos",
                        **output_check('{"name": "A", "quantity": 1}', SCHEMA),
                    },
                },
            }
        ],
        "timing": {"run_wall_s": 400.0},
    }


def test_output_check_marks_schema_errors():
    bad = output_check('JSON: {"name": "A", "quantity": "2"}', SCHEMA)
    assert not bad["strict_ok"] and bad["json_found"]
    assert any("not bare JSON" in e for e in bad["errors"])
    assert any("$.quantity" in e for e in bad["errors"])
    assert output_check('{"name": "A", "quantity": 2}', SCHEMA)["strict_ok"]
    assert not output_check("no json here", SCHEMA)["json_found"]


def test_memory_row_says_when_not_comparable():
    row = memory_row({"training": {"peak_memory_bytes": 3e9, "memory_kind": "rss"}, "plan": {"peak_gb": 1.0}})
    assert row["planned_peak_gb"] == 1.0 and row["measured_peak_gb"] == 3.0
    assert not row["comparable"] and "not directly comparable" in row["note"]
    assert memory_row(
        {
            "training": {"peak_memory_bytes": 1e9, "memory_kind": "cuda_max_allocated"},
            "plan": {"peak_gb": 1.1},
        }
    )["comparable"]


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
    print_summary(make_results(), "reports/x/report.html", console=con)
    text = con.export_text()
    assert "recommend finetuning" in text and "Leaderboard" in text and "lora-r16 *" in text
    assert "FAIL" in text and "reports/x/report.html" in text


def test_run_folder_never_overwrites(tmp_path):
    a = open_run(tmp_path, task_name="t", task_hash="h", task_file="t.yaml")
    a.finish()
    b = open_run(tmp_path, task_name="t", task_hash="h", task_file="t.yaml")
    assert a.root != b.root
    from ftharness.errors import BadInput

    with pytest.raises(BadInput):
        a.write("report.html", "x")
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


def test_results_json_round_trips():
    from ftharness.report.results import json_safe

    r = json_safe({**make_results(), "x": float("nan"), "p": Path("/a")})
    text = json.dumps(r, allow_nan=False)
    assert json.loads(text)["x"] is None and json.loads(text)["p"] == "/a"
