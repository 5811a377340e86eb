"""Strict loading of user files: every mistake is one line naming the file and the field or line."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from ftharness.config import from_mapping, load_mapping
from ftharness.errors import BadInput


@dataclass
class Inner:
    rate: float = field(default=0.5, metadata={"min": 0, "max": 1})


@dataclass
class Outer:
    name: str
    count: int = field(default=0, metadata={"min": 0})
    mode: Literal["a", "b"] = "a"
    tags: list[str] = field(default_factory=list)
    inner: Inner = field(default_factory=Inner)
    maybe: int | None = None
    flag: bool = False


def test_good_mapping_converts():
    o = from_mapping(Outer, {"name": "x", "count": 3, "mode": "b", "tags": ["t"], "inner": {"rate": 1}, "flag": True})
    assert o == Outer("x", 3, "b", ["t"], Inner(1.0), None, True)


@pytest.mark.parametrize(
    "data, expected",
    [
        ({"name": "x", "colour": 1}, "colour: unknown field"),
        ({}, "name: required field is missing"),
        ({"name": "x", "count": -1}, "count: must be >= 0"),
        ({"name": "x", "count": "3"}, "count: expected a whole number"),
        ({"name": "x", "count": True}, "count: expected a whole number"),
        ({"name": "x", "mode": "c"}, "mode: 'c' is not one of: a, b"),
        ({"name": "x", "tags": "t"}, "tags: expected a list"),
        ({"name": "x", "tags": [1]}, "tags[0]: expected text"),
        ({"name": "x", "inner": {"rate": 2}}, "inner.rate: must be <= 1"),
        ({"name": "x", "inner": {"speed": 2}}, "inner.speed: unknown field"),
        ({"name": "x", "flag": "yes"}, "flag: expected true or false"),
        ({"name": "x", "maybe": 1.5}, "maybe: expected a whole number"),
    ],
)
def test_bad_mapping_names_the_field(data, expected):
    with pytest.raises(BadInput) as e:
        from_mapping(Outer, data, source="s.yaml")
    assert str(e.value).startswith("s.yaml: ")
    assert expected in str(e.value)


@pytest.mark.parametrize(
    "name, text, expected",
    [
        ("a.yaml", "name: [unclosed\n", "a.yaml:2: not valid YAML"),
        ("a.yaml", "", "file is empty"),
        ("a.yaml", "- 1\n- 2\n", "expected a mapping of fields at the top level, got a list"),
        ("a.json", '{"name": }', "a.json:1: not valid JSON"),
    ],
)
def test_bad_files(tmp_path, name, text, expected):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(BadInput) as e:
        load_mapping(p)
    assert expected in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(BadInput, match="file not found"):
        load_mapping(tmp_path / "nope.yaml")
    with pytest.raises(BadInput, match="is a folder"):
        load_mapping(tmp_path)


def test_not_utf8(tmp_path):
    p = tmp_path / "latin.yaml"
    p.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(BadInput, match="not UTF-8"):
        load_mapping(p)
