"""Finding the JSON document in a model's output, strictly or leniently.

*Strict*: the whole output, stripped of surrounding whitespace, is exactly one JSON document.
*Lenient*: an output that passes strict passes lenient too; otherwise the first fenced ```json block,
else the first balanced JSON object or array in the text that parses. The lenient finder is a bracket scanner that knows JSON strings and escapes, so a ``}`` inside
``"a}b"`` does not close an object. Both follow RFC 8259: ``NaN``/``Infinity`` and trailing commas are
not JSON, so they never parse.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ftharness.io import loads_json

_FENCE = re.compile(r"```[ \t]*json[ \t]*\r?\n(.*?)```", re.IGNORECASE | re.DOTALL)
_CLOSE = {"{": "}", "[": "]"}


@dataclass
class Parsed:
    """The outcome of looking for JSON: ``ok`` with ``value``, or not ok with ``error``."""

    ok: bool
    value: Any = None
    error: str = ""
    how: str = ""  # "whole", "fence", "scan"


def parse_strict(output: str) -> Parsed:
    text = output.strip()
    if not text:
        return Parsed(False, error="empty output")
    try:
        return Parsed(True, loads_json(text), how="whole")
    except (json.JSONDecodeError, ValueError) as e:
        return Parsed(False, error=f"not one JSON document: {e}")


def parse_lenient(output: str) -> Parsed:
    """The whole output if it is one JSON document; else the first ```json fenced block if there is
    one (it alone decides), else the first balanced object or array that parses."""
    whole = parse_strict(output)
    if whole.ok:
        return whole
    fence = _FENCE.search(output)
    if fence:
        try:
            return Parsed(True, loads_json(fence.group(1).strip()), how="fence")
        except (json.JSONDecodeError, ValueError) as e:
            return Parsed(False, error=f"fenced json block does not parse: {e}")
    for start, end in balanced_spans(output):
        try:
            return Parsed(True, loads_json(output[start:end]), how="scan")
        except (json.JSONDecodeError, ValueError):
            continue
    if not output.strip():
        return Parsed(False, error="empty output")
    return Parsed(False, error="no JSON object or array found")


def balanced_spans(text: str):
    """Yield ``(start, end)`` of each balanced ``{...}`` / ``[...]`` span, left to right, not nested in
    an earlier span. Brackets inside JSON strings are ignored; a mismatched closer (``{]``) or a span that
    never closes ends that candidate and the scan moves on from the next opener."""
    i, n = 0, len(text)
    while i < n:
        if text[i] not in _CLOSE:
            i += 1
            continue
        end = _match(text, i)
        if end is None:
            i += 1
        else:
            yield i, end
            i = end


def _match(text: str, start: int) -> int | None:
    stack = [_CLOSE[text[start]]]
    in_string = escaped = False
    for j in range(start + 1, len(text)):
        c = text[j]
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in _CLOSE:
            stack.append(_CLOSE[c])
        elif c in "}]":
            if c != stack.pop():
                return None
            if not stack:
                return j + 1
    return None
