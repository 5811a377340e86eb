"""Advice from evidence: `ftharness advise --from-run` reads a comparison run's measured facts, and
`ftharness compare` reports that advice at the end of every run.

The runs here are real `compare` runs on the bundled task's data with the rule-based fake backend of
test_compare (no model); what is checked is that every measured fact in the advice equals the figure
results.json holds, and that the measurement decides where it should.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from test_compare import FakeBackend, _all_correct, fake, write_task  # noqa: F401 - fake: the fixture

from ftharness.advisor.measured import MeasuredComparison, rows_to_resolve
from ftharness.cli import main


def _run(tmp_path: Path, capsys, **task) -> tuple[Path, dict]:
    path = write_task(tmp_path, **task)
    main(["compare", str(path), "--out", str(tmp_path / "r"), "--json", "--no-progress"])
    results = json.loads(capsys.readouterr().out)
    return tmp_path / "r" / results["run_id"], results


def _advice(capsys, *args: str) -> dict:
    assert main(["advise", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _facts(advice: dict) -> dict:
    return {f["field"]: f["value"] for f in advice["measured"] if f["field"] is not None}


@pytest.mark.usefixtures("fake")
def test_measured_facts_match_results_json(tmp_path, capsys):
    run_dir, results = _run(tmp_path, capsys)
    advice = _advice(capsys, "--from-run", str(run_dir))
    d = results["decision"]
    by = {o["name"]: o for o in results["options"]}
    assert advice["run"] == results["run_id"]
    facts = _facts(advice)
    best = by[d["best_baseline"]]
    assert facts["prompting_score"] == pytest.approx(best["metrics"][d["metric"]], abs=1e-4)
    assert facts["prompting_exhausted"] is True  # a few-shot baseline ran and the best one fails a gate
    assert facts["labeled_examples"] == results["data"]["validation"]["trained_on"]
    assert facts["preference_pairs"] == results["data"]["preference"]["n"]
    gap = next(f for f in advice["measured"] if f["source"] == "decision.comparison")
    assert gap["value"]["diff"] == pytest.approx(d["comparison"]["diff"])
    assert gap["value"]["ci"] == pytest.approx([d["comparison"]["ci_low"], d["comparison"]["ci_high"]])
    costs = next(f for f in advice["measured"] if f["source"] == "decision.costs")["value"]
    assert costs == pytest.approx({n: c["usd_per_1k_requests"] * c["requests_per_month"] / 1000
                                   for n, c in d["costs"].items()})
    # the run measured a candidate that wins and passes every gate: the answer is to finetune, with its method
    assert advice["recommendation"] == "finetune" and advice["method"] == "lora"
    assert advice["reasons"][0]["rule"] == "measured_candidate_wins"
    # what the run measured is no longer assumed
    assert not any(a.startswith(("prompting_exhausted", "labeled_examples")) for a in advice["assumptions"])


@pytest.mark.usefixtures("fake")
def test_the_users_volume_prices_each_option(tmp_path, capsys):
    run_dir, results = _run(tmp_path, capsys)
    task_volume = results["task"]["decision_settings"]["requests_per_month"]
    advice = _advice(capsys, "--from-run", str(run_dir / "results.json"), "--requests-per-month",
                     str(task_volume * 10))
    costs = next(f for f in advice["measured"] if f["source"] == "decision.costs")["value"]
    for name, c in results["decision"]["costs"].items():
        assert costs[name] == pytest.approx(10 * c["usd_per_1k_requests"] * task_volume / 1000)


@pytest.mark.usefixtures("fake")
def test_a_fact_the_user_said_differently_is_taken_from_the_run_and_said(tmp_path, capsys):
    run_dir, results = _run(tmp_path, capsys)
    advice = _advice(capsys, "--from-run", str(run_dir), "--labeled-examples", "5")
    assert _facts(advice)["labeled_examples"] == results["data"]["validation"]["trained_on"]
    assert any(a.startswith("labeled_examples: you said 5; run") for a in advice["assumptions"])


@pytest.mark.usefixtures("fake")
def test_prompting_that_passes_every_gate_keeps_the_prompt(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(FakeBackend, "generate", _all_correct)
    run_dir, _ = _run(tmp_path, capsys)
    advice = _advice(capsys, "--from-run", str(run_dir))
    assert advice["recommendation"] == "prompt" and advice["method"] is None
    assert advice["reasons"][0]["rule"] == "measured_prompting_suffices"


@pytest.mark.usefixtures("fake")
def test_compare_prints_and_reports_the_advice(tmp_path, capsys):
    path = write_task(tmp_path)
    main(["compare", str(path), "--out", str(tmp_path / "r"), "--no-progress"])
    out = capsys.readouterr().out
    assert "ftharness advise" in out and "from run" in out and "Measured" in out
    html = next((tmp_path / "r").rglob("report.html")).read_text()
    assert 'id="advice"' in html and "measured_candidate_wins" in html


def test_rows_to_resolve_an_inconclusive_interval():
    c = MeasuredComparison(option="a", reference="b", n=24, diff=0.1, ci_low=-0.1, ci_high=0.3,
                           confidence=0.95, verdict="inconclusive", sd=0.5)
    half, powered = rows_to_resolve(c)
    assert half == math.ceil((1.959964 * 5) ** 2) == 97
    assert powered == math.ceil(((1.959964 + 0.841621) * 5) ** 2) == 197
    assert rows_to_resolve(MeasuredComparison(**{**c.__dict__, "diff": 0.0})) is None


@pytest.mark.parametrize("make", ["missing", "folder", "eval"])
def test_a_run_that_is_not_a_comparison_is_bad_input(tmp_path, capsys, make):
    target = tmp_path / "x"
    if make == "folder":
        target.mkdir()
    elif make == "eval":
        target = tmp_path / "results.json"
        target.write_text(json.dumps({"kind": "ftharness-eval"}))
    assert main(["advise", "--from-run", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and str(target) in err
