"""Suite files, gates, the runner and slices."""

from __future__ import annotations

import json
import math

import pytest

from ftharness.errors import BadInput
from ftharness.jsonrecord import from_json, to_json
from ftharness.suites.gates import Gate, check_gate, parse_gate
from ftharness.suites.metric import MetricContext, Sample
from ftharness.suites.runner import SuiteResult, run_suite
from ftharness.suites.slices import compute_slices, label_of, slice_labels
from ftharness.suites.suite import load_suite, suite_names


def write(tmp_path, text, name="suite.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    ("expr", "op", "threshold"),
    [(">= 0.98", ">=", 0.98), ("<=0.01", "<=", 0.01), ("< 5", "<", 5.0), (" > -1e-3 ", ">", -0.001),
     ("== 1", "==", 1.0), ("!= 0", "!=", 0.0), (">= .5", ">=", 0.5)],
)
def test_parse_gate(expr, op, threshold):
    g = parse_gate("format.parse_rate", expr)
    assert (g.metric, g.value, g.op, g.threshold) == ("format", "parse_rate", op, threshold)


@pytest.mark.parametrize("expr", [">= abc", "0.98", 0.98, "=> 1", ">= 1 2", ">= nan", "", None, ">="])
def test_unreadable_gates_name_the_field(expr):
    with pytest.raises(BadInput) as e:
        parse_gate("format.parse_rate", expr, file="s.yaml")
    assert e.value.field == "gates.format.parse_rate" and e.value.file == "s.yaml"


def test_gate_outcomes_never_pass_on_missing_or_nan():
    g = Gate("format.parse_rate", ">=", 0.98)
    assert check_gate(g, {"parse_rate": 0.99}).passed
    fail = check_gate(g, {"parse_rate": 0.5})
    assert not fail.passed and "0.5" in fail.message and ">= 0.98" in fail.message and fail.value == 0.5
    for values in ({"parse_rate": math.nan}, {"parse_rate": math.inf}, {"parse_rate": None}, {}, None):
        out = check_gate(g, values)
        assert not out.passed and out.value is None
    assert "no references" in check_gate(g, {}, "no references").message
    assert not check_gate(Gate("x.y", "<", 5), {"y": -math.inf}).passed


def test_shipped_suites_load():
    names = suite_names()
    for name in ("format", "safety", "forgetting", "task", "redteam"):
        assert name in names
        suite = load_suite(name)
        assert suite.gates and suite.path.name == f"{name}.yaml"
    assert [g.text for g in load_suite("forgetting").gates][0] == "forgetting.ppl_delta_pct < 5"


@pytest.mark.parametrize(
    ("text", "field", "match"),
    [
        ("name: x\nmetrics: {formatt: {}}\n", "metrics.formatt", "unknown metric"),
        ("name: x\nmetrics: {format: {}}\ngates: {format.parse_rate: '>= abc'}\n", "gates.format.parse_rate", "cannot read"),
        ("name: x\nmetrics: {format: {}}\ngates: {format.parse_rat: '>= 0.9'}\n", "gates.format.parse_rat", "does not produce"),
        ("name: x\nmetrics: {format: {}}\ngates: {toxicity.max: '<= 0.1'}\n", "gates.toxicity.max", "not computed by this suite"),
        ("name: x\nmetrics: {format: {}}\ngates: {parse_rate: '>= 0.9'}\n", "gates.parse_rate", "METRIC.VALUE"),
        ("name: x\nmetrics: {format: {}}\ngates: {format.parse_rate: 0.9}\n", "gates.format.parse_rate", "quoted comparison"),
        ("name: x\nmetrics: {format: {colour: red}}\n", "metrics.format.colour", "unknown field"),
        ("name: x\nmetrics: {format: 3}\n", "metrics.format", "mapping"),
        ("name: x\nmetrics: {}\n", "metrics", "at least one metric"),
        ("metrics: {format: {}}\n", "name", "required"),
        ("name: x\nmetrics: {format: {}}\nextra: 1\n", "extra", "unknown field"),
        ("name: x\nmetrics: {toxicity: {threshold: 5}}\n", "metrics.toxicity.threshold", "threshold"),
        ("name: x\nmetrics: {forgetting: {window: 8, stride: 8}}\n", "metrics.forgetting.stride", "stride"),
    ],
)
def test_bad_suite_files_name_file_and_field(tmp_path, text, field, match):
    path = write(tmp_path, text)
    with pytest.raises(BadInput, match=match) as e:
        load_suite(path)
    assert e.value.file == str(path)
    assert e.value.field == field


def test_unknown_suite_name_lists_known_ones():
    with pytest.raises(BadInput, match="known suites: .*format"):
        load_suite("no-such-suite")


def samples(outputs, meta=None):
    return [Sample(i, "in" * (i + 1), o, meta=(meta[i] if meta else {})) for i, o in enumerate(outputs)]


def test_run_suite_gates_and_its_json_is_strict(tmp_path):
    suite = load_suite(write(tmp_path, """
name: mini
metrics: {format: {}, task: {}}
gates:
  format.parse_rate: ">= 0.5"
  format.parse_rate_lenient: "== 1"
  task.field_accuracy: ">= 0.5"
"""))
    ctx = MetricContext(samples=samples(['{"a": 1}', 'x {"a": 2}']), option="opt")
    result = run_suite(suite, ctx, progress=False)
    by = {g.name: g for g in result.gates}
    assert by["format.parse_rate"].passed and by["format.parse_rate"].value == 0.5
    assert by["format.parse_rate_lenient"].passed
    missing = by["task.field_accuracy"]  # no references at all: not measured, so it fails
    assert not missing.passed and "reference" in missing.message
    assert not result.passed and result.failed_gates == [missing]
    assert result.value("format.parse_rate") == 0.5
    text = json.dumps(to_json(result), allow_nan=False)  # NaN per-sample scores became null
    data = json.loads(text)
    assert data["metrics"]["task"]["per_sample"]["exact_match"] == [None, None]
    assert data["passed"] is False and data["gates"][0]["suite"] == "mini"
    back = from_json(SuiteResult, data)
    assert back.failed_gates == [missing] and back.metrics["format"].values["parse_rate"] == 0.5


def test_empty_run_is_an_error_and_model_metrics_skip_without_a_model(tmp_path):
    suite = load_suite(write(tmp_path, "name: m\nmetrics: {format: {}, forgetting: {}}\ngates: {forgetting.ppl_delta_pct: '< 5'}\n"))
    with pytest.raises(BadInput, match="nothing was evaluated"):
        run_suite(suite, MetricContext(samples=[]), progress=False)
    result = run_suite(suite, MetricContext(samples=samples(["{}"])), progress=False)
    assert "forgetting" in result.skipped and not result.passed
    assert "skipped" in result.gates[0].message
    only_model = load_suite(write(tmp_path, "name: f\nmetrics: {forgetting: {}}\n", "f.yaml"))
    with pytest.raises(BadInput, match="every metric needs a model"):
        run_suite(only_model, MetricContext(samples=samples(["{}"])), progress=False)


def test_a_failing_metric_value_below_threshold(tmp_path):
    suite = load_suite(write(tmp_path, "name: m\nmetrics: {format: {}}\ngates: {format.parse_rate: '>= 0.98'}\n"))
    result = run_suite(suite, MetricContext(samples=samples(['{"a": 1}', "nope", "nope"])), progress=False)
    assert not result.passed
    assert result.gates[0].message.startswith("format.parse_rate = 0.333333 (gate >= 0.98)")


def test_slices_by_field_and_input_length(tmp_path):
    meta = [{"template": "ticket"}, {"template": "email"}, {"template": "ticket"}, {}]
    ss = samples(['{"a": 1}', "no", "no", '{"b": 2}'], meta)
    scores = {"format.parse_rate": [1.0, 0.0, 0.0, 1.0], "format.short": [1.0],
              "task.exact_match": [math.nan, 1.0, 0.0, math.nan]}
    out = compute_slices(ss, scores, ["template", "input_length"])
    t = out["template"]
    assert t["ticket"].n == 2 and t["ticket"].values["format.parse_rate"] == 0.5
    assert t["email"].values["format.parse_rate"] == 0.0
    assert t["(missing)"].values["format.parse_rate"] == 1.0
    assert t["(missing)"].values["task.exact_match"] is None  # only NaN there
    assert t["ticket"].values["task.exact_match"] == 0.0
    assert "format.short" not in t["ticket"].values  # not per sample: left out
    # inputs of length 2, 4, 6, 8: median 5 -> two short, two long
    assert slice_labels(ss, "input_length") == ["short", "short", "long", "long"]
    assert out["input_length"]["long"].values["format.parse_rate"] == 0.5
    with pytest.raises(BadInput, match="slice field 'colour'"):
        slice_labels(ss, "colour")


def test_slice_labels_are_values_as_json_writes_them():
    values = [True, False, None, 3, 0.5, "Ticket", ["a", 1], {"b": 2, "a": 1}]
    ss = samples(["x"] * (len(values) + 1), [*({"f": v} for v in values), {}])
    assert slice_labels(ss, "f") == ["true", "false", "(missing)", "3", "0.5", "Ticket", '["a", 1]',
                                     '{"a": 1, "b": 2}', "(missing)"]
    assert label_of(True) == "true" and label_of("true") == "true"  # a flag and its JSON text meet


def test_nan_scores_are_left_out_and_counted():
    ss = samples(["x"] * 4, [{"ok": True}, {"ok": True}, {"ok": True}, {"ok": False}])
    out = compute_slices(ss, {"task.f1": [0.5, math.nan, None, 1.0], "format.parse_rate": [1.0, 1.0, 0.0, 0.0]},
                         ["ok"])["ok"]
    assert out["true"].n == 3 and out["true"].values["task.f1"] == 0.5  # the one number left
    assert out["true"].excluded == {"task.f1": 2}  # NaN and null, each counted
    assert out["false"].excluded == {} and out["false"].values == {"task.f1": 1.0, "format.parse_rate": 0.0}
    assert compute_slices(ss, {"task.f1": [math.nan] * 4}, ["ok"])["ok"]["false"].values["task.f1"] is None


def test_runner_writes_slices_from_suite(tmp_path):
    suite = load_suite(write(tmp_path, "name: m\nmetrics: {format: {}}\nslices: [kind]\n"))
    ss = samples(['{"a": 1}', "no"], [{"kind": "a"}, {"kind": "b"}])
    result = run_suite(suite, MetricContext(samples=ss), progress=False)
    assert result.passed  # no gates: reports only
    assert result.slices["kind"]["a"].values["format.parse_rate"] == 1.0


def test_shipped_suites_follow_the_published_suite_schema():
    import jsonschema
    import yaml

    root = load_suite("format").path.parent
    schema = json.loads((root / "suite.schema.json").read_text())
    jsonschema.validators.validator_for(schema).check_schema(schema)
    for path in sorted(root.glob("*.yaml")):
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "x", "metrics": {"format": {}}, "gates": {"format.parse_rate": ">= abc"}}, schema)
