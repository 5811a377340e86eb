"""Atomic writes and JSONL streaming: what resumable runs and reports rely on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from ftharness.io import (
    append_jsonl,
    atomic_write_json,
    lock_holder,
    read_jsonl,
    repair_jsonl,
    sha256_json,
    try_lock,
)


def test_atomic_write_leaves_no_temp_files(tmp_path):
    target = tmp_path / "sub" / "results.json"
    atomic_write_json(target, {"a": 1})
    atomic_write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in target.parent.iterdir()] == ["results.json"]


def test_jsonl_survives_a_line_cut_short(tmp_path):
    path = tmp_path / "samples.jsonl"
    append_jsonl(path, [{"i": 0}, {"i": 1}])
    with open(path, "a") as f:
        f.write('{"i": 2, "out')  # a kill in the middle of a write
    assert read_jsonl(path) == [{"i": 0}, {"i": 1}]


def test_repair_drops_the_torn_line_so_the_next_append_starts_clean(tmp_path):
    path = tmp_path / "samples.jsonl"
    append_jsonl(path, [{"i": 0}, {"i": 1}])
    with open(path, "a") as f:
        f.write('{"i": 2, "output": "cut')  # killed before the rest of the line and its newline
    assert repair_jsonl(path) == [{"i": 0}, {"i": 1}]
    append_jsonl(path, [{"i": 2}, {"i": 3}])
    assert read_jsonl(path) == [{"i": 0}, {"i": 1}, {"i": 2}, {"i": 3}]
    assert path.read_text().count("\n") == 4


def test_a_line_without_its_newline_is_not_complete(tmp_path):
    """A kill can stop a write right before the newline: the line parses, but the next append would be glued
    to it, so it is dropped too (its row is generated again)."""
    path = tmp_path / "samples.jsonl"
    path.write_text('{"i": 0}\n{"i": 1}')
    assert read_jsonl(path) == [{"i": 0}]
    assert repair_jsonl(path) == [{"i": 0}] and path.read_text() == '{"i": 0}\n'
    before = path.stat().st_mtime_ns
    assert repair_jsonl(path) == [{"i": 0}] and path.stat().st_mtime_ns == before  # whole: left alone


def test_a_lock_is_exclusive_names_its_holder_and_dies_with_it(tmp_path):
    path = tmp_path / "run.lock"
    lock = try_lock(path)
    assert lock is not None and lock_holder(path)["pid"] == os.getpid()
    assert try_lock(path) is None  # another open of the file: the lock is taken
    lock.release()
    again = try_lock(path)
    assert again is not None
    again.release()

    code = f"import sys, time; from ftharness.io import try_lock; try_lock({str(path)!r}); print('held', flush=True); time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert try_lock(path) is None and lock_holder(path)["pid"] == holder.pid
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    after = try_lock(path)  # kill -9 leaves no stale lock
    assert after is not None
    after.release()


def test_hash_ignores_key_order():
    assert sha256_json({"a": 1, "b": [1, 2]}) == sha256_json({"b": [1, 2], "a": 1})
    assert sha256_json({"a": 1}) != sha256_json({"a": 2})


def test_strict_json_refuses_what_python_lets_through_and_keeps_what_json_allows():
    import pytest

    from ftharness.io import MAX_JSON_DEPTH, JsonRefused, loads_json

    assert loads_json(' {"a": "\\ud83d\\ude00"} ') == {"a": "\U0001F600"}  # a surrogate pair is one character
    assert loads_json("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH) is not None
    for text, message in [
        ('{"a": 1, "a": 2}', "duplicate key 'a'"),
        ("[1, NaN]", "NaN is not JSON"),
        ('{"x": -Infinity}', "-Infinity is not JSON"),
        ('{"\\ud800": 1}', "lone surrogate"),
        ("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1), "nested deeper"),
        ("[" * 5000 + "]" * 5000, "nested deeper"),  # past the parser's own recursion limit
        ("9" * 5000, "4300 digits"),
    ]:
        with pytest.raises(JsonRefused, match=message):
            loads_json(text)
    with pytest.raises(json.JSONDecodeError):
        loads_json("{} {}")


def test_a_user_file_that_cannot_be_read_is_bad_input(tmp_path, monkeypatch):
    import errno
    from pathlib import Path

    import pytest

    from ftharness.errors import BadInput
    from ftharness.io import read_user_text

    path = tmp_path / "locked.jsonl"
    path.write_text("{}\n")

    def refuse(self):  # what a file without read permission does (the tests may run as root, who reads all)
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(BadInput, match="cannot be read .Permission denied.; check its permissions") as e:
        read_user_text(path)
    assert e.value.file == str(path)
