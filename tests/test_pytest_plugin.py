"""`pytest suites/ --ftharness-predictions P`: gates as test items, junit XML, and no cost otherwise."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _import_extensions_once():
    """pytester's in-process runs drop the modules each run imported; re-importing C extensions
    (numpy under sacrebleu and rouge-score) in one process crashes it. Importing them here first keeps
    them loaded across runs."""
    import jsonschema  # noqa: F401
    import numpy  # noqa: F401
    import sacrebleu  # noqa: F401
    from rouge_score import rouge_scorer  # noqa: F401

    from ftharness.plugins import get_plugins

    get_plugins()

SUITE = """
name: mini
metrics:
  format: {}
  task: {}
gates:
  format.parse_rate_lenient: ">= 0.5"
  format.parse_rate: ">= 0.98"
  task.exact_match: ">= 0.5"
"""


def predictions(path):
    rows = [
        {"output": '{"a": 1}', "reference": '{"a": 1}', "input": "one"},
        {"output": 'Sure: {"a": 2}', "reference": '{"a": 2}', "input": "two"},
        {"output": "no idea", "reference": '{"a": 3}', "input": "three"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_gates_become_items_with_value_and_threshold(pytester):
    pytester.mkdir("suites")
    (pytester.path / "suites" / "mini.yaml").write_text(SUITE)
    (pytester.path / "suites" / "notes.yaml").write_text("just: a yaml file that is not a suite\n")
    preds = predictions(pytester.path / "preds.jsonl")
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest("suites", f"--ftharness-predictions={preds}", f"--junitxml={junit}", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines([
        "*format.parse_rate = 0.333333 (gate >= 0.98): FAILED*",
        "*task.exact_match = 0.333333 (gate >= 0.5): FAILED*",
    ])
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    assert set(cases) == {"format.parse_rate_lenient", "format.parse_rate", "task.exact_match"}
    assert cases["format.parse_rate_lenient"].find("failure") is None
    failure = cases["format.parse_rate"].find("failure")
    assert failure is not None and "0.333333" in failure.get("message") and ">= 0.98" in failure.get("message")
    props = {p.get("name"): p.get("value") for p in cases["format.parse_rate"].iter("property")}
    assert props["threshold"] == ">= 0.98" and float(props["measured"]) == 1 / 3


def test_nothing_collected_without_the_options(pytester):
    pytester.mkdir("suites")
    (pytester.path / "suites" / "mini.yaml").write_text(SUITE)
    result = pytester.runpytest("suites", "-p", "no:cacheprovider")
    result.assert_outcomes()
    assert result.ret == pytest_no_tests_collected()


def test_gates_with_nothing_to_measure_are_skipped_with_the_reason(pytester):
    """Predictions only, without references: the model's suites and the reference gates are skips, and
    the one gate that measured something and missed is the one failure."""
    pytester.mkdir("suites")
    (pytester.path / "suites" / "forgetting.yaml").write_text(
        "name: forgetting\nmetrics: {forgetting: {}}\n"
        "gates: {forgetting.ppl_delta_pct: '< 5', forgetting.qa_accuracy_delta: '>= -0.05'}\n"
    )
    (pytester.path / "suites" / "mini.yaml").write_text(SUITE)
    preds = pytester.path / "preds.jsonl"
    preds.write_text('{"output": "{\\"a\\": 1}"}\n{"output": "no idea"}\n')
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest("suites", f"--ftharness-predictions={preds}", f"--junitxml={junit}", "-rs",
                                "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1, skipped=3)
    result.stdout.fnmatch_lines([
        "*format.parse_rate = 0.5 (gate >= 0.98): FAILED*",
        "*suite 'forgetting' measures the model (forgetting), and this run has only predictions*",
        "*task.exact_match >= 0.5: not measured (no evaluated record has a reference answer)*",
    ])
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    skipped = cases["task.exact_match"].find("skipped")
    assert skipped is not None and "no evaluated record has a reference answer" in skipped.get("message")
    assert cases["format.parse_rate"].find("failure") is not None


def test_bad_suite_is_a_collection_error_naming_the_field(pytester):
    pytester.mkdir("suites")
    (pytester.path / "suites" / "bad.yaml").write_text("name: bad\nmetrics: {format: {}}\ngates: {format.parse_rate: '>= abc'}\n")
    preds = predictions(pytester.path / "preds.jsonl")
    result = pytester.runpytest("suites", f"--ftharness-predictions={preds}", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*bad.yaml: gates.format.parse_rate: cannot read*"])


def test_bad_predictions_fail_every_gate_with_the_reason(pytester):
    pytester.mkdir("suites")
    (pytester.path / "suites" / "mini.yaml").write_text(SUITE)
    bad = pytester.path / "preds.jsonl"
    bad.write_text('{"output": "x"}\n{"outptu": "y"}\n')
    result = pytester.runpytest("suites", f"--ftharness-predictions={bad}", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(["*preds.jsonl:2: output: missing required field*"])


def test_model_without_data_is_a_usage_error(pytester):
    result = pytester.runpytest("--ftharness-model=embedded", "-p", "no:cacheprovider")
    assert result.ret == 4  # pytest's usage error
    result.stderr.fnmatch_lines(["*--ftharness-model needs --ftharness-data*"])


def test_importing_the_plugin_costs_nothing():
    code = "import sys, ftharness.pytest_plugin; print(sorted(m for m in ('torch', 'transformers', 'jsonschema', 'yaml') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def pytest_no_tests_collected():
    return pytest.ExitCode.NO_TESTS_COLLECTED


def test_model_mode_runs_the_suite_once_for_its_gates(pytester, tiny_model_dir, check_results):
    pytester.mkdir("suites")
    (pytester.path / "suites" / "m.yaml").write_text(
        "name: m\nmetrics: {format: {}, throughput: {}}\n"
        "gates: {throughput.new_tokens_mean: '<= 2', format.parse_rate: '>= 0.99'}\n"
    )
    data = pytester.path / "d.jsonl"
    data.write_text('{"prompt": "Reply in JSON", "completion": "{}"}\n{"prompt": "More JSON", "completion": "[]"}\n')
    result = pytester.runpytest(
        "suites", f"--ftharness-model={tiny_model_dir}", f"--ftharness-data={data}", "--ftharness-max-new-tokens=2",
        "--ftharness-limit=2", f"--ftharness-out={pytester.path / 'out'}", "-p", "no:cacheprovider",
    )
    result.assert_outcomes(passed=1, failed=1)  # a random tiny model does not write JSON
    result.stdout.fnmatch_lines(["*format.parse_rate = 0 (gate >= 0.99): FAILED*"])
    saved = check_results(pytester.path / "out" / "m" / "results.json")
    assert saved["source"]["mode"] == "model" and saved["result"]["n_samples"] == 2
