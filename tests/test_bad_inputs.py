"""Nothing a user types crashes the CLI: the bad-input corpus (tests/data/bad/cases.yaml), and the inputs
that look hostile but are fine (a byte-order mark, rich markup in paths).

Each corpus case goes through ``ftharness.cli.main``, the console script's entry point and its top-level
handler (:func:`benchmarks.bad_inputs.run_case`, which ``benchmarks/bad_inputs.py`` counts with), and
must exit 2 with exactly one line on stderr naming what is wrong, no traceback, and no file changed
outside the case's own output folder (the corpus copy it runs in, its cache, the repository's
examples/ and the corpus itself are compared before and after).
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from helpers import load_benchmark

from ftharness.cli import main

ROOT = Path(__file__).resolve().parents[1]


CORPUS = load_benchmark("bad_inputs")
CASES = CORPUS.load_cases()


def test_cases_have_unique_ids_and_say_what_they_expect():
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids))
    assert all(c["expect"] and c["args"] for c in CASES)


@pytest.fixture(scope="module")
def outcomes(request):
    """Every case's outcome; the counts are printed when the module ends (benchmarks/bad_inputs.py prints
    the same line)."""
    seen: list = []
    yield seen
    if seen:
        line = (f"bad inputs: tried {len(seen)}, clean {sum(o.clean for o in seen)}, "
                f"tracebacks {sum(o.traceback for o in seen)}")
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled():
            print(f"\n{line}")


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_bad_input_exits_2_with_one_line_and_changes_nothing(case, tmp_path, outcomes):
    outcome = CORPUS.run_case(case, tmp_path / "case")
    outcomes.append(outcome)
    assert not outcome.traceback, outcome.stderr
    assert outcome.exit_code == 2, outcome.stderr
    assert len(outcome.stderr.splitlines()) == 1 and len(outcome.lines) == 1, outcome.stderr
    assert case["expect"] in outcome.lines[0], outcome.stderr
    assert outcome.changed == []
    assert outcome.clean


def test_a_byte_order_mark_is_read_as_the_data_loader_reads_it(tmp_path, capsys):
    predictions = tmp_path / "p.jsonl"
    predictions.write_bytes(b"\xef\xbb\xbf" + b'{"output": "{}"}\n')
    data = tmp_path / "d.jsonl"
    data.write_bytes(b"\xef\xbb\xbf" + b'{"prompt": "a", "completion": "b"}\n')
    schema = tmp_path / "s.json"
    schema.write_bytes(b"\xef\xbb\xbf" + b'{"type": "object"}')
    assert main(["eval", "--suite", "format", "--predictions", str(predictions), "--schema", str(schema),
                 "--out", str(tmp_path / "r")]) == 0
    assert main(["data", "inspect", str(data)]) == 0
    capsys.readouterr()


def test_markup_in_paths_is_shown_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "[").mkdir()
    closing = Path("[/x].jsonl")  # read as markup, "[/x]" closes a tag nothing opened: rich raises
    closing.write_text('{"prompt": "a", "completion": "b"}\n')
    coloured = Path("[red]x.jsonl")
    coloured.write_text('{"prompt": "a", "completion": "b"}\n')
    for path in (closing, coloured):
        assert main(["data", "inspect", str(path)]) == 0
        assert f"data: {path}" in capsys.readouterr().out
    (tmp_path / "p.jsonl").write_text('{"output": "{}"}\n')
    assert main(["eval", "--suite", "format", "--predictions", "p.jsonl", "--out", "o[/x]"]) == 0
    assert "results: o[/x]/results.json" in capsys.readouterr().out


def test_os_errors_on_a_path_are_input_or_environment_and_the_rest_internal():
    from ftharness.errors import INTERNAL_ERROR, exit_code, from_os_error

    assert exit_code(OSError(errno.ENAMETOOLONG, "File name too long", "a" * 300)) == 2
    assert exit_code(OSError(errno.EACCES, "Permission denied", "/root/x")) == 2
    full = from_os_error(OSError(errno.ENOSPC, "No space left on device", "reports/run"))
    assert full.exit_code == 3 and "reports/run" in str(full)
    assert exit_code(OSError(errno.ENOENT, "No such file or directory", "cache/x")) == INTERNAL_ERROR  # vanished
    assert exit_code(OSError(errno.EACCES, "Permission denied")) == INTERNAL_ERROR  # no path to name
