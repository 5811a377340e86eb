"""Loading user data files (JSONL, or a JSON list) in the usual formats into ftharness.data.records.

Formats (detected per record, or declared with ``format=``):
- ``alpaca``: ``instruction``, optional ``input``, ``output`` (the Stanford Alpaca layout);
- ``prompt-completion``: ``prompt``, ``completion``;
- ``chat``: ``messages``, a list of ``{"role", "content"}`` turns; the last turn is the assistant's answer;
- ``preference``: ``prompt`` (a string or chat turns), ``chosen``, ``rejected`` (the layout TRL's DPO reads).

Every problem is a BadInput naming the file, the line and the field: nothing is silently dropped. Blank
lines of a JSONL file hold no record and are skipped. Fields beyond a format's own go to ``Example.meta``
(slices read them).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ftharness.data.records import Dataset, Example
from ftharness.errors import BadInput
from ftharness.io import JsonRefused, decode_json, loads_json, parse_json, read_user_text, sha256_file

FORMATS = ("alpaca", "prompt-completion", "chat", "preference")
ALIASES = {"prompt_completion": "prompt-completion", "completion": "prompt-completion", "messages": "chat",
           "dpo": "preference", "pairs": "preference"}
ROLES = ("system", "user", "assistant")
FIELDS = {  # (required, optional) fields of each format
    "alpaca": (("instruction", "output"), ("input",)),
    "prompt-completion": (("prompt", "completion"), ()),
    "chat": (("messages",), ()),
    "preference": (("prompt", "chosen", "rejected"), ()),
}


def canonical_format(name: str) -> str:
    key = str(name).strip().lower()
    key = ALIASES.get(key, key)
    if key != "auto" and key not in FORMATS:
        raise BadInput(f"unknown format {name!r}; choose auto or one of {', '.join(FORMATS)}", field="format")
    return key


def load_dataset(path: str | Path, *, format: str = "auto", require_completion: bool = True) -> Dataset:
    """Load and validate a data file. ``require_completion=False`` accepts prompt-only records (an
    evaluation set without references): alpaca without ``output``, ``prompt`` alone, chats ending in a
    user turn."""
    declared = canonical_format(format)
    path = Path(path)
    examples: list[Example] = []
    first: tuple[str, int] | None = None
    for line, record in read_records(path):
        if declared != "auto":
            fmt = declared
        elif first is None:
            fmt = detect_format(record, path, line, require_completion)
        else:
            try:
                fmt = detect_format(record, path, line, require_completion)
            except BadInput:
                fmt = first[0]  # parsing it as the file's format names the missing field
        if first is None:
            first = (fmt, line)
        elif fmt != first[0]:
            raise BadInput(f"mixed formats: this record is {fmt} but line {first[1]} is {first[0]}; "
                           "use one format per file", file=path, line=line)
        examples.append(parse_record(record, fmt, path, line, require_completion))
    if first is None:
        raise BadInput("empty file: no records", file=path)
    return Dataset(examples=examples, format=first[0], file=str(path), sha256=sha256_file(path))


def read_records(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for each record of a JSONL file or a JSON list, checked to be JSON objects."""
    path = Path(path)
    text = read_user_text(path)
    stripped = text.lstrip()
    if stripped.startswith("["):
        yield from _json_list(text, path)
        return
    if path.suffix.lower() == ".json" and stripped.startswith("{") and _is_single_document(text):
        raise BadInput("a .json data file must hold a list of records ([{...}, ...]); or use JSONL, one record per line",
                       file=path, line=1)
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        yield number, _object(parse_json(line, file=path, line=number), path, number)


def _is_single_document(text: str) -> bool:
    try:
        loads_json(text)
    except ValueError:  # json.JSONDecodeError and JsonRefused: let the line-by-line reading name the line
        return False
    return "\n" in text.strip()  # a multi-line object: a JSON document, not one JSONL record


def _json_list(text: str, path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Walk a JSON list element by element (:func:`ftharness.io.decode_json`), so each record keeps its line
    number."""
    pos = text.index("[") + 1
    n = len(text)

    def skip(p: int) -> int:
        while p < n and text[p] in " \t\r\n":
            p += 1
        return p

    def line_of(p: int) -> int:
        return text.count("\n", 0, p) + 1

    pos = skip(pos)
    if pos < n and text[pos] == "]":
        if text[skip(pos + 1):].strip():
            raise BadInput("not valid JSON: extra data after the list", file=path, line=line_of(skip(pos + 1)))
        return
    while True:
        try:
            record, end = decode_json(text, pos)
        except json.JSONDecodeError as e:
            raise BadInput(f"not valid JSON: {e.msg} (column {e.colno})", file=path, line=e.lineno) from None
        except JsonRefused as e:
            raise BadInput(f"not valid JSON: {e}", file=path, line=line_of(pos)) from None
        yield line_of(pos), _object(record, path, line_of(pos))
        pos = skip(end)
        if pos >= n:
            raise BadInput("not valid JSON: the list is not closed with ]", file=path, line=line_of(n))
        if text[pos] == "]":
            rest = skip(pos + 1)
            if rest < n:
                raise BadInput("not valid JSON: extra data after the list", file=path, line=line_of(rest))
            return
        if text[pos] != ",":
            raise BadInput(f"not valid JSON: expected , or ] between records, found {text[pos]!r}", file=path, line=line_of(pos))
        pos = skip(pos + 1)


def _object(record: Any, path: Path, line: int) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise BadInput(f"a record must be a JSON object, got {_kind(record)}", file=path, line=line)
    return record


def detect_format(record: dict[str, Any], path: str | Path = "", line: int = 0, require_completion: bool = True) -> str:
    """The format a record's fields say it is in."""
    keys = set(record)
    if "messages" in keys:
        return "chat"
    if "chosen" in keys or "rejected" in keys:
        return "preference"
    if "instruction" in keys:
        return "alpaca"
    if "prompt" in keys and ("completion" in keys or not require_completion):
        return "prompt-completion"
    shown = ", ".join(sorted(keys)[:8]) or "none"
    raise BadInput(
        "cannot tell the format: expected instruction/output (alpaca), prompt/completion, messages (chat) "
        f"or prompt/chosen/rejected (preference); its fields are: {shown}",
        file=path, line=line,
    )


def parse_record(record: dict[str, Any], fmt: str, path: str | Path, line: int, require_completion: bool = True) -> Example:
    """One validated record as an Example."""
    required, optional = FIELDS[fmt]

    def text(name: str, *, required: bool = True) -> str | None:
        if name not in record or record[name] is None:
            if required:
                raise BadInput(f"missing required field for the {fmt} format", file=path, line=line, field=name)
            return None
        value = record[name]
        if not isinstance(value, str):
            raise BadInput(f"must be a string, got {_kind(value)}", file=path, line=line, field=name)
        if required and not value.strip():
            raise BadInput("is empty", file=path, line=line, field=name)
        return value

    meta = {k: v for k, v in record.items() if k not in required and k not in optional}
    if fmt == "alpaca":
        instruction = text("instruction")
        extra = text("input", required=False) or ""
        content = instruction.strip() + ("\n\n" + extra.strip() if extra.strip() else "")
        output = text("output", required=require_completion)
        return Example([{"role": "user", "content": content}], completion=output, meta=meta, file=str(path), line=line)
    if fmt == "prompt-completion":
        prompt = text("prompt")
        completion = text("completion", required=require_completion)
        return Example([{"role": "user", "content": prompt}], completion=completion, meta=meta, file=str(path), line=line)
    if fmt == "chat":
        turns = _messages(record.get("messages"), path, line, "messages", fmt)
        if turns[-1]["role"] == "assistant":
            prompt, completion = turns[:-1], turns[-1]["content"]
        elif require_completion:
            raise BadInput("the last turn must be the assistant's answer (role assistant), got role "
                           f"{turns[-1]['role']!r}", file=path, line=line, field="messages")
        else:
            prompt, completion = turns, None
        if not any(t["role"] == "user" for t in prompt):
            raise BadInput("needs a user turn before the assistant's answer", file=path, line=line, field="messages")
        return Example(prompt, completion=completion, meta=meta, file=str(path), line=line)
    # preference
    if "prompt" not in record:
        raise BadInput("missing required field for the preference format", file=path, line=line, field="prompt")
    raw_prompt = record["prompt"]
    if isinstance(raw_prompt, list):
        prompt = _messages(raw_prompt, path, line, "prompt", fmt)
        if prompt[-1]["role"] != "user":
            raise BadInput("the prompt's last turn must be the user's", file=path, line=line, field="prompt")
    else:
        prompt = [{"role": "user", "content": text("prompt")}]
    chosen = _answer(record, "chosen", path, line)
    rejected = _answer(record, "rejected", path, line)
    return Example(prompt, completion=chosen, chosen=chosen, rejected=rejected, meta=meta, file=str(path), line=line)


def _answer(record: dict[str, Any], name: str, path: str | Path, line: int) -> str:
    """A preference answer: a string, or chat turns whose last (assistant) turn is the answer."""
    if name not in record or record[name] is None:
        raise BadInput("missing required field for the preference format", file=path, line=line, field=name)
    value = record[name]
    if isinstance(value, list):
        turns = _messages(value, path, line, name, "preference")
        if turns[-1]["role"] != "assistant":
            raise BadInput("the last turn must be the assistant's answer", file=path, line=line, field=name)
        value = turns[-1]["content"]
    elif not isinstance(value, str):
        raise BadInput(f"must be a string or a list of chat turns, got {_kind(value)}", file=path, line=line, field=name)
    if not value.strip():
        raise BadInput("is empty", file=path, line=line, field=name)
    return value


def _messages(value: Any, path: str | Path, line: int, name: str, fmt: str) -> list[dict[str, str]]:
    """Validated chat turns: a non-empty list of {role, content} objects, known roles, system first only."""
    if value is None:
        raise BadInput(f"missing required field for the {fmt} format", file=path, line=line, field=name)
    if not isinstance(value, list):
        raise BadInput(f"must be a list of {{role, content}} turns, got {_kind(value)}", file=path, line=line, field=name)
    if not value:
        raise BadInput("is empty", file=path, line=line, field=name)
    turns = []
    for i, turn in enumerate(value):
        where = f"{name}[{i}]"
        if not isinstance(turn, dict):
            raise BadInput(f"a turn must be an object with role and content, got {_kind(turn)}", file=path, line=line, field=where)
        role, content = turn.get("role"), turn.get("content")
        if role not in ROLES:
            raise BadInput(f"unknown role {role!r}; roles are {', '.join(ROLES)}", file=path, line=line, field=where + ".role")
        if role == "system" and i != 0:
            raise BadInput("a system turn may only come first", file=path, line=line, field=where + ".role")
        if not isinstance(content, str):
            raise BadInput(f"must be a string, got {_kind(content)}", file=path, line=line, field=where + ".content")
        if not content.strip():
            raise BadInput("is empty", file=path, line=line, field=where + ".content")
        turns.append({"role": role, "content": content})
    return turns


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number"}.get(type(value), type(value).__name__)
