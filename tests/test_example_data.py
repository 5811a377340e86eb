"""The bundled extraction example: deterministic, schema-valid, eval disjoint from train."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "extraction"


def rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (EXAMPLE / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]


def test_generator_is_byte_identical_to_the_committed_files(tmp_path):
    subprocess.run(
        [sys.executable, str(EXAMPLE / "generate.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    for name in ("train", "eval", "preference", "corpus"):
        assert (tmp_path / f"{name}.jsonl").read_bytes() == (EXAMPLE / f"{name}.jsonl").read_bytes(), name


def test_sizes_and_slices():
    train, evals, pref = rows("train"), rows("eval"), rows("preference")
    assert (len(train), len(evals), len(pref)) == (160, 24, 64)
    for r in train + evals:
        assert set(r) == {"prompt", "completion", "template", "length"}
    assert {r["template"] for r in evals} == {"ticket", "email", "form", "chat"}
    assert {r["length"] for r in evals} == {"short", "long"}
    assert any(not r["prompt"].isascii() for r in train + evals)  # some unicode names


def test_references_validate_against_the_schema():
    from jsonschema import Draft202012Validator

    schema = json.loads((EXAMPLE / "schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    v = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    for r in rows("train") + rows("eval"):
        assert not list(v.iter_errors(json.loads(r["completion"]))), r["completion"]
    for r in rows("preference"):
        assert not list(v.iter_errors(json.loads(r["chosen"])))
        assert r["rejected"] != r["chosen"]
        rejected_ok = False
        with contextlib.suppress(json.JSONDecodeError):
            rejected_ok = not list(v.iter_errors(json.loads(r["rejected"])))
        assert not rejected_ok, f"rejected answer is valid: {r['rejected']}"


def test_eval_is_disjoint_from_train_and_not_near_duplicate():
    from datasketch import MinHash

    train, evals, pref = rows("train"), rows("eval"), rows("preference")
    others = train + pref
    assert not {r["prompt"] for r in evals} & {r["prompt"] for r in others}
    eval_names = {json.loads(r["completion"])["name"] for r in evals}
    other_names = {json.loads(r.get("completion") or r["chosen"])["name"] for r in others}
    assert not eval_names & other_names
    eval_orders = {json.loads(r["completion"])["order_id"] for r in evals}
    assert not eval_orders & {json.loads(r.get("completion") or r["chosen"])["order_id"] for r in others}

    def minhash(text: str) -> MinHash:
        m = MinHash(num_perm=128, seed=1)
        words = text.lower().split()
        for i in range(len(words) - 2):
            m.update(" ".join(words[i : i + 3]).encode())
        return m

    hashes = [minhash(r["prompt"]) for r in others]
    worst = max(minhash(r["prompt"]).jaccard(h) for r in evals for h in hashes)
    assert worst < 0.6, f"an eval message is a near-duplicate of a training one (Jaccard {worst:.2f})"


@pytest.mark.parametrize("loader", ["train", "eval", "preference"])
def test_files_load_with_the_harness_loader(loader):
    from ftharness.data.loading import load_dataset

    ds = load_dataset(EXAMPLE / f"{loader}.jsonl")
    assert len(ds) == {"train": 160, "eval": 24, "preference": 64}[loader]
    ex = ds.examples[0]
    assert ex.meta.get("template") in {"ticket", "email", "form", "chat"}
    if loader == "preference":
        assert ds.format == "preference" and ex.chosen and ex.rejected
    else:
        assert ex.completion.startswith("{")
