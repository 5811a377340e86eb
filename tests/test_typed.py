"""The one validation path (ftharness.typed): user files and flags into typed dataclasses, every mistake one
line naming the file, the line where YAML knows it, and the field or flag."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Literal

import pytest

from ftharness.errors import BadInput
from ftharness.typed import (
    add_flags,
    flag_values,
    from_mapping,
    like,
    load_file,
    load_json_schema,
    load_mapping,
    parse_text,
    spec,
    text_or_file,
    text_value,
)


@dataclass
class Inner:
    rate: float = spec(0.5, ge=0, le=1, help="a share")


@dataclass
class Outer:
    name: str
    count: int = spec(0, ge=0)
    mode: Literal["a", "b"] = "a"
    tags: list[str] = spec(factory=list)
    inner: Inner = spec(factory=Inner)
    maybe: int | None = None
    flag: bool = False
    ratio: float = spec(0.1, gt=0, lt=1)
    level: str = spec("low", choices=("low", "high"))
    targets: str | list[str] = spec("all", min_len=1)
    scores: list[float] = spec(factory=list, ge=0)
    table: dict[str, int] = spec(factory=dict)
    extra: Any = None
    wild: float = spec(0.0, finite=False)


def test_good_mapping_converts():
    o = from_mapping(Outer, {"name": "x", "count": 3, "mode": "b", "tags": ["t"], "inner": {"rate": 1},
                             "flag": True, "ratio": 0.5, "level": "high", "targets": ["q", "v"],
                             "scores": [1, 2.5], "table": {"a": 1}, "extra": {"any": ["thing"]}})
    assert o == Outer("x", 3, "b", ["t"], Inner(1.0), None, True, 0.5, "high", ["q", "v"], [1.0, 2.5], {"a": 1},
                      {"any": ["thing"]})


def test_ints_become_floats_and_defaults_are_fresh():
    o = from_mapping(Outer, {"name": "x", "inner": {"rate": 0}, "scores": [3]})
    assert type(o.inner.rate) is float and type(o.scores[0]) is float
    a, b = from_mapping(Outer, {"name": "a"}), from_mapping(Outer, {"name": "b"})
    a.tags.append("only a")
    assert b.tags == []


@pytest.mark.parametrize(
    "data, expected",
    [
        ({"name": "x", "colour": 1}, "colour: unknown field"),
        ({"name": "x", "cuont": 1}, "cuont: unknown field (did you mean 'count'?); known: name, count, mode"),
        ({}, "name: required field is missing"),
        ({"name": "x", "count": -1}, "count: must be >= 0, got -1"),
        ({"name": "x", "count": "3"}, "count: expected a whole number, got text ('3')"),
        ({"name": "x", "count": True}, "count: expected a whole number, got a boolean (True)"),
        ({"name": "x", "count": 2.0}, "count: expected a whole number"),
        ({"name": "x", "count": None}, "count: expected a whole number, got nothing (null)"),
        ({"name": "x", "mode": "c"}, "mode: 'c' is not one of: a, b"),
        ({"name": "x", "tags": "t"}, "tags: expected a list"),
        ({"name": "x", "tags": [1]}, "tags[0]: expected text"),
        ({"name": "x", "inner": {"rate": 2}}, "inner.rate: must be <= 1, got 2"),
        ({"name": "x", "inner": {"speed": 2}}, "inner.speed: unknown field"),
        ({"name": "x", "inner": 3}, "inner: expected a mapping"),
        ({"name": "x", "flag": "yes"}, "flag: expected true or false"),
        ({"name": "x", "maybe": 1.5}, "maybe: expected a whole number"),
        ({"name": "x", "ratio": 0}, "ratio: must be > 0"),
        ({"name": "x", "ratio": 1}, "ratio: must be < 1"),
        ({"name": "x", "ratio": True}, "ratio: expected a number, got a boolean"),
        ({"name": "x", "ratio": float("nan")}, "ratio: must be a finite number, got nan"),
        ({"name": "x", "ratio": float("inf")}, "ratio: must be a finite number"),
        ({"name": "x", "level": "hihg"}, "level: 'hihg' is not one of: low, high (did you mean 'high'?)"),
        ({"name": "x", "targets": 3}, "targets: expected text or a list, got a number (3)"),
        ({"name": "x", "targets": []}, "targets: needs at least 1 item"),
        ({"name": "x", "targets": ""}, "targets: needs at least 1 character"),
        ({"name": "x", "scores": [1, -2]}, "scores[1]: must be >= 0"),
        ({"name": "x", "table": {"a": "one"}}, "table.a: expected a whole number"),
        ({"name": "x", "table": [1]}, "table: expected a mapping"),
    ],
)
def test_bad_mapping_names_the_field(data, expected):
    with pytest.raises(BadInput) as e:
        from_mapping(Outer, data, source="s.yaml")
    assert str(e.value).startswith("s.yaml: ")
    assert expected in str(e.value)


def test_a_field_may_admit_nan():
    import math

    assert math.isinf(from_mapping(Outer, {"name": "x", "wild": float("inf")}).wild)


def test_prefix_and_kind_name_the_place():
    with pytest.raises(BadInput) as e:
        from_mapping(Inner, {"rte": 1}, source="t.yaml", prefix="candidates.lora.hyperparameters.",
                     kind="hyperparameter for peft/lora")
    assert str(e.value).startswith("t.yaml: candidates.lora.hyperparameters.rte: unknown hyperparameter for "
                                   "peft/lora (did you mean 'rate'?); known: rate")


def test_yaml_errors_carry_the_line_of_the_key(tmp_path):
    p = tmp_path / "o.yaml"
    p.write_text("name: x\ninner:\n  rate: 0.5\n  speed: 1\n")
    with pytest.raises(BadInput) as e:
        load_file(Outer, p)
    assert str(e.value).startswith(f"{p}:4: inner.speed: unknown field")
    p.write_text("name: x\ncount: 1\ntags:\n  - a\n  - 3\n")
    with pytest.raises(BadInput) as e:
        load_file(Outer, p)
    assert str(e.value).startswith(f"{p}:3: tags[1]: expected text")
    p.write_text("name: x\ntable:\n  a: 1\n  b: two\n")
    with pytest.raises(BadInput) as e:
        load_file(Outer, p)
    assert str(e.value).startswith(f"{p}:4: table.b: expected a whole number")


def test_lines_survive_dict_fields_for_later_checks(tmp_path):
    p = tmp_path / "o.yaml"
    p.write_text("name: x\ntable:\n  a: 1\n  b: 2\n")
    table = load_file(Outer, p).table
    assert table == {"a": 1, "b": 2}
    with pytest.raises(BadInput) as e:
        from_mapping(Inner, {"rate": table["a"], "x": 1} | {}, source=p)  # a plain dict: no line known
    assert str(e.value).startswith(f"{p}: x:")
    with pytest.raises(BadInput) as e:
        from_mapping(Inner, table, source=p)  # the loaded mapping: its lines are kept
    assert str(e.value).startswith(f"{p}:3: a: unknown field")


def test_yaml_reads_exponents_without_a_dot_as_numbers(tmp_path):
    p = tmp_path / "o.yaml"
    p.write_text("name: x\nscores: [2e-4, 1E3, 5]\nratio: 2e-1\n")
    o = load_file(Outer, p)
    assert o.scores == [2e-4, 1000.0, 5.0] and o.ratio == 0.2


@pytest.mark.parametrize(
    "name, text, expected",
    [
        ("a.yaml", "name: [unclosed\n", "a.yaml:2: not valid YAML"),
        ("a.yaml", "", "file is empty"),
        ("a.yaml", "- 1\n- 2\n", "expected a mapping of fields at the top level, got a list"),
        ("a.json", '{"name": }', "a.json:1: not valid JSON"),
        ("a.json", '{"name": NaN}', "not valid JSON: NaN is not JSON"),
        ("a.json", '{"name": "a", "name": "b"}', "not valid JSON: duplicate key 'name'"),
        ("a.yaml", "name: a\nname: b\n", "a.yaml:2: not valid YAML: duplicate key 'name' (first on line 1)"),
    ],
)
def test_bad_files(tmp_path, name, text, expected):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(BadInput) as e:
        load_mapping(p)
    assert expected in str(e.value)
    assert "\n" not in str(e.value)


def test_yaml_merge_keys_may_be_overridden(tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text("base: &b {name: a, ratio: 0.5}\nother:\n  <<: *b\n  name: c\n")
    assert load_mapping(p)["other"] == {"name": "c", "ratio": 0.5}


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


# -- flags and typed answers ----------------------------------------------------------------------------


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_flags(parser, Outer)
    return parser.parse_args(list(argv))


def test_flags_are_generated_and_typed_like_files():
    args = _parse("--name", "x", "--count", "1_200", "--mode", "B", "--flag", "--tags", "a, b,,",
                  "--ratio", "0.25", "--scores", "1,2.5", "--targets", "q_proj")
    given = flag_values(Outer, args)
    assert given == {"name": "x", "count": 1200, "mode": "b", "flag": True, "tags": ["a", "b"], "ratio": 0.25,
                     "scores": [1.0, 2.5], "targets": "q_proj"}
    assert flag_values(Outer, _parse("--name", "x", "--no-flag")) == {"name": "x", "flag": False}
    with pytest.raises(SystemExit):
        _parse()  # --name is required: the field has no default


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--count", "many"], "--count: expected a whole number, got 'many'"),
        (["--count", "-1"], "--count: must be >= 0"),
        (["--count", "1,5"], "--count: expected a whole number"),
        (["--ratio", "nan"], "--ratio: must be a finite number"),
        (["--ratio", "1"], "--ratio: must be < 1"),
        (["--mode", "c"], "--mode: 'c' is not one of: a, b"),
        (["--scores", "1,-1"], "--scores: must be >= 0"),
        (["--level", "mid"], "--level: 'mid' is not one of: low, high"),
    ],
)
def test_bad_flags_name_the_flag(argv, expected):
    with pytest.raises(BadInput) as e:
        flag_values(Outer, _parse("--name", "x", *argv))
    assert str(e.value) == expected or str(e.value).startswith(expected)


def test_flag_help_comes_from_the_field():
    parser = argparse.ArgumentParser()
    add_flags(parser, Inner)
    text = parser.format_help()
    assert "--rate NUMBER" in text and "a share (default 0.5)" in text


@pytest.mark.parametrize(
    "tp, text, value",
    [
        (int, "1,200", 1200), (int, " 7 ", 7), (float, "2e-4", 2e-4), (bool, "Yes", True), (bool, "n", False),
        (list[int], "1, 2", [1, 2]), (Literal["low", "high"], "HIGH", "high"), (int | None, "3", 3),
        (str, " hi ", "hi"),
    ],
)
def test_parse_text(tp, text, value):
    assert parse_text(tp, text) == value


def test_text_value_checks_and_names_the_label():
    assert text_value(Inner, "rate", "0.3") == 0.3
    with pytest.raises(BadInput, match=r"^rate: must be <= 1"):
        text_value(Inner, "rate", "3")
    with pytest.raises(BadInput, match=r"^flag: expected y or n"):
        text_value(Outer, "flag", "maybe")


def test_like_copies_the_contract_and_moves_the_default():
    @dataclass
    class Narrow(Inner):
        rate: float = like(Inner, "rate", 0.2, source="a paper")

    assert Narrow().rate == 0.2
    with pytest.raises(BadInput, match="must be <= 1"):
        from_mapping(Narrow, {"rate": 1.5})
    import dataclasses

    meta = {f.name: f.metadata for f in dataclasses.fields(Narrow)}["rate"]
    assert meta["help"] == "a share" and meta["source"] == "a paper"


# -- the shared file helpers -----------------------------------------------------------------------------


def test_text_or_file(tmp_path):
    src = tmp_path / "task.yaml"
    (tmp_path / "prompt.txt").write_text("  Extract the fields.\n")
    names = ("instruction", "instruction_file")
    assert text_or_file("inline", None, names=names, source=src) == "inline"
    assert text_or_file(None, "prompt.txt", names=names, source=src) == "Extract the fields."
    assert text_or_file(None, None, names=names, source=src) is None
    with pytest.raises(BadInput, match=r"task.yaml: instruction_file: give instruction or instruction_file, not both"):
        text_or_file("inline", "prompt.txt", names=names, source=src)
    with pytest.raises(BadInput, match=r"task.yaml: instruction_file: file not found: .*nope.txt"):
        text_or_file(None, "nope.txt", names=names, source=src)


def test_load_json_schema(tmp_path):
    good = tmp_path / "s.json"
    good.write_text('{"type": "object", "properties": {"a": {"type": "string"}}}')
    assert load_json_schema(good)["type"] == "object"
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": "objekt"}')
    with pytest.raises(BadInput, match="bad.json: not a valid JSON Schema at type"):
        load_json_schema(bad)
    broken = tmp_path / "broken.json"
    broken.write_text('{"type": ')
    with pytest.raises(BadInput, match=r"broken.json:1: not valid JSON"):
        load_json_schema(broken)
    with pytest.raises(BadInput, match=r"task.yaml: schema: JSON Schema file not found"):
        load_json_schema(tmp_path / "gone.json", source="task.yaml", field="schema")
    listed = tmp_path / "list.json"
    listed.write_text("[1]")
    with pytest.raises(BadInput, match="a JSON Schema is an object"):
        load_json_schema(listed)
