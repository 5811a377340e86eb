"""The format metric and the JSON finder on hand-made outputs, tricky ones included."""

from __future__ import annotations

import pytest
from ftharness_plugins.format_metric import FormatMetric, score_format

from ftharness.suites.json_extract import balanced_spans, parse_lenient, parse_strict
from ftharness.suites.metric import MetricContext, Sample

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["name", "qty"],
    "additionalProperties": False,
    "properties": {"name": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}, "tags": {"type": "array"}},
}


@pytest.mark.parametrize(
    ("text", "strict", "lenient", "value"),
    [
        ('{"name": "a", "qty": 1}', True, True, {"name": "a", "qty": 1}),
        ('  \n{"name": "a", "qty": 1}\n ', True, True, {"name": "a", "qty": 1}),
        ('Here you go: {"name": "a", "qty": 1} Hope it helps!', False, True, {"name": "a", "qty": 1}),
        ('JSON:\n```json\n{"name": "a", "qty": 2}\n```', False, True, {"name": "a", "qty": 2}),
        ('```JSON\n[1, 2]\n```\nand {"x": 1}', False, True, [1, 2]),
        ('{"name": "a", "qty": 1,}', False, False, None),  # trailing comma is not JSON
        ('[1, 2, 3,]', False, False, None),
        ('{"a": {"b": {"c": [1, {"d": null}]}}}', True, True, {"a": {"b": {"c": [1, {"d": None}]}}}),
        ('{"name": "Ngọc 東京 👋", "qty": 1}', True, True, {"name": "Ngọc 東京 👋", "qty": 1}),
        ('{"name": "\\u00e9t\\u00e9", "qty": 1}', True, True, {"name": "été", "qty": 1}),
        ('["x", "y"]', True, True, ["x", "y"]),
        ("", False, False, None),
        ("   \n", False, False, None),
        ('{"a": 1}{"b": 2}', False, True, {"a": 1}),  # two documents: strict fails, lenient takes the first
        ('{"a": 1}\n{"b": 2}', False, True, {"a": 1}),
        ('text {"s": "brace } and ] inside", "q": "say \\"hi\\" {"} end', False, True, {"s": "brace } and ] inside", "q": 'say "hi" {'}),
        ('see [note] then {"a": 1}', False, True, {"a": 1}),  # a bracketed word is skipped, not JSON
        ('{"a": NaN}', False, False, None),
        ('{"a": 1', False, False, None),
        ('{"a": [1, 2}', False, False, None),
        ("42", True, True, 42),  # a whole-output document passes lenient too
        (r'{"s": "```json\n{}\n```"}', True, True, {"s": "```json\n{}\n```"}),  # a fence inside a string
        ('```json\n{"a": 1,}\n```\n{"b": 2}', False, False, None),  # the fence alone decides
    ],
)
def test_strict_and_lenient_parsing(text, strict, lenient, value):
    s, le = parse_strict(text), parse_lenient(text)
    assert s.ok is strict
    assert le.ok is lenient
    if lenient:
        assert le.value == value
    elif strict:
        assert s.value == value


def test_balanced_spans_skip_strings_and_mismatches():
    text = 'a {"x": "}"} b [1, [2]] c {]'
    spans = [text[s:e] for s, e in balanced_spans(text)]
    assert spans == ['{"x": "}"}', "[1, [2]]"]


def test_score_format_rates_and_common_errors():
    outputs = [
        '{"name": "a", "qty": 1}',  # valid, strict
        'Sure: {"name": "b", "qty": 2}',  # valid, lenient only
        '{"name": "c", "qty": 0}',  # parses, fails minimum
        '{"name": "d"}',  # parses, missing qty
        '{"qty": 0, "extra": true}',  # several errors
        "no json here",
        '{"name": "e", "qty": 3,}',  # trailing comma
        "",
    ]
    r = score_format(outputs, SCHEMA)
    n = len(outputs)
    assert r.values["parse_rate"] == r.values["parse_rate_strict"] == pytest.approx(1 / n)
    assert r.values["parse_rate_lenient"] == pytest.approx(2 / n)
    assert r.values["json_rate_strict"] == pytest.approx(4 / n)
    assert r.values["json_rate_lenient"] == pytest.approx(5 / n)
    assert r.values["schema_fail_rate"] == pytest.approx(3 / n)
    assert r.per_sample["parse_rate_strict"] == [1, 0, 0, 0, 0, 0, 0, 0]
    assert r.per_sample["parse_rate_lenient"] == [1, 1, 0, 0, 0, 0, 0, 0]
    assert r.per_sample["schema_fail_rate"] == [0, 0, 1, 1, 1, 0, 0, 0]
    errors = {(e["path"], e["validator"]): e["count"] for e in r.details["common_schema_errors"]}
    assert errors[("$.qty", "minimum")] == 2
    assert errors[("$", "required")] == 2
    assert errors[("$", "additionalProperties")] == 1
    assert r.details["common_schema_errors"][0]["count"] == 2


def test_without_schema_validity_means_json():
    r = score_format(['{"a": 1}', "[1]", "nope"], None)
    assert r.values["parse_rate"] == pytest.approx(2 / 3)
    assert r.values["schema_fail_rate"] == 0
    assert "no schema" in r.details["validity"]


def test_format_checker_is_on():
    schema = {"type": "object", "properties": {"d": {"type": "string", "format": "date"}}}
    r = score_format(['{"d": "2026-02-30"}', '{"d": "2026-02-28"}'], schema)
    assert r.per_sample["parse_rate"] == [0, 1]


def test_metric_prefers_run_schema_and_resolves_suite_path(tmp_path):
    import json

    (tmp_path / "s.json").write_text(json.dumps({"type": "array"}))
    metric = FormatMetric()
    settings = metric.check_settings({"schema": "s.json"}, source=tmp_path / "suite.yaml")
    assert settings["schema"] == str(tmp_path / "s.json")
    ctx = MetricContext(samples=[Sample(0, "", "[1]"), Sample(1, "", '{"a": 1}')])
    assert metric.compute(ctx, settings).per_sample["parse_rate"] == [1, 0]
    ctx.schema = {"type": "object"}  # the run's schema (--schema, the task) wins
    assert metric.compute(ctx, settings).per_sample["parse_rate"] == [0, 1]


def test_bad_schema_settings(tmp_path):
    from ftharness.errors import BadInput

    (tmp_path / "bad.json").write_text('{"type": "objekt"}')
    (tmp_path / "broken.json").write_text('{"type": ')
    with pytest.raises(BadInput, match="not a valid JSON Schema"):
        FormatMetric().check_settings({"schema": "bad.json"}, source=tmp_path / "suite.yaml")
    with pytest.raises(BadInput, match="not valid JSON"):
        FormatMetric().check_settings({"schema": "broken.json"}, source=tmp_path / "suite.yaml")
    with pytest.raises(BadInput, match="not found"):
        FormatMetric().check_settings({"schema": "missing.json"}, source=tmp_path / "suite.yaml")
    with pytest.raises(BadInput, match="metrics.format.shema"):
        FormatMetric().check_settings({"shema": "x"}, source=tmp_path / "suite.yaml")
