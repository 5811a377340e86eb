"""`ftharness data inspect`: counts, lengths, duplicates, leakage; bad input exits 2 with one line."""

from __future__ import annotations

import json

import pytest

from ftharness.cli import main
from ftharness.data import dedup
from ftharness.data.inspect import inspect_dataset, percentile


def write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


TRAIN = [
    {"instruction": "Extract the name and age.", "input": "John Smith is 42 years old and lives in London.", "output": "John, 42", "len": "short"},
    {"instruction": "Extract the name and age.", "input": "John Smith is 43 years old and lives in London.", "output": "John, 43", "len": "short"},
    {"instruction": "Extract the name and age.", "input": "Mary Jones, aged 31, works in Paris as a nurse.", "output": "Mary, 31", "len": "long"},
    {"instruction": "Extract the name and age.", "input": "John Smith is 42 years old and lives in London.", "output": "John, 42", "len": "short"},
    {"instruction": "Extract the name and age.", "input": "Quentin, 88, retired.", "output": "Quentin, 88", "len": "short"},
    {"instruction": "Extract the name and age.", "input": "Quentin, 88, retired.", "output": "Quentin, 89", "len": "short"},
]
EVAL = [
    {"instruction": "Extract the name and age.", "input": "John Smith is 42 years old and lives in London.", "output": "x"},
    {"instruction": "Extract the name and age.", "input": "Mary Jones, aged 31, works in Paris as a doctor.", "output": "y"},
    {"instruction": "Extract the name and age.", "input": "A completely unrelated sentence about boats.", "output": "z"},
]


def test_near_duplicates_on_hand_made_pairs():
    texts = [
        "The quick brown fox jumps over the lazy dog near the river bank, then runs home before dark.",
        "The quick brown fox jumps over the lazy dog near the river bank, then runs home before dark!",
        "the quick  brown fox JUMPS over the lazy dog near the river bank, then runs home before dark.",
        "The quick brown fox leaps over the lazy dog near the river bank, then runs home before dark.",
        "A recipe for banana bread with walnuts and cinnamon.",
        "Completely different text about the stock market today.",
    ]
    # 1: punctuation only; 2: exact after normalising; 3: one word changed
    pairs = {(i, j) for i, j, _ in dedup.near_duplicate_pairs(texts)}
    assert (0, 1) in pairs and (0, 3) in pairs and (1, 3) in pairs
    assert (0, 2) not in pairs  # exact duplicates are counted separately
    assert not any(4 in p or 5 in p for p in pairs)
    assert dedup.exact_duplicate_groups(texts) == [[0, 2]]
    for i, j, score in dedup.near_duplicate_pairs(texts):
        assert score == dedup.jaccard(dedup.shingles(texts[i]), dedup.shingles(texts[j])) >= dedup.THRESHOLD


def test_leakage_exact_and_near():
    found = dedup.cross_pairs(["alpha beta gamma delta epsilon zeta", "one two three four five six seven"],
                              ["Alpha beta  gamma delta epsilon zeta", "one two three four five six seven!", "nothing alike"])
    assert [(e, t) for e, t, _ in found["exact"]] == [(0, 0)]
    assert [(e, t) for e, t, _ in found["near"]] == [(1, 1)]


def test_percentile_nearest_rank():
    values = list(range(1, 101))
    assert (percentile(values, 50), percentile(values, 90), percentile(values, 99)) == (50, 90, 99)
    assert percentile([7], 99) == 7 and percentile([], 50) == 0


def test_inspect_counts_duplicates_and_leakage(tmp_path):
    train = write(tmp_path / "train.jsonl", TRAIN)
    evals = write(tmp_path / "eval.jsonl", EVAL)
    r = inspect_dataset(train, evals)
    assert r["format"] == "alpaca" and r["examples"] == 6 and r["labeled_examples"] == 6 and r["preference_pairs"] == 0
    assert r["exact_duplicates"] == {"count": 1, "groups": [[1, 4]]}
    assert [p["lines"] for p in r["near_duplicates"]["pairs"]] == [[1, 2], [5, 6]]
    assert r["conflicting_completions"] == 1  # Quentin, 88 vs 89
    assert r["fields"]["instruction"] == {"present": 6, "empty": 0, "repeated": 5}
    assert r["meta_fields"] == ["len"]
    assert r["lengths"]["completion"]["max"] == 2 and "words" in r["length_unit"]
    leak = r["leakage"]
    assert (leak["exact"], leak["near"]) == (1, 1)
    assert leak["exact_pairs"][0]["eval_line"] == 1 and leak["exact_pairs"][0]["train_line"] == 1
    assert leak["near_pairs"][0]["eval_line"] == 2 and leak["near_pairs"][0]["train_line"] == 3
    assert leak["share"] == round(2 / 3, 4)


def test_inspect_preference_counts(tmp_path):
    path = write(tmp_path / "pref.jsonl", [{"prompt": "q", "chosen": "good answer", "rejected": "bad"},
                                           {"prompt": "r", "chosen": "fine", "rejected": "", "note": None}][:1])
    r = inspect_dataset(path)
    assert r["preference_pairs"] == 1 and r["labeled_examples"] == 1 and "rejected" in r["lengths"]


def test_cli_json_is_one_document(tmp_path, capsys):
    train = write(tmp_path / "train.jsonl", TRAIN)
    evals = write(tmp_path / "eval.jsonl", EVAL)
    assert main(["data", "inspect", str(train), str(evals), "--json"]) == 0
    out = capsys.readouterr().out
    data = json.loads(out)
    assert data["leakage"]["exact"] == 1 and data["eval"]["examples"] == 3


def test_cli_rich_output(tmp_path, capsys):
    train = write(tmp_path / "train.jsonl", TRAIN)
    evals = write(tmp_path / "eval.jsonl", EVAL)
    assert main(["data", "inspect", str(train), str(evals)]) == 0
    out = capsys.readouterr().out
    assert "leakage" in out and "exact duplicates: 1" in out


def test_cli_token_lengths_with_a_model(tmp_path, capsys, tiny_model_dir):
    train = write(tmp_path / "train.jsonl", TRAIN[:2])
    assert main(["data", "inspect", str(train), "--model", str(tiny_model_dir), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert "tokens" in r["length_unit"]
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert r["lengths"]["completion"]["max"] == len(tok("John, 43", add_special_tokens=False)["input_ids"])
    assert r["lengths"]["prompt"]["max"] > 20  # the chat template's tokens are counted


@pytest.mark.parametrize("content,line,words", [
    ('{"instruction": "x", "output": "y"}\n{"instruction": "x"}\n', 2, "output: missing required field"),
    ('{"instruction": "x", "output": "y"}\nnot json\n', 2, "not valid JSON"),
    ('{"prompt": "x", "completion": "y"}\n{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n',
     2, "mixed formats"),
    ("\n", None, "empty file"),
])
def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys, content, line, words):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    assert main(["data", "inspect", str(path)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and captured.out == ""
    assert words in err
    assert (f"{path}:{line}:" if line else str(path)) in err
    assert "Traceback" not in err


def test_cli_bad_eval_file_and_options(tmp_path, capsys):
    train = write(tmp_path / "train.jsonl", TRAIN)
    bad = tmp_path / "eval.jsonl"
    bad.write_text('{"instruction": "x", "output": "y"}\n{"instruction": "x", "output": 5}\n')
    assert main(["data", "inspect", str(train), str(bad)]) == 2
    assert f"{bad}:2: output: must be a string" in capsys.readouterr().err
    assert main(["data", "inspect", str(train), "--format", "csv"]) == 2
    assert "unknown format" in capsys.readouterr().err
    assert main(["data", "inspect", str(train), "--near-threshold", "1.5"]) == 2
    assert main(["data", "inspect", str(tmp_path / "missing.jsonl")]) == 2
    assert "file not found" in capsys.readouterr().err
    assert main(["data", "inspect", str(train), "--model", str(tmp_path / "no-model")]) == 2
    assert "no such folder" in capsys.readouterr().err
