"""The run history (``ftharness.report.history``) and ``ftharness diff`` (``ftharness.compare.diff``): runs
recorded as they finish, listed, rebuilt from their folders; two runs paired row by row, with intervals and
a regression check for CI; a history that survives a kill mid-write and two writers at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_compare import FakeBackend, fake, write_task  # noqa: F401 - fake: the fixture

from ftharness.cli import main
from ftharness.report.history import RunEntry, connect, history_path, list_runs


def _compare(tmp_path: Path, run_id: str, capsys, path: Path | None = None) -> Path:
    code = main(["compare", str(path or write_task(tmp_path)), "--out", str(tmp_path / "r"), "--run-id", run_id,
                 "--no-progress", "--json"])
    capsys.readouterr()
    assert code in (0, 1)
    return tmp_path / "r" / run_id


def _worse_lora(monkeypatch) -> None:
    """Run B's change: the trained model breaks the JSON of every other row (a retrained candidate that
    got worse)."""
    generate = FakeBackend.generate

    def worse(self, lm, prompts, constrained=None):
        out = generate(self, lm, prompts, constrained)
        if lm.name == "trained":
            for i, o in enumerate(out):
                if i % 2 == 0:
                    o.text = "Sure! " + o.text
        return out

    monkeypatch.setattr(FakeBackend, "generate", worse)


@pytest.mark.usefixtures("fake")
def test_two_runs_are_recorded_and_diffed_with_intervals_and_a_regression_exit(tmp_path, capsys, monkeypatch):
    _compare(tmp_path, "a", capsys)
    _worse_lora(monkeypatch)
    _compare(tmp_path, "b", capsys)
    history = history_path(tmp_path / "r")
    assert [e.run_id for e in list_runs(history)] == ["a", "b"]
    html = (tmp_path / "r" / "b" / "report.html").read_text()  # the trend of the decision metric: a, then b
    assert "across this task's runs" in html and "runs: a, b" in html
    assert "across this task's runs" not in (tmp_path / "r" / "a" / "report.html").read_text()
    assert main(["runs", "--reports", str(tmp_path / "r"), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["run_id"] for r in listed] == ["a", "b"] and listed[0]["summary"]["options"]["lora"]["passed"]

    junit = tmp_path / "diff.xml"
    code = main(["diff", "a", "b", "--reports", str(tmp_path / "r"), "--json", "--junit", str(junit),
                 "--fail-on-regression", "format.parse_rate:0.02"])
    d = json.loads(capsys.readouterr().out)
    assert code == 1 and d["rows"] == {"shared": 24, "only_a": 0, "only_b": 0}
    lora = next(m for m in d["metrics"] if m["option_b"] == "lora" and m["comparison"]["metric"] == "format.parse_rate")
    assert lora["regression"] is True and lora["comparison"]["diff"] == pytest.approx(-0.5)
    assert lora["comparison"]["ci_high"] < -0.02
    zero = next(m for m in d["metrics"] if m["option_b"] == "zero-shot" and m["comparison"]["metric"] == "format.parse_rate")
    assert zero["comparison"]["verdict"] == "same" and zero["regression"] is False
    # the direction a change is judged in: the metric plugin's lower_is_better, else higher is better
    direction = {m["comparison"]["metric"]: m["higher_is_better"] for m in d["metrics"]}
    assert direction["format.parse_rate"] and not direction["format.schema_fail_rate"]
    from ftharness.compare.diff import declared_lower

    assert declared_lower("throughput.prompt_tokens_mean") and declared_lower("toxicity.max")
    assert declared_lower("forgetting.ppl_delta_pct") and not declared_lower("forgetting.qa_accuracy")
    assert not declared_lower("task.field_accuracy") and not declared_lower("nosuch.value")
    assert any(line.startswith("lora: format.parse_rate >= 0.9: passed -> failed") for line in d["gates_changed"])
    assert d["decision_changed"] and d["regressions"]
    assert 'failures="1"' in junit.read_text() and "Regression" in junit.read_text()
    # the terminal form says the same
    assert main(["diff", str(tmp_path / "r" / "a"), str(tmp_path / "r" / "b"),
                 "--fail-on-regression", "format.parse_rate:0.02"]) == 1
    assert "lora format.parse_rate: -0.500" in capsys.readouterr().out


@pytest.mark.usefixtures("fake")
def test_compare_against_a_shipped_run_fails_on_regression_in_one_step(tmp_path, capsys, monkeypatch):
    _compare(tmp_path, "shipped", capsys)
    _worse_lora(monkeypatch)
    code = main(["compare", str(write_task(tmp_path)), "--out", str(tmp_path / "r"), "--run-id", "new",
                 "--no-progress", "--against", "shipped", "--fail-on-regression", "format.parse_rate:0.02"])
    out = capsys.readouterr().out
    assert code == 1 and "format.parse_rate: -0.500" in out
    d = json.loads((tmp_path / "r" / "new" / "diff.json").read_text())
    assert d["regressions"] and (tmp_path / "r" / "new" / "diff.xml").is_file()
    html = (tmp_path / "r" / "new" / "diff.html").read_text()
    assert "REGRESSION past 0.02" in html and "24 eval rows paired" in html
    assert main(["compare", str(write_task(tmp_path)), "--out", str(tmp_path / "r"), "--no-progress",
                 "--against", "nosuch"]) == 2
    assert "unknown run 'nosuch'" in capsys.readouterr().err
    assert main(["compare", str(write_task(tmp_path)), "--out", str(tmp_path / "r"), "--no-progress",
                 "--against", "shipped", "--fail-on-regression", "task.field_accuracy:0.02"]) == 2
    assert "no option of run shipped measures" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "r").iterdir() if p.is_dir()) == ["new", "shipped"]  # no work done


@pytest.mark.usefixtures("fake")
def test_a_run_against_itself_differs_in_nothing_and_matches_the_in_run_comparison(tmp_path, capsys):
    run = _compare(tmp_path, "a", capsys)
    code = main(["diff", "a", "a", "--reports", str(tmp_path / "r"), "--json",
                 "--fail-on-regression", "format.parse_rate:0"])
    d = json.loads(capsys.readouterr().out)
    assert code == 0 and not d["regressions"] and not d["gates_changed"] and not d["settings_changed"]
    assert all(m["comparison"]["verdict"] == "same" for m in d["metrics"])
    # the diff's interval on identical rows is the in-run comparison's: lora (as B) against few-shot-2 (as A)
    results = json.loads((run / "results.json").read_text())
    inrun = next(c for c in results["comparisons"] if c["option"] == "lora")
    assert main(["diff", "a", "a", "--reports", str(tmp_path / "r"), "--json", "--map",
                 f"{inrun['reference']}=lora"]) == 0
    d = json.loads(capsys.readouterr().out)
    m = next(m["comparison"] for m in d["metrics"] if m["comparison"]["metric"] == inrun["metric"])
    assert (m["diff"], m["ci_low"], m["ci_high"], m["p_value"]) == (
        inrun["diff"], inrun["ci_low"], inrun["ci_high"], inrun["p_value"])


@pytest.mark.usefixtures("fake")
def test_rows_are_paired_by_content_when_the_eval_set_changes(tmp_path, capsys):
    from test_compare import EXAMPLE

    _compare(tmp_path, "a", capsys)
    rows = (EXAMPLE / "eval.jsonl").read_text().splitlines()
    fewer = tmp_path / "eval-b.jsonl"
    fewer.write_text("\n".join(rows[4:]) + "\n")  # four rows dropped, the rest shuffled
    path = write_task(tmp_path)
    path.write_text(path.read_text().replace(str(EXAMPLE / "eval.jsonl"), str(fewer)))
    _compare(tmp_path, "b", capsys, path)
    assert main(["diff", "a", "b", "--reports", str(tmp_path / "r"), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["rows"] == {"shared": 20, "only_a": 4, "only_b": 0}
    assert any("data.eval" in line for line in d["settings_changed"])


@pytest.mark.parametrize("args, expected", [
    (["nosuch", "a"], "unknown run 'nosuch'"),
    (["a", "a", "--map", "lora"], "--map takes OPTION_A=OPTION_B"),
    (["a", "a", "--map", "ghost=lora"], "run a has no option 'ghost'"),
    (["a", "a", "--fail-on-regression", "task.nothing:0.1"], "no paired option measures"),
    (["a", "a", "--fail-on-regression", "format.parse_rate"], "METRIC.VALUE:THRESHOLD"),
])
@pytest.mark.usefixtures("fake")
def test_bad_diffs_are_one_line_and_exit_2(args, expected, tmp_path, capsys):
    _compare(tmp_path, "a", capsys)
    code = main(["diff", *args, "--reports", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and expected in err, err


@pytest.mark.usefixtures("fake")
def test_runs_of_different_tasks_need_a_map_and_runs_without_shared_rows_are_refused(tmp_path, capsys):
    from test_compare import EXAMPLE

    _compare(tmp_path, "a", capsys)
    other = write_task(tmp_path)
    other.write_text(other.read_text().replace("name: tiny", "name: other"))
    _compare(tmp_path, "b", capsys, other)
    assert main(["diff", "a", "b", "--reports", str(tmp_path / "r")]) == 2
    assert "runs of different tasks ('tiny' and 'other')" in capsys.readouterr().err
    disjoint = tmp_path / "disjoint.jsonl"
    disjoint.write_text("\n".join(json.dumps({**json.loads(r), "prompt": json.loads(r)["prompt"] + " (new)"})
                                  for r in (EXAMPLE / "eval.jsonl").read_text().splitlines()) + "\n")
    path = write_task(tmp_path)
    path.write_text(path.read_text().replace(str(EXAMPLE / "eval.jsonl"), str(disjoint)))
    _compare(tmp_path, "c", capsys, path)
    assert main(["diff", "a", "c", "--reports", str(tmp_path / "r")]) == 2
    assert "share no eval row" in capsys.readouterr().err


@pytest.mark.usefixtures("fake")
def test_a_damaged_history_is_one_line_and_is_rebuilt_from_the_run_folders(tmp_path, capsys):
    _compare(tmp_path, "a", capsys)
    history = history_path(tmp_path / "r")
    for extra in (history.with_name(history.name + "-wal"), history.with_name(history.name + "-shm")):
        extra.unlink(missing_ok=True)
    history.write_bytes(b"this is not a database" * 100)
    assert main(["runs", "--reports", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a readable run history" in err and "runs import" in err
    history.unlink()
    assert main(["runs", "import", str(tmp_path / "r")]) == 0
    assert "indexed 1 run(s)" in capsys.readouterr().out
    assert [e.run_id for e in list_runs(history)] == ["a"]
    assert (tmp_path / "r" / "a" / "results.json").is_file()  # the source of truth untouched


def _entry(run_id: str) -> RunEntry:
    return RunEntry(run_id=run_id, folder=f"/runs/{run_id}", kind="compare", task="t", task_hash=None,
                    created="2026-01-01T00:00:00+00:00", verdict="none", recommended=None, passed=False, metric=None,
                    summary={"options": {}, "data": {}})


def test_a_writer_killed_mid_transaction_leaves_the_history_as_it_was(tmp_path):
    from ftharness.report.history import _write

    path = tmp_path / "history.sqlite"
    with connect(path) as con:
        _write(con, _entry("before"))
    script = textwrap.dedent(f"""
        import os, signal, sqlite3
        con = sqlite3.connect({str(path)!r}, isolation_level=None)
        con.execute("BEGIN IMMEDIATE")
        con.execute("INSERT INTO runs VALUES ('half', 'f', 'compare', 't', NULL, 'x', NULL, NULL, 0, NULL, '{{}}')")
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], check=False)
    assert proc.returncode == -signal.SIGKILL
    assert [e.run_id for e in list_runs(path)] == ["before"]
    with connect(path) as con:  # and it takes writes again
        _write(con, _entry("after"))
    assert [e.run_id for e in list_runs(path)] == ["after", "before"]  # same time: by id


def test_two_writers_at_once_both_land(tmp_path):
    path = tmp_path / "history.sqlite"
    with connect(path):
        pass
    script = textwrap.dedent(f"""
        import sys
        from ftharness.report.history import RunEntry, _write, connect
        for i in range(25):
            entry = RunEntry(run_id=f"{{sys.argv[1]}}-{{i}}", folder="f", kind="compare", task="t", task_hash=None,
                             created="2026", verdict=None, recommended=None, passed=True, metric=None,
                             summary={{"options": {{}}, "data": {{}}}})
            with connect(__import__("pathlib").Path({str(path)!r})) as con:
                _write(con, entry)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, name], env={**os.environ}) for name in ("x", "y")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    ids = {e.run_id for e in list_runs(path)}
    assert len(ids) == 50 and {f"x-{i}" for i in range(25)} <= ids and {f"y-{i}" for i in range(25)} <= ids


@pytest.mark.usefixtures("fake")
def test_a_history_locked_past_the_timeout_is_one_line_and_loses_nothing(tmp_path, capsys, monkeypatch):
    import ftharness.report.history as history_mod

    _compare(tmp_path, "a", capsys)
    path = history_path(tmp_path / "r")
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sqlite3, sys, time
        con = sqlite3.connect({str(path)!r}, isolation_level=None)
        con.execute("BEGIN EXCLUSIVE")
        print("held", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setattr(history_mod, "BUSY_TIMEOUT_S", 0.5)
        assert main(["runs", "import", str(tmp_path / "r")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "locked by another process" in err, err
    finally:
        holder.kill()
        holder.wait()
    assert [e.run_id for e in list_runs(path)] == ["a"]  # what was there is still there


def test_two_eval_runs_are_diffed_as_runs_of_one_option(tmp_path, capsys):
    """eval runs of predictions made elsewhere: recorded in the history, paired by input and reference."""
    rows = [{"input": f"question {i}", "reference": f"answer {i}"} for i in range(20)]
    good, worse = tmp_path / "good.jsonl", tmp_path / "worse.jsonl"
    good.write_text("\n".join(json.dumps({**r, "output": r["reference"]}) for r in rows) + "\n")
    worse.write_text("\n".join(json.dumps({**r, "output": r["reference"] if i % 5 >= 2 else "no idea"})
                               for i, r in enumerate(rows)) + "\n")
    for name, preds in (("e1", good), ("e2", worse)):
        assert main(["eval", "--suite", "task", "--predictions", str(preds), "--out", str(tmp_path / "r" / name),
                     "--json"]) in (0, 1)
    capsys.readouterr()
    assert [e.run_id for e in list_runs(history_path(tmp_path / "r"))] == ["e1", "e2"]
    code = main(["diff", "e1", "e2", "--reports", str(tmp_path / "r"), "--json",
                 "--fail-on-regression", "task.exact_match:0.05"])
    d = json.loads(capsys.readouterr().out)
    m = next(m for m in d["metrics"] if m["comparison"]["metric"] == "task.exact_match")
    assert d["rows"]["shared"] == 20 and m["comparison"]["diff"] == pytest.approx(-0.4)
    assert code == 1 and m["regression"] is True and m["comparison"]["ci_high"] < -0.05  # 8 of 20 rows lost
