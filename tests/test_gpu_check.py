"""benchmarks/gpu_check.py on CPU: its flags, the no-CUDA exit, the table, the exit code, and a check that
raises or overruns its budget becoming a fail row while the others still run (fake checks in the registry;
the real ones need a CUDA machine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import load_benchmark

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["qlora-cuda", "unsloth-vs-peft", "vram-vs-plan", "vllm-vs-local", "fsdp-2gpu", "zero3-2gpu"]


gc = load_benchmark("gpu_check")


def rows_of(*statuses: str) -> list[dict[str, str]]:
    return [gc.row(f"c{i}", s, f"fig {i}", "exp", f"detail {i}") for i, s in enumerate(statuses)]


@pytest.fixture
def fakes(monkeypatch):
    """A CUDA machine with three fake checks: one passes, one raises, one passes after it."""
    ran: list[str] = []

    def ok(name):
        def fn(ctx):
            ran.append(name)
            return gc.row(name, "pass", f"{ctx.steps} steps", "fine", "ok")
        return fn

    def boom(ctx):
        ran.append("boom")
        raise ValueError("bad thing happened\nsecond line of it")

    monkeypatch.setattr(gc, "cuda_available", lambda: True)
    monkeypatch.setattr(gc, "CHECKS", {
        "first": gc.Check("first", ok("first"), 60.0, "fine", "a passing check"),
        "boom": gc.Check("boom", boom, 60.0, "no error", "a raising check"),
        "last": gc.Check("last", ok("last"), 60.0, "fine", "another passing check"),
    })
    return ran


def test_the_registry_holds_the_five_checks_in_order():
    assert list(gc.CHECKS) == NAMES
    assert all(c.budget_s > 0 and c.expected for c in gc.CHECKS.values())


def test_list_prints_every_check_and_exits_0(capsys, monkeypatch):
    monkeypatch.setattr(gc, "cuda_available", lambda: pytest.fail("--list must not probe CUDA"))
    assert gc.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()] == NAMES


def test_an_unknown_only_name_is_one_line_naming_the_known_checks(capsys):
    assert gc.main(["--only", "qlora-cuda,nope"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and "'nope'" in lines[0]
    assert all(name in lines[0] for name in NAMES)
    assert captured.out == ""


@pytest.mark.parametrize("argv", [["--steps", "0"], ["--budget", "0"], ["--only", ","]])
def test_bad_numbers_and_an_empty_only_exit_2_with_one_line(argv, capsys):
    assert gc.main(argv) == 2
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_no_cuda_is_one_line_and_exit_3_before_any_check(monkeypatch, capsys, fakes):
    monkeypatch.setattr(gc, "cuda_available", lambda: False)
    assert gc.main([]) == 3
    captured = capsys.readouterr()
    assert captured.err == gc.NO_CUDA + "\n"
    assert captured.out == "" and fakes == []


def test_no_cuda_line_is_the_documented_one():
    assert gc.NO_CUDA == ("gpu_check: no CUDA device here (torch.cuda.is_available() is False); "
                          "run it on a CUDA machine")


def test_only_runs_the_named_checks_in_registry_order():
    assert gc.select("fsdp-2gpu, qlora-cuda") == ["qlora-cuda", "fsdp-2gpu"]
    assert gc.select(None) == NAMES


def test_the_table_has_every_cell_and_the_summary_last():
    rows = rows_of("pass", "fail", "skip", "pass")
    text = gc.render_table(rows)
    lines = text.splitlines()
    assert [c.strip() for c in lines[0].split("|")] == list(gc.COLUMNS)
    for r, line in zip(rows, lines[2:], strict=False):
        assert [c.strip() for c in line.split("|")] == [r[c] for c in gc.COLUMNS]
    assert lines[-1] == "2 passed, 1 failed, 1 skipped"


def test_markdown_escapes_pipes_and_names_machine_and_command():
    rows = [gc.row("vram-vs-plan", "fail", "1.0 GB vs 2.0 GB", "|error| <= 25%", "a\nb")]
    md = gc.render_markdown(rows, "1x NVIDIA H200", "benchmarks/gpu_check.py --steps 5")
    lines = md.splitlines()
    assert lines[0] == "# GPU check"
    assert "`benchmarks/gpu_check.py --steps 5` on 1x NVIDIA H200" in md
    assert "| check | status | figure | expected | detail |" in lines
    assert "|---|---|---|---|---|" in lines
    assert "| vram-vs-plan | fail | 1.0 GB vs 2.0 GB | \\|error\\| <= 25% | a b |" in lines
    assert lines[-1] == "0 passed, 1 failed, 0 skipped"


@pytest.mark.parametrize(("statuses", "code"), [(("pass", "skip"), 0), ((), 0), (("pass", "fail", "skip"), 1),
                                                (("fail",), 1)])
def test_exit_code_is_1_only_when_a_row_failed(statuses, code):
    assert gc.exit_code(rows_of(*statuses)) == code


def test_a_raising_check_is_a_fail_row_and_the_rest_still_run(fakes, capsys):
    assert gc.main(["--json", "--steps", "3"]) == 1
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert fakes == ["first", "boom", "last"]
    assert [(r["check"], r["status"]) for r in doc["rows"]] == [("first", "pass"), ("boom", "fail"), ("last", "pass")]
    boom = doc["rows"][1]
    assert boom["detail"] == "ValueError: bad thing happened"
    assert boom["expected"] == "no error"
    assert doc["rows"][0]["figure"] == "3 steps"
    assert doc["summary"] == "2 passed, 1 failed, 0 skipped"
    assert "Traceback" not in captured.out + captured.err


def test_the_table_run_prints_the_summary_last_and_writes_markdown(fakes, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(gc, "machine_description", lambda: "a test machine")
    out = tmp_path / "results" / "gpu_check.md"
    assert gc.main(["--only", "first,last", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "2 passed, 0 failed, 0 skipped"
    assert fakes == ["first", "last"]
    md = out.read_text(encoding="utf-8")
    assert "a test machine" in md and "| first | pass | 10 steps | fine | ok |" in md


def test_a_skip_and_an_overrun_become_rows(monkeypatch):
    def skipped(ctx):
        raise gc.Skip("unsloth is not importable here")

    def slow(ctx):
        time.sleep(5)
        return gc.row("slow", "pass")

    monkeypatch.setattr(gc, "MIN_START_S", 0.0)
    monkeypatch.setattr(gc, "CHECKS", {
        "skipped": gc.Check("skipped", skipped, 60.0, "x", "x"),
        "slow": gc.Check("slow", slow, 0.3, "quick", "x"),
        "after": gc.Check("after", lambda ctx: gc.row("after", "pass"), 60.0, "x", "x"),
    })
    started = time.monotonic()
    rows = gc.run_checks(["skipped", "slow", "after"], steps=1, budget_s=60.0)
    assert time.monotonic() - started < 3
    assert [r["status"] for r in rows] == ["skip", "fail", "pass"]
    assert rows[0]["detail"] == "unsloth is not importable here"
    assert rows[1]["detail"].startswith("stopped: over its time budget")


def test_a_check_past_the_runs_budget_is_skipped(monkeypatch):
    monkeypatch.setattr(gc, "CHECKS", {"late": gc.Check("late", lambda ctx: gc.row("late", "pass"), 60.0, "x", "x")})
    assert gc.run_checks(["late"], steps=1, budget_s=1.0)[0]["status"] == "skip"


def test_a_bad_return_value_is_a_fail_row():
    check = gc.Check("odd", lambda ctx: gc.row("odd", "great"), 60.0, "x", "x")
    assert gc.run_one(check, gc.Context(1, time.monotonic() + 60))["status"] == "fail"


def test_the_run_leaves_the_environment_as_it_found_it(fakes, capsys):
    before = {k: os.environ.get(k) for k in ("FTHARNESS_CACHE", "GPU_CHECK_MODEL_DIR")}
    gc.main(["--only", "first"])
    assert {k: os.environ.get(k) for k in before} == before


def test_importing_it_imports_neither_torch_nor_ftharness():
    code = ("import importlib.util, sys; s = importlib.util.spec_from_file_location('g', sys.argv[1]); "
            "m = importlib.util.module_from_spec(s); sys.modules['g'] = m; s.loader.exec_module(m); "
            "print(sorted(n for n in ('torch', 'transformers', 'ftharness') if n in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(ROOT / "benchmarks" / "gpu_check.py")],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
