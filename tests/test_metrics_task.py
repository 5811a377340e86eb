"""Task metrics (against references) and throughput, on hand-made outputs."""

from __future__ import annotations

import json
import math

import pytest
from ftharness_plugins.task_metrics import exact_match, normalize_answer, same_value, score_task, token_f1
from ftharness_plugins.throughput_metric import ThroughputMetric, percentile

from ftharness.suites.metric import MetricContext, Sample


def test_squad_normalisation_exact_match_and_f1():
    assert normalize_answer("The  Cat, sat!") == "cat sat"
    assert exact_match("the Eiffel Tower.", "Eiffel tower") == 1.0
    assert exact_match("Eiffel", "Eiffel tower") == 0.0
    # pred tokens {eiffel, tower, paris}, ref {eiffel, tower}: P 2/3, R 1 -> F1 0.8
    assert token_f1("Eiffel Tower Paris", "the Eiffel Tower") == pytest.approx(0.8)
    assert token_f1("", "") == 1.0
    assert token_f1("something", "") == 0.0
    assert token_f1("blue", "red") == 0.0


def test_score_task_text_metrics():
    outputs = ["the cat sat on the mat", "a dog", "Ngọc lives in Hà Nội"]
    refs = ["the cat sat on the mat", "the cat", "Ngọc lives in Hà Nội"]
    r = score_task(outputs, refs)
    assert r.values["exact_match"] == pytest.approx(2 / 3)
    assert r.per_sample["rouge_l"][0] == pytest.approx(1.0)
    assert r.per_sample["rouge_l"][2] == pytest.approx(1.0)  # unicode words are kept, not dropped
    assert r.per_sample["rouge_l"][1] < 1.0
    assert r.values["bleu"] > 50 and r.values["chrf"] > 50  # sacrebleu's 0-100 scale
    assert r.per_sample["bleu"][0] == pytest.approx(100.0)
    assert "field_accuracy" not in r.values
    assert "JSON" in r.details["missing"]["field_accuracy"]


def test_field_accuracy_ranks_the_fields_wrong_most_often():
    ref = {"name": "Ana", "qty": 2, "addr": {"city": "Oslo", "zip": "0150"}, "phone": None}
    outputs = [
        json.dumps(ref),  # all right
        "Here: " + json.dumps({**ref, "qty": 3}),  # JSON inside prose: qty wrong
        json.dumps({**ref, "qty": "2", "addr": {"city": "Oslo", "zip": "9999"}}),  # qty as text, zip wrong
        "not json",  # every field wrong
    ]
    r = score_task(outputs, [json.dumps(ref)] * 4)
    assert r.per_sample["field_accuracy"] == [1.0, 0.8, 0.6, 0.0]
    assert r.per_sample["json_match"] == [1.0, 0.0, 0.0, 0.0]
    assert r.values["field_accuracy"] == pytest.approx((5 + 4 + 3 + 0) / 20)
    worst = r.details["fields"][0]
    assert worst["field"] == "qty" and worst["wrong"] == 3
    assert {f["field"] for f in r.details["fields"]} == {"name", "qty", "addr.city", "addr.zip", "phone"}


def test_same_value_keeps_json_types_apart():
    assert same_value(1, 1.0)
    assert not same_value(True, 1)
    assert not same_value("1", 1)
    assert not same_value(None, "null")
    assert same_value(" Oslo", "oslo", normalize=True)
    assert not same_value(" Oslo", "oslo")


def test_missing_references_are_left_out():
    r = score_task(["a", "b"], [None, "b"])
    assert math.isnan(r.per_sample["exact_match"][0])
    assert r.values["exact_match"] == 1.0
    assert r.details["with_reference"] == 1
    none = score_task(["a"], [None])
    assert none.values == {}
    assert "reference" in none.details["missing"]["token_f1"]


def test_throughput_from_samples():
    samples = [Sample(i, "x", "y", prompt_tokens=10 * (i + 1), new_tokens=5, latency_s=float(i + 1)) for i in range(4)]
    r = ThroughputMetric().compute(MetricContext(samples=samples, wall_s=2.0), {})
    assert r.values["tokens_per_s"] == pytest.approx(20 / 2.0)
    assert r.values["latency_p50_s"] == pytest.approx(2.5)
    assert r.values["latency_p95_s"] == pytest.approx(percentile([1, 2, 3, 4], 95)) == pytest.approx(3.85)
    assert r.values["prompt_tokens_mean"] == pytest.approx(25)
    r2 = ThroughputMetric().compute(MetricContext(samples=samples), {})
    assert r2.values["tokens_per_s"] == pytest.approx(20 / 10.0)  # sequential: sum of latencies


def test_throughput_without_timings_says_so():
    r = ThroughputMetric().compute(MetricContext(samples=[Sample(0, "x", "y")]), {})
    assert r.values == {}
    assert "latency" in r.details["missing"]["latency_p95_s"]
