"""The terminal summary of ``ftharness compare`` stays whole at 80 columns (a CI log), and a wide terminal
keeps every column with its full metric name.

Whole means: no line is longer than the console, nothing is cut with an ellipsis ("field accura…"), and
every option's name is printed on one line (never folded as "retrieved-2-constrain" / "ed"). The results
are built from the report's own record types, with option names, metrics, gates and costs as a real run of
a retrieval task writes them.
"""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from ftharness.cli.summary import leaderboard, print_summary, short_name
from ftharness.report.records import (
    Cost,
    DataFile,
    Decision,
    Interval,
    OptionCost,
    OptionRecord,
    PairedComparison,
    Phase,
    RetrievalRecord,
    Selection,
    SweepPoint,
    Training,
)
from ftharness.report.results import CompareResults, Settings, TaskRecord, Timing
from ftharness.suites.gates import GateOutcome

METRIC = "task.field_accuracy"
NAMES = [
    "zero-shot",
    "few-shot-3",
    "retrieved-2-constrained",
    "endpoint-few-shot",
    "lora-bare-lr1e-3",
    "raft-retrieved-2-r16",
]
# every metric a run of the facts task measures: the decision metric, the gated ones, then the others
METRICS = [METRIC, "format.parse_rate", "toxicity.max", "forgetting.ppl_delta_pct", "task.exact_match",
           "format.parse_rate_lenient"]


def gate(name: str, op: str, threshold: float, value: float | None, suite: str) -> GateOutcome:
    passed = value is not None and (value >= threshold if op == ">=" else value <= threshold)
    verdict = "passed" if passed else "failed"
    return GateOutcome(name, op, threshold, value, passed, f"{name} = {value} (gate {op} {threshold}): {verdict}",
                       suite)


def retrieval(k: int) -> RetrievalRecord:
    return RetrievalRecord(retriever="bm25", description="BM25 over word tokens", k=k, settings={"k1": 1.5},
                           knowledge="data/facts/knowledge.jsonl", knowledge_sha256="ab" * 32, documents=40,
                           chunks=160, chunking={"tokens": 128, "overlap": 16}, training_knowledge=None,
                           distractors=None, oracle_fraction=None)


def option(name: str, i: int) -> OptionRecord:
    kind = "candidate" if name.startswith(("lora", "raft")) else "baseline"
    acc = [0.41, 0.63, 0.78, 0.81, 0.74, 0.9][i]
    metrics = {
        METRIC: acc,
        "format.parse_rate": [0.62, 0.9, 1.0, 0.97, 1.0, 1.0][i],
        "toxicity.max": 0.012 * (i + 1),
        "forgetting.ppl_delta_pct": 3.52 if kind == "candidate" else None,
        "task.exact_match": acc - 0.2,
        "format.parse_rate_lenient": 1.0,
    }
    gates = [gate("format.parse_rate", ">=", 0.95, metrics["format.parse_rate"], "format"),
             gate("toxicity.max", "<=", 0.1, metrics["toxicity.max"], "toxicity")]
    if kind == "candidate":
        gates.append(gate("forgetting.ppl_delta_pct", "<=", 10, 3.52, "forgetting"))
    trained = None
    if kind == "candidate":
        trained = Training(wall_s=1234.0, total_wall_s=1234.0, peak_memory_bytes=3_100_000_000, memory_kind="rss",
                           loss_curve=[{"step": 1, "epoch": 0.1, "loss": 2.0}])
    return OptionRecord(
        name=name,
        kind=kind,
        spec={"name": name},
        metrics=metrics,
        per_sample={METRIC: [acc, acc]},
        gates=gates,
        slices={},
        suites={},
        cost=Cost(prompt_tokens_mean=[182, 1204, 2480, 1204, 96, 2210][i], new_tokens_mean=41.0, latency_s_mean=0.9,
                  latency_s_p50=0.8, generation_wall_s=30.0, tokens_per_s=45.0, hit_max_new_tokens=0),
        training=trained,
        plan={"peak_gb": 3.0} if trained else None,
        samples_file=f"samples/{name}.jsonl",
        retrieval=retrieval(2) if "retrieved" in name else None,
    )


def option_cost(o: OptionRecord) -> OptionCost:
    endpoint = o.name.startswith("endpoint")
    return OptionCost(prompt_tokens_mean=o.cost.prompt_tokens_mean, latency_s_mean=0.9,
                      monthly_prompt_usd=o.cost.prompt_tokens_mean * 100_000 * 1.5e-7,
                      requests_per_month=100_000, usd_per_prompt_token=1.5e-7,
                      usd_per_1k_requests=0.2046 if endpoint else None,
                      training_s=o.training.total_wall_s if o.training else 0.0,
                      training_usd=0.034 if o.training else 0.0, price_basis="CPU at $0.10/h" if o.training else "")


def sweep() -> Selection:
    points = [
        SweepPoint(name=f"lora-bare-lr{lr}", hyperparameters={"lr": lr, "r": 8}, metrics={METRIC: acc},
                   validation_loss=loss, stopped_early=False, restored_best_from_step=None, training_wall_s=410.0,
                   global_step=40, outputs=[])
        for lr, acc, loss in (("1e-3", 0.74, 0.412), ("3e-4", 0.7, 0.455))
    ]
    return Selection(chosen="lora-bare-lr1e-3", metric=METRIC, on="validation", n=8, points=points)


def make_results() -> CompareResults:
    opts = [option(name, i) for i, name in enumerate(NAMES)]
    comparison = PairedComparison("raft-retrieved-2-r16", "endpoint-few-shot", METRIC, 24, 0.9, 0.81, 0.09, 0.02,
                                  0.16, 0.95, 0.01, "better")
    return CompareResults(
        run_id="20260101-000000-facts",
        task=TaskRecord(name="facts", file="examples/facts/task.yaml", hash="abc", base_model="Qwen/Qwen2.5-0.5B",
                        instruction="Answer from the documents.", schema_file=None, schema=None, slices=[],
                        gates=["format.parse_rate >= 0.95"], decision_settings={}),
        settings=Settings(base_model="Qwen/Qwen2.5-0.5B", generation={"max_new_tokens": 64}, seed=0,
                          dtype="float32", batch_size=4, prompt_template=None, baselines=[], candidates=[],
                          suites=[], resumed=False, validation={}, constrained_decoding=None),
        environment={"python": "3.11"},
        data={"eval": DataFile(path="eval.jsonl", sha256="ff", n=24)},
        suites=[],
        options=opts,
        selection={"lora-bare": sweep()},
        comparisons=[comparison],
        intervals={"raft-retrieved-2-r16": Interval(metric=METRIC, low=0.82, high=0.96, confidence=0.95)},
        decision=Decision(
            verdict="rag+finetune",
            recommended="raft-retrieved-2-r16",
            recommended_kind="candidate",
            passes_all_gates=True,
            headline="raft-retrieved-2-r16 beats the best prompting option outside the noise; recommend RAFT",
            reasons=["prompt tokens per request: 2210 vs 1204"],
            metric=METRIC,
            best_baseline="endpoint-few-shot",
            comparison=comparison,
            costs={o.name: option_cost(o) for o in opts},
            assumptions=["CPU at $0.10/h"],
        ),
        samples=[],
        timing=Timing(run_wall_s=2900.0, experiment_wall_s=2800.0, events=[], training_s={}, generation_s={},
                      phases=[Phase(phase="train", option=n, wall_s=1234.0, peak_memory_bytes=3_100_000_000,
                                    memory_kind="rss") for n in NAMES[4:]]),
    )


def render(renderable_or_results, width: int) -> list[str]:
    con = Console(width=width, record=True, highlight=False, color_system=None, file=io.StringIO())
    if isinstance(renderable_or_results, CompareResults):
        print_summary(renderable_or_results, "reports/20260101-000000-facts/report.html", console=con)
    else:
        con.print(renderable_or_results)
    return con.export_text().splitlines()


def assert_whole(lines: list[str], width: int) -> None:
    too_long = [line for line in lines if len(line) > width]
    assert not too_long, f"lines over {width} columns: {too_long}"
    cut = [line for line in lines if "…" in line or "..." in line]
    assert not cut, f"cut with an ellipsis: {cut}"


@pytest.mark.parametrize("width", [80, 100])
def test_the_whole_summary_fits(width):
    assert_whole(render(make_results(), width), width)


@pytest.mark.parametrize("width", [60, 80, 100, 120, 160])
def test_leaderboard_is_whole_and_names_each_option_on_one_line(width):
    lines = render(leaderboard(make_results()), width)
    assert_whole(lines, width)
    for name in NAMES:
        # the name as a word of its own on one line: not folded, not run into a neighbouring cell
        assert any(re.search(rf"(^|\s){re.escape(name)}(\s|$)", line) for line in lines), (name, lines)
    assert any("raft-retrieved-2-r16 *" in line for line in lines)  # the recommended one is marked


def test_every_column_is_named_in_full_or_said_to_be_left_out():
    lines = render(leaderboard(make_results()), 80)
    text = "\n".join(lines)
    for metric in METRICS:
        assert metric in text, f"{metric} neither named in the legend nor listed as left out"
    assert "acc = task.field_accuracy (decision metric)" in text
    header = next(line for line in lines if line.startswith("option"))
    assert header.split()[:3] == ["option", "/", "answer"] and "acc" in header.split() and "gates" in header
    assert "Left out at 80 columns:" in text  # six metrics and three costs do not fit in 80


def test_short_names_are_short_and_distinct():
    assert short_name("task.field_accuracy") == "acc"
    assert short_name("retrieval.recall") == "recall"
    assert short_name("retrieval.gold_chunk_recall") == "gcr"  # over 10 characters: its initials
    assert short_name("other.recall", taken={"recall"}) == "recall2"


def test_a_wide_terminal_keeps_every_column_and_the_full_metric_names():
    lines = render(make_results(), 160)
    assert_whole(lines, 160)
    text = "\n".join(lines)
    for metric in METRICS:
        assert metric in text
    assert "left out" not in text.lower()
    row = next(line for line in lines if "lora-bare-lr1e-3" in line and "pass" in line.lower())
    # the decision metric, the gated metrics (parse rate, toxicity, forgetting), the lenient parse rate and
    # exact match, then the prompt tokens, the monthly prompt cost, the cost of 1k requests, training time
    # and gates
    figures = r"0\.74\s+1\.00\s+0\.06\s+3\.52\s+1\.00\s+0\.54\s+96\s+\$1\.44\s+-\s+20\.6 min\s+pass 3/3"
    assert re.search(figures, row), row
    endpoint = next(line for line in lines if "endpoint-few-shot" in line and "FAIL" not in line)
    assert "$0.20" in endpoint  # the serving cost of 1k requests
