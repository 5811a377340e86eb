"""Data loading: every format, and every bad input named with its file and line."""

from __future__ import annotations

import json

import pytest

from ftharness.data.loading import load_dataset
from ftharness.errors import BadInput
from ftharness.io import sha256_file


def write(tmp_path, lines, name="data.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    return path


def test_alpaca_with_and_without_input(tmp_path):
    path = write(tmp_path, [
        {"instruction": "Add.", "input": "2 and 3", "output": "5", "difficulty": "easy"},
        {"instruction": "Say hi.", "input": "", "output": "hi"},
        {"instruction": "Say bye.", "output": "bye"},
    ])
    data = load_dataset(path)
    assert data.format == "alpaca" and len(data) == 3
    assert data.examples[0].messages == [{"role": "user", "content": "Add.\n\n2 and 3"}]
    assert data.examples[0].completion == "5"
    assert data.examples[0].meta == {"difficulty": "easy"}
    assert data.examples[1].messages[0]["content"] == "Say hi."
    assert [e.line for e in data.examples] == [1, 2, 3]
    assert data.sha256 == sha256_file(path)


def test_prompt_completion_and_blank_lines_keep_line_numbers(tmp_path):
    path = write(tmp_path, [{"prompt": "a", "completion": "b"}, "", "   ", {"prompt": "c", "completion": "d", "id": 7}])
    data = load_dataset(path)
    assert data.format == "prompt-completion"
    assert [e.line for e in data.examples] == [1, 4]
    assert data.examples[1].meta == {"id": 7}
    assert data.examples[1].input_text == "c"


def test_chat_last_assistant_turn_is_the_completion(tmp_path):
    path = write(tmp_path, [{"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
    ], "topic": "math"}])
    ex = load_dataset(path).examples[0]
    assert ex.completion == "4"
    assert [m["role"] for m in ex.messages] == ["system", "user", "assistant", "user"]
    assert ex.input_text == "2+2?" and ex.meta == {"topic": "math"}


def test_preference_with_string_and_chat_prompts(tmp_path):
    path = write(tmp_path, [
        {"prompt": "Capital of France?", "chosen": "Paris", "rejected": "Lyon"},
        {"prompt": [{"role": "user", "content": "2+2?"}], "chosen": [{"role": "assistant", "content": "4"}],
         "rejected": "5"},
    ])
    data = load_dataset(path)
    assert data.format == "preference"
    a, b = data.examples
    assert (a.chosen, a.rejected, a.completion) == ("Paris", "Lyon", "Paris")
    assert b.messages == [{"role": "user", "content": "2+2?"}] and b.chosen == "4"


def test_json_list_with_line_numbers(tmp_path):
    path = tmp_path / "data.json"
    path.write_text('[\n  {"prompt": "a", "completion": "b"},\n\n  {"prompt": "c",\n   "completion": "d"}\n]\n')
    data = load_dataset(path)
    assert [e.line for e in data.examples] == [2, 4]


def test_declared_format_and_aliases(tmp_path):
    path = write(tmp_path, [{"prompt": "a", "completion": "b"}])
    assert load_dataset(path, format="prompt_completion").format == "prompt-completion"
    with pytest.raises(BadInput, match="missing required field.*") as e:
        load_dataset(path, format="alpaca")
    assert e.value.line == 1 and e.value.field == "instruction"


def test_prompt_only_records_when_completions_are_optional(tmp_path):
    path = write(tmp_path, [{"prompt": "Tell me a joke."}, {"prompt": "Another."}])
    data = load_dataset(path, require_completion=False)
    assert data.format == "prompt-completion" and data.examples[0].completion is None
    chat = write(tmp_path, [{"messages": [{"role": "user", "content": "hi"}]}], "chat.jsonl")
    assert load_dataset(chat, require_completion=False).examples[0].completion is None
    with pytest.raises(BadInput, match="last turn must be the assistant"):
        load_dataset(chat)


GOOD = {"instruction": "Do it.", "output": "done"}
BAD_CASES = [
    # (lines, expected line, words in the message)
    (['{"instruction": "x", "output": "y"', ], 1, "not valid JSON"),
    ([GOOD, '{"instruction": "x", "output": }'], 2, "not valid JSON"),
    ([GOOD, "[1, 2]"], 2, "must be a JSON object"),
    ([GOOD, '"just a string"'], 2, "must be a JSON object"),
    ([GOOD, {"instruction": "x"}], 2, "output: missing required field"),
    ([GOOD, {"instruction": "x", "output": 3}], 2, "output: must be a string, got a number"),
    ([GOOD, {"instruction": "   ", "output": "y"}], 2, "instruction: is empty"),
    ([GOOD, {"instruction": "x", "output": ""}], 2, "output: is empty"),
    ([GOOD, {"instruction": "x", "input": ["a"], "output": "y"}], 2, "input: must be a string, got a list"),
    ([GOOD, {"prompt": "p", "completion": "c"}], 2, "mixed formats"),
    ([{"text": "hello"}], 1, "cannot tell the format"),
    ([{"messages": "hi"}], 1, "messages: must be a list"),
    ([{"messages": []}], 1, "messages: is empty"),
    ([{"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]}], 1, "messages[0].role: unknown role"),
    ([{"messages": [{"role": "user", "content": "x"}, {"role": "system", "content": "s"}, {"role": "assistant", "content": "y"}]}], 1,
     "a system turn may only come first"),
    ([{"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "y"}]}], 1, "messages[0].content: must be a string"),
    ([{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": " "}]}], 1, "messages[1].content: is empty"),
    ([{"messages": [{"role": "user", "content": "x"}]}], 1, "last turn must be the assistant"),
    ([{"messages": [{"role": "system", "content": "s"}, {"role": "assistant", "content": "y"}]}], 1, "needs a user turn"),
    ([{"messages": ["hi", "there"]}], 1, "messages[0]: a turn must be an object"),
    ([{"prompt": "p", "chosen": "a"}], 1, "rejected: missing required field"),
    ([{"prompt": "p", "chosen": "a", "rejected": 1}], 1, "rejected: must be a string or a list"),
    ([{"prompt": "p", "chosen": "", "rejected": "b"}], 1, "chosen: is empty"),
    ([{"chosen": "a", "rejected": "b"}], 1, "prompt: missing required field"),
    ([{"prompt": [{"role": "assistant", "content": "x"}], "chosen": "a", "rejected": "b"}], 1, "prompt's last turn must be the user's"),
    ([{"prompt": "p", "completion": "c"}, {"prompt": "q"}], 2, "completion: missing required field"),
]


@pytest.mark.parametrize("lines,line,words", BAD_CASES)
def test_bad_records_name_file_line_and_problem(tmp_path, lines, line, words):
    path = write(tmp_path, lines)
    with pytest.raises(BadInput) as e:
        load_dataset(path)
    assert e.value.line == line
    assert str(e.value).startswith(f"{path}:{line}: ")
    assert words in str(e.value)


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(BadInput, match="empty file"):
        load_dataset(empty)
    with pytest.raises(BadInput, match="file not found"):
        load_dataset(tmp_path / "nope.jsonl")
    with pytest.raises(BadInput, match="empty file"):
        load_dataset(write(tmp_path, ["[]"], "empty.json"))


def test_unknown_declared_format(tmp_path):
    with pytest.raises(BadInput, match="unknown format 'csv'") as e:
        load_dataset(write(tmp_path, [GOOD]), format="csv")
    assert e.value.field == "format"


def test_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "latin.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + '{"instruction": "caf\u00e9", "output": "x"}'.encode("latin-1") + b"\n")
    with pytest.raises(BadInput, match="not UTF-8") as e:
        load_dataset(path)
    assert e.value.line == 2


def test_json_list_errors(tmp_path):
    def json_file(text):
        p = tmp_path / "d.json"
        p.write_text(text)
        return p

    with pytest.raises(BadInput, match="must be a JSON object") as e:
        load_dataset(json_file('[\n {"prompt": "a", "completion": "b"},\n 3\n]'))
    assert e.value.line == 3
    with pytest.raises(BadInput, match="not valid JSON") as e:
        load_dataset(json_file('[\n {"prompt": "a", "completion": "b"},\n {"prompt": }\n]'))
    assert e.value.line == 3
    with pytest.raises(BadInput, match="not closed"):
        load_dataset(json_file('[\n {"prompt": "a", "completion": "b"}\n'))
    with pytest.raises(BadInput, match="must hold a list"):
        load_dataset(json_file('{\n "prompt": "a",\n "completion": "b"\n}\n'))
