"""Atomic writes and JSONL streaming: what resumable runs and reports rely on."""

from __future__ import annotations

import json

from ftharness.io import append_jsonl, atomic_write_json, read_jsonl, sha256_json


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


def test_hash_ignores_key_order():
    assert sha256_json({"a": 1, "b": [1, 2]}) == sha256_json({"b": [1, 2], "a": 1})
    assert sha256_json({"a": 1}) != sha256_json({"a": 2})
