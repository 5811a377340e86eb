"""`ftharness advise` logic: each rule fires on its scenario and misses on a near miss; the conflicts
between rules; the JSON contract; the bundled scenarios."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ftharness.advisor import Scenario, advise, load_scenario, scenario_from_mapping
from ftharness.advisor import rules as R
from ftharness.advisor.decide import fill_defaults
from ftharness.advisor.planning import Fit
from ftharness.advisor.questionnaire import QUESTIONS, run_questionnaire
from ftharness.errors import BadInput

SCENARIOS = Path(__file__).resolve().parents[1] / "examples" / "scenarios"
KEYS = {"recommendation", "method", "reasons", "assumptions", "next_steps", "plan", "alternatives"}


def facts(size_b: float | None = None, **fields) -> R.Facts:
    s, _ = fill_defaults(Scenario(**fields))
    return R.Facts(s, R.thresholds(), size_b)


EXHAUSTED = {"prompting_exhausted": True}

# rule -> (fields where it fires, fields of a near miss where it must not), plus model size
RULE_CASES = {
    "prompting_meets_target": (
        {"prompting_score": 0.93, "target_score": 0.9},
        {"prompting_score": 0.93, "target_score": 0.9, "problems": ["latency"]},
    ),
    "prompting_first": ({"problems": ["format"]}, {"problems": ["format"], **EXHAUSTED}),
    "task_changes_often": ({"task_changes_often": True}, {"task_changes_often": False}),
    "no_problem_named": ({}, {"problems": ["style"]}),
    "rag_for_changing_facts": ({"knowledge_refresh": "daily"}, {"knowledge_refresh": "yearly"}),
    "rag_for_knowledge": (
        {"problems": ["knowledge"], "knowledge_refresh": "yearly"},
        {"problems": ["format"], "knowledge_refresh": "yearly"},
    ),
    "finetune_for_form": ({"problems": ["style"]}, {"problems": ["knowledge"]}),
    "finetune_for_domain": (
        {"problems": ["domain"], "domain_corpus_tokens": 1_000_000},
        {"problems": ["domain"], "domain_corpus_tokens": 500_000_000},
    ),
    "enough_examples": (
        {"problems": ["format"], "labeled_examples": 500},
        {"problems": ["format"], "labeled_examples": 499},
    ),
    "too_few_examples": (
        {"problems": ["format"], "labeled_examples": 499},
        {"problems": ["format"], "labeled_examples": 500},
    ),
    "dpo_for_preference_pairs": ({"preference_pairs": 500}, {"preference_pairs": 499}),
    "too_few_preference_pairs": (
        {"problems": ["preference"], "preference_pairs": 10},
        {"problems": ["preference"], "preference_pairs": 5000},
    ),
    "safety_gates": ({"problems": ["safety"]}, {"problems": ["behavior"]}),
    "distill_for_cost_latency": ({"problems": ["latency"]}, {"problems": ["format"], "latency_ms": 2000.0}),
    "small_model_on_device": ({"on_device": True}, {"on_device": False}),
    "keep_data_local": ({"data_can_leave": False}, {"data_can_leave": True}),
    "continued_pretraining_for_corpus": (
        {"problems": ["domain"], "domain_corpus_tokens": 2_000_000_000},
        {"problems": ["domain"], "domain_corpus_tokens": 20_000_000},
    ),
}


def test_every_scenario_rule_has_a_case_and_a_cited_source():
    assert {r.__name__ for r in R.SCENARIO_RULES} == set(RULE_CASES)
    plan_rules = [R.lora_by_default, R.qlora_when_memory_tight, R.does_not_fit, R.full_when_justified, R.over_budget]
    for rule in (*R.SCENARIO_RULES, *plan_rules):
        assert rule.__doc__ and "Source:" in rule.__doc__, rule.__name__


@pytest.mark.parametrize("name", sorted(RULE_CASES))
def test_rule_fires_on_its_scenario_and_not_on_a_near_miss(name):
    rule = getattr(R, name)
    fires, misses = RULE_CASES[name]
    fired = rule(facts(**fires))
    assert fired is not None and fired.rule == name and fired.sentence
    assert rule(facts(**misses)) is None


def test_prompting_below_target_does_not_meet_it():
    assert R.prompting_meets_target(facts(prompting_score=0.85, target_score=0.9)) is None


def test_latency_budget_alone_distills_only_a_large_model():
    assert R.distill_for_cost_latency(facts(size_b=8.0, latency_ms=100.0)) is not None
    assert R.distill_for_cost_latency(facts(size_b=1.2, latency_ms=100.0)) is None
    assert R.distill_for_cost_latency(facts(size_b=8.0, latency_ms=5000.0)) is None


def test_on_device_distills_a_large_model_and_constrains_a_small_one():
    assert R.small_model_on_device(facts(size_b=8.0, on_device=True)).vote == "distill"
    assert R.small_model_on_device(facts(size_b=1.2, on_device=True)).vote == "constraint"


def _fit(method="lora", fits=True, peak=10.0, vram=24.0, cost=5.0, gpus=1):
    return Fit(method, "m", None, peak, peak + 1, "a10g", gpus, vram, fits, 1.0, cost, {})


def test_plan_rules_on_synthetic_fits():
    x = facts(problems=["domain"], labeled_examples=200_000, budget_usd=100.0)
    assert R.lora_by_default(x, _fit()) is not None
    assert R.lora_by_default(x, None) is not None  # no model: LoRA is still the default
    assert R.lora_by_default(x, _fit(fits=False)) is None
    tight = R.qlora_when_memory_tight(x, _fit(fits=False, peak=30.0), _fit("qlora", peak=12.0))
    assert tight is not None and "31.0 GB" in tight.sentence and "fits" in tight.sentence
    assert R.qlora_when_memory_tight(x, _fit(), None) is None
    assert R.does_not_fit(x, _fit("qlora", fits=False, peak=40.0)) is not None
    assert R.does_not_fit(x, _fit("qlora")) is None
    assert R.full_when_justified(x, _fit("full", cost=90.0)) is not None
    assert R.full_when_justified(x, _fit("full", cost=150.0)) is None  # over the budget
    assert R.full_when_justified(x, _fit("full", fits=False)) is None
    assert R.full_when_justified(facts(problems=["format"], labeled_examples=200_000), _fit("full")) is None
    assert R.full_when_justified(facts(problems=["domain"], labeled_examples=5_000), _fit("full")) is None
    assert R.over_budget(x, _fit(cost=150.0)) is not None
    assert R.over_budget(x, _fit(cost=50.0)) is None


# --- conflicts between rules, through advise() ---------------------------------------------------


def rules_of(advice) -> set[str]:
    return {r.rule for r in advice.reasons}


def test_format_plus_daily_facts_is_rag_plus_finetune():
    a = advise(Scenario(problems=["format"], knowledge_refresh="daily", labeled_examples=2000, **EXHAUSTED))
    assert a.recommendation == "rag+finetune" and a.method == "lora"
    assert {"rag_for_changing_facts", "finetune_for_form", "enough_examples"} <= rules_of(a)
    assert any("RAFT" in s for s in a.next_steps)


def test_preference_pairs_with_few_labeled_examples_is_dpo_not_collect_data():
    a = advise(Scenario(problems=["preference", "style"], preference_pairs=3000, labeled_examples=50, **EXHAUSTED))
    assert a.recommendation == "finetune" and a.method == "dpo"
    assert "dpo_for_preference_pairs" in rules_of(a) and "too_few_examples" not in rules_of(a)
    assert any("SFT" in s for s in a.next_steps)


def test_task_that_changes_often_keeps_format_in_the_prompt():
    a = advise(Scenario(problems=["format"], task_changes_often=True, labeled_examples=5000, **EXHAUSTED))
    assert a.recommendation == "prompt" and a.method is None and a.plan is None
    assert "task_changes_often" in rules_of(a)
    finetune = next(x for x in a.alternatives if x.option == "finetune")
    assert "changes often" in finetune.why_not


def test_too_few_examples_with_format_is_collect_data_with_alternatives():
    a = advise(Scenario(problems=["format"], labeled_examples=120, **EXHAUSTED))
    assert a.recommendation == "collect-data" and a.method is None
    options = {x.option: x.why_not for x in a.alternatives}
    assert "120" in options["finetune"] and "prompt" in options
    assert any("380 more" in s for s in a.next_steps)


def test_prompting_not_exhausted_beats_a_form_problem():
    a = advise(Scenario(problems=["format"], labeled_examples=5000))
    assert a.recommendation == "prompt"
    assert "prompting_exhausted unknown: assumed false (prompting not yet tried systematically)" in a.assumptions
    assert "Not yet" in next(x for x in a.alternatives if x.option == "finetune").why_not


def test_target_already_met_means_prompt():
    a = advise(Scenario(problems=["format"], labeled_examples=5000, prompting_score=0.99, target_score=0.98,
                        **EXHAUSTED))
    assert a.recommendation == "prompt" and "prompting_meets_target" in rules_of(a)


def test_changing_facts_without_prompting_exhausted_is_rag():
    assert advise(Scenario(problems=["knowledge"], knowledge_refresh="realtime")).recommendation == "rag"


def test_distillation_needs_no_labeled_examples():
    a = advise(Scenario(problems=["cost", "format"], labeled_examples=10, **EXHAUSTED))
    assert a.recommendation == "distill"


def test_large_corpus_is_continued_pretraining_and_small_corpus_is_not():
    big = advise(Scenario(problems=["domain"], domain_corpus_tokens=500_000_000, **EXHAUSTED))
    assert big.recommendation == "continued-pretraining"
    small = advise(Scenario(problems=["domain"], domain_corpus_tokens=5_000_000, labeled_examples=900,
                            **EXHAUSTED))
    assert small.recommendation == "finetune" and "finetune_for_domain" in rules_of(small)


def test_safety_without_pairs_collects_pairs_and_with_pairs_trains_dpo_behind_a_gate():
    few = advise(Scenario(problems=["safety"], **EXHAUSTED))
    assert few.recommendation == "collect-data" and "too_few_preference_pairs" in rules_of(few)
    many = advise(Scenario(problems=["safety"], preference_pairs=2000, **EXHAUSTED))
    assert many.method == "dpo" and "safety_gates" in rules_of(many)
    assert any("toxicity" in s for s in many.next_steps)


def test_enough_demonstrations_train_now_and_missing_pairs_are_collected_for_later():
    a = advise(Scenario(problems=["format", "preference"], labeled_examples=3000, **EXHAUSTED))
    assert a.recommendation == "finetune" and a.method == "lora"
    assert any("later DPO stage" in s for s in a.next_steps)


def test_missing_fields_are_stated_assumptions():
    a = advise(Scenario(problems=["format"], **EXHAUSTED))
    assert "labeled_examples unknown: assumed 0" in a.assumptions
    assert a.recommendation == "collect-data"
    assert not any(x.startswith("problems unknown") for x in a.assumptions)
    empty = advise(Scenario())
    assert empty.recommendation == "prompt" and "problems unknown: assumed none named" in empty.assumptions


def test_json_contract_keys_and_types():
    d = advise(Scenario(problems=["format"], labeled_examples=900, **EXHAUSTED)).to_dict()
    assert set(d) == KEYS
    assert all(set(r) == {"rule", "sentence"} for r in d["reasons"])
    assert all(set(a) == {"option", "why_not"} for a in d["alternatives"])
    assert all(isinstance(s, str) for s in d["assumptions"] + d["next_steps"])
    assert d["recommendation"] in {"prompt", "rag", "finetune", "rag+finetune", "distill",
                                   "continued-pretraining", "collect-data"}


# --- with the planner ------------------------------------------------------------------------------


def test_plan_is_the_planners_for_the_recommended_method():
    from ftharness.planner import PlanRequest, estimate

    s = Scenario(problems=["format"], labeled_examples=1200, model="qwen2.5-1.5b", gpu="l4", **EXHAUSTED)
    a = advise(s)
    assert a.method == "lora" and a.plan is not None
    expected = estimate(PlanRequest(model="qwen2.5-1.5b", method="lora", gpu="l4", processes=1, examples=1200,
                                    epochs=R.thresholds().epochs.sft, gradient_checkpointing=True)).to_dict()
    assert a.plan == expected
    assert any(s.startswith("Check memory and cost: `ftharness plan --model qwen2.5-1.5b --method lora")
               for s in a.next_steps)


def test_qlora_when_lora_does_not_fit_and_say_so_when_nothing_fits():
    tight = advise(Scenario(problems=["style"], labeled_examples=5000, model="llama-3-8b", gpu="rtx-4090", **EXHAUSTED))
    assert tight.method == "qlora" and "qlora_when_memory_tight" in rules_of(tight)
    assert tight.fit.fits is True
    hopeless = advise(Scenario(problems=["style"], labeled_examples=5000, model="llama-3-70b", gpu="t4",
                               **EXHAUSTED))
    assert hopeless.method == "qlora" and "does_not_fit" in rules_of(hopeless)


def test_over_budget_is_reported():
    a = advise(Scenario(problems=["style"], labeled_examples=50_000, model="llama-3-8b", gpu="a100-80gb",
                        budget_usd=0.01, **EXHAUSTED))
    assert "over_budget" in rules_of(a)


def test_model_params_b_plans_on_the_closest_preset():
    a = advise(Scenario(problems=["format"], labeled_examples=900, model_params_b=7.0, gpu="a100-80gb",
                        **EXHAUSTED))
    assert a.plan is not None
    assert any("closest to model_params_b 7" in x for x in a.assumptions)


def test_data_that_cannot_leave_plans_a_small_local_model():
    a = advise(Scenario(problems=["format"], labeled_examples=900, data_can_leave=False, **EXHAUSTED))
    assert a.plan is not None and "keep_data_local" in rules_of(a)
    assert any("small open-weights model" in x for x in a.assumptions)


def test_on_device_with_a_large_model_distills_into_a_small_student():
    a = advise(Scenario(problems=["format"], labeled_examples=900, on_device=True, model="llama-3-8b",
                        **EXHAUSTED))
    assert a.recommendation == "distill"
    assert a.plan_model is not None and a.plan_model != "llama-3-8b"


EXPECTED = {
    "json-extraction-support-tickets": ("finetune", "lora"),
    "fresh-product-facts": ("rag", None),
    "hybrid-format-daily-facts": ("rag+finetune", "lora"),
    "distill-for-latency": ("distill", None),
    "domain-corpus": ("continued-pretraining", None),
    "preference-pairs": ("finetune", "dpo"),
    "too-few-examples": ("collect-data", None),
    "tiny-gpu": ("finetune", "qlora"),
    "big-data-big-shift": ("finetune", "full"),
}


def test_every_bundled_scenario_is_covered():
    assert {p.stem for p in SCENARIOS.glob("*.yaml")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bundled_scenario_gives_a_sensible_recommendation(name):
    rec, method = EXPECTED[name]
    a = advise(load_scenario(SCENARIOS / f"{name}.yaml"))
    assert a.recommendation == rec
    if method is not None:
        assert a.method == method
    if rec in ("finetune", "rag+finetune", "distill", "continued-pretraining"):
        assert a.plan is not None and a.method is not None
    assert a.reasons and a.next_steps and a.alternatives


# --- scenario loading and the questionnaire ----------------------------------------------------------


def test_scenario_mapping_checks_names_types_and_ranges(tmp_path):
    with pytest.raises(BadInput, match="problems"):
        scenario_from_mapping({"problems": ["speed"]})
    with pytest.raises(BadInput, match="prompting_score"):
        scenario_from_mapping({"prompting_score": 1.5})
    with pytest.raises(BadInput, match="gpu"):
        scenario_from_mapping({"gpu": "tpu-v9"})
    cfg = tmp_path / "config.json"
    cfg.write_text('{"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, '
                   '"num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 1000, '
                   '"max_position_embeddings": 128}')
    f = tmp_path / "s.yaml"
    f.write_text("model: config.json\nproblems: [format, format]\n")
    s = load_scenario(f)
    assert Path(s.model) == cfg and s.problems == ["format"]


def test_questionnaire_reasks_bad_answers_and_skips_blanks():
    answers = {
        "problems": ["format, knowledge"],
        "prompting_exhausted": ["maybe", "y"],
        "labeled_examples": ["-3", "1,200"],
        "knowledge_refresh": ["Daily"],
        "model": ["qwen2.5-1.5b"],
        "gpu": ["nope", "l4"],
        "gpu_count": ["1"],
    }
    asked, said = [], []
    fields = {q: name for name, q in QUESTIONS}

    def ask(question: str) -> str:
        name = fields[question]
        asked.append(name)
        queue = answers.get(name)
        return queue.pop(0) if queue else ""

    got = run_questionnaire(ask, said.append)
    assert got == {"problems": ["format", "knowledge"], "prompting_exhausted": True, "labeled_examples": 1200,
                   "knowledge_refresh": "daily", "model": "qwen2.5-1.5b", "gpu": "l4", "gpu_count": 1}
    assert "model_params_b" not in asked  # a model was named
    assert len(said) == 3 and any("must be >= 0" in m for m in said)
    assert advise(scenario_from_mapping(got)).recommendation == "rag+finetune"


def test_questionnaire_gives_up_after_three_bad_answers():
    with pytest.raises(BadInput, match="y or n"):
        run_questionnaire(lambda q: "maybe" if "(y/n)" in q else "", lambda m: None)


def test_questionnaire_end_of_input_is_bad_input():
    def eof(question: str) -> str:
        raise EOFError

    with pytest.raises(BadInput, match="ended early"):
        run_questionnaire(eof, lambda m: None)


def test_scenario_fields_match_the_contract():
    assert [f.name for f in dataclasses.fields(Scenario)] == [
        "problems", "prompting_exhausted", "prompting_score", "target_score", "labeled_examples",
        "preference_pairs", "domain_corpus_tokens", "knowledge_refresh", "task_changes_often", "on_device",
        "latency_ms", "data_can_leave", "model", "model_params_b", "gpu", "gpu_count", "budget_usd",
        "requests_per_month",
    ]
    assert [q[0] for q in QUESTIONS] == [f.name for f in dataclasses.fields(Scenario)]
