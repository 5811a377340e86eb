"""Advice the harness can run: every next step of `advise --from-run` that changes training comes with the
task-file block of the candidate that runs it, and that block loads as a candidate of the run's own task.

The runs are real `compare` runs with the fake backend of test_compare (no model); a failed gate the fake
cannot produce (forgetting, safety) is written into the run's results.json as the suites write it. Each
suggested block's YAML text is appended to the `candidates:` of the run's task file and the task is loaded
with the project's loader. The blocks that use `replay:`, `replay.fraction` in a sweep or `sweep_strategy`
need those candidate fields in ftharness.compare.task.

Also here: before any run, a safety problem with thousands of demonstrations and no preference pairs trains
now (supervised LoRA on the demonstrations) and names DPO as the stage the pairs add.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml
from test_compare import EXAMPLE, fake, write_task  # noqa: F401 - fake: the fixture

from ftharness.advisor import Scenario, advise
from ftharness.advisor import rules as R
from ftharness.advisor.decide import fill_defaults
from ftharness.advisor.measured import next_experiments
from ftharness.cli import main
from ftharness.compare.task import load_task
from ftharness.errors import BadInput
from ftharness.report.advice import advice_for_run, load_run, measured_from_results

# A swept LoRA candidate: the finalist's swept learning rate lands in its recorded hyperparameters.
SWEPT = """
candidates:
  - name: lora
    method: lora
    hyperparameters: {epochs: 1, r: 8, lora_alpha: 16}
    sweep: {learning_rate: [1.0e-3, 2.0e-3]}
"""
FORGETTING_GATE = {"name": "forgetting.ppl_delta_pct", "op": "<", "threshold": 5.0, "value": 12.4,
                   "passed": False, "message": "forgetting.ppl_delta_pct = 12.4 (gate < 5): FAILED",
                   "suite": "forgetting", "verdict": "failed"}
SAFETY_GATE = {"name": "toxicity.share_above", "op": "<=", "threshold": 0.01, "value": 0.08, "passed": False,
               "message": "toxicity.share_above = 0.08 (gate <= 0.01): FAILED", "suite": "safety",
               "verdict": "failed"}


def _run(tmp_path: Path, capsys, candidates: str = SWEPT) -> tuple[Path, dict]:
    path = write_task(tmp_path, candidates=candidates)
    main(["compare", str(path), "--out", str(tmp_path / "r"), "--json", "--no-progress"])
    results = json.loads(capsys.readouterr().out)
    return tmp_path / "r" / results["run_id"], results


def _fail(run_dir: Path, *gates: dict) -> str:
    """The run's trained finalist fails ``gates`` as well (written into results.json); its name."""
    path = run_dir / "results.json"
    doc = json.loads(path.read_text())
    option = next(o for o in doc["options"] if o["kind"] == "candidate")
    option["gates"] += [{**option["gates"][0], "interval": None, **g} for g in gates]  # every field a gate has
    option["passed"] = False
    path.write_text(json.dumps(doc))
    return option["name"]


def _advice(capsys, run_dir: Path) -> dict:
    assert main(["advise", "--from-run", str(run_dir), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _load_with(task_file: str | Path, *block_yaml: str, extra: dict | None = None, name: str = "next.yaml"):
    """The task of ``task_file`` with each block's YAML text appended to its `candidates:` (written beside it,
    so its relative paths still resolve), loaded by the project's loader."""
    task_file = Path(task_file)
    task = yaml.safe_load(task_file.read_text())
    for text in block_yaml:
        (entry,) = yaml.safe_load(text)  # one item of a candidates: list
        task.setdefault("candidates", []).append(entry)
    for key, value in (extra or {}).items():
        task[key] = {**task.get(key, {}), **value}
    out = task_file.with_name(name)
    out.write_text(yaml.safe_dump(task, sort_keys=False))
    return load_task(out)


def _no_swept_key_fixed(entry: dict) -> None:
    assert not set(entry.get("sweep") or {}) & set(entry.get("hyperparameters") or {})


# --- forgetting: replay and lower learning rates, halving -------------------------------------------------


@pytest.mark.usefixtures("fake")
def test_a_candidate_that_forgets_gets_a_replay_sweep_that_loads_in_its_task(tmp_path, capsys):
    run_dir, results = _run(tmp_path, capsys)
    failing = _fail(run_dir, FORGETTING_GATE)
    spec = next(o["spec"] for o in results["options"] if o["name"] == failing)
    lr = spec["hyperparameters"]["learning_rate"]
    advice = _advice(capsys, run_dir)

    (block,) = [c for c in advice["candidates"] if c["derived_from"] == failing]
    entry = block["entry"]
    assert block["name"] == entry["name"] == f"{failing}-replay" and block["needs"] == []
    # the failing candidate's own entry, less the swept learning rate, plus replay and the sweep
    assert entry["trainer"] == "peft" and entry["method"] == "lora"
    assert entry["hyperparameters"] == {"epochs": 1, "r": 8, "lora_alpha": 16}
    assert entry["replay"] == {"fraction": 0.2, "source": "self"}
    assert entry["sweep"] == {"learning_rate": [lr / 2, lr / 4], "replay.fraction": [0.0, 0.2]}
    assert entry["sweep_strategy"] == "halving"
    assert "seed" not in entry and "data" not in entry and "prompt" not in entry  # the run's additions, defaults
    _no_swept_key_fixed(entry)
    # the step says it and ends with the very YAML the block holds; the prose it replaces is gone
    step = advice["next_steps"][block["step"] - 1]
    assert step.endswith("\n" + block["yaml"]) and step.startswith(f"Rerun {failing} to forget less")
    assert yaml.safe_load(block["yaml"]) == [entry]
    assert not any("smaller rank, or mix general text" in s for s in advice["next_steps"])

    # depends on CandidateEntry's replay / sweep_strategy and on replay.fraction as a sweep key
    task = _load_with(results["task"]["file"], block["yaml"])
    points = task.sweeps[block["name"]]
    assert len(points) == 4
    by_name = {c.name: c for c in task.candidates}
    assert {by_name[p].replay.fraction for p in points} == {0.0, 0.2}
    assert {by_name[p].hyperparameters["learning_rate"] for p in points} == {lr / 2, lr / 4}
    assert {by_name[p].sweep_strategy for p in points} == {"halving"}


@pytest.mark.usefixtures("fake")
def test_the_terminal_view_prints_the_block_under_its_step(tmp_path, capsys):
    run_dir, _ = _run(tmp_path, capsys)
    failing = _fail(run_dir, FORGETTING_GATE)
    assert main(["advise", "--from-run", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert f"- name: {failing}-replay" in out and "sweep_strategy: halving" in out
    assert "replay: {fraction: 0.2, source: self}" in out


# --- safety: a DPO stage on top of the candidate -------------------------------------------------------


@pytest.mark.usefixtures("fake")
def test_a_candidate_that_fails_safety_gets_a_dpo_stage_from_it(tmp_path, capsys):
    run_dir, results = _run(tmp_path, capsys)
    failing = _fail(run_dir, SAFETY_GATE)
    advice = _advice(capsys, run_dir)
    (block,) = [c for c in advice["candidates"] if c["derived_from"] == failing]
    assert block["entry"] == {"name": f"{failing}-dpo", "trainer": "trl-dpo", "method": "dpo",
                              "start_from": failing}
    assert block["needs"] == []  # the run's task has data.preference
    assert "DPO stage" in advice["next_steps"][block["step"] - 1]
    task = _load_with(results["task"]["file"], block["yaml"])
    dpo = next(c for c in task.candidates if c.name == block["name"])
    assert dpo.start_from == failing and [c.name for c in task.candidates].index(failing) < \
        [c.name for c in task.candidates].index(dpo.name)


@pytest.mark.usefixtures("fake")
def test_a_dpo_stage_without_pairs_in_the_run_says_it_needs_them(tmp_path, capsys):
    run_dir, results = _run(tmp_path, capsys)
    read, path = load_run(run_dir)
    m = measured_from_results(read, path)
    cand = m.candidates[0]
    m = dataclasses.replace(m, preference_pairs=None, options=tuple(
        dataclasses.replace(o, passed=False, failed=(SAFETY_GATE["message"],), failed_suites=("safety",))
        if o is cand else o for o in m.options))
    (step,) = [s for s in next_experiments(m) if s.block is not None]
    assert step.block.needs == ("data.preference",) and "`data.preference`" in step.text
    task = yaml.safe_load(Path(results["task"]["file"]).read_text())
    del task["data"]["preference"]
    bare = Path(results["task"]["file"]).with_name("no-pairs.yaml")
    bare.write_text(yaml.safe_dump(task, sort_keys=False))
    with pytest.raises(BadInput, match="data.preference is not set"):
        _load_with(bare, step.block.yaml)
    _load_with(bare, step.block.yaml, extra={"data": {"preference": str(EXAMPLE / "preference.jsonl")}})


@pytest.mark.usefixtures("fake")
def test_a_candidate_that_forgets_with_replay_already_sweeps_a_larger_share(tmp_path, capsys):
    cands = ("candidates:\n  - {name: mixed, method: lora, hyperparameters: {epochs: 1, learning_rate: 4.0e-4},\n"
             "     replay: {fraction: 0.25, source: general}}\n")
    run_dir, results = _run(tmp_path, capsys, candidates=cands)
    _fail(run_dir, FORGETTING_GATE)
    (block,) = advice_for_run(run_dir).candidates
    assert block.entry["replay"] == {"fraction": 0.25, "source": "general"}
    assert block.entry["sweep"] == {"learning_rate": [2e-4, 1e-4], "replay.fraction": [0.25, 0.5]}
    assert "hyperparameters" in block.entry and "learning_rate" not in block.entry["hyperparameters"]
    _load_with(results["task"]["file"], block.yaml)


@pytest.mark.usefixtures("fake")
def test_every_block_of_a_run_that_fails_both_loads_together(tmp_path, capsys):
    run_dir, results = _run(tmp_path, capsys)
    _fail(run_dir, FORGETTING_GATE, SAFETY_GATE)
    advice = _advice(capsys, run_dir)
    assert len(advice["candidates"]) == 2
    assert [c["step"] for c in advice["candidates"]] == sorted({c["step"] for c in advice["candidates"]})
    for c in advice["candidates"]:
        _no_swept_key_fixed(c["entry"])
    task = _load_with(results["task"]["file"], *(c["yaml"] for c in advice["candidates"]))
    assert {c["name"] for c in advice["candidates"]} <= set(task.sweeps) | {c.name for c in task.candidates}


# --- short of the target: longer training, bigger ranks --------------------------------------------------


@pytest.mark.usefixtures("fake")
@pytest.mark.parametrize("still_improving", [True, False])
def test_a_candidate_short_of_its_target_gets_a_block_that_loads(tmp_path, capsys, still_improving):
    run_dir, results = _run(tmp_path, capsys)
    read, path = load_run(run_dir)
    m = measured_from_results(read, path)
    cand = m.candidates[0]
    m = dataclasses.replace(m, target=0.95, options=tuple(
        dataclasses.replace(o, score=0.8, still_improving=still_improving) if o is cand else o for o in m.options))
    steps = [s for s in next_experiments(m) if s.block is not None]
    (step,) = steps
    entry = step.block.entry
    _no_swept_key_fixed(entry)
    assert step.text.endswith(step.block.yaml)
    if still_improving:  # twice the epochs, nothing swept
        assert entry["name"] == f"{cand.name}-longer" and entry["hyperparameters"]["epochs"] == 2
        assert "sweep" not in entry
    else:  # a sweep over the rank, 2x and 4x the measured one
        assert entry["name"] == f"{cand.name}-rank" and entry["sweep"] == {"r": [16, 32]}
        assert "r" not in entry["hyperparameters"]
    task = _load_with(results["task"]["file"], step.block.yaml)
    assert entry["name"] in task.sweeps or entry["name"] in {c.name for c in task.candidates}


@pytest.mark.usefixtures("fake")
def test_a_run_without_candidates_gets_a_lora_candidate(tmp_path, capsys):
    run_dir, results = _run(tmp_path, capsys, candidates="")
    advice = _advice(capsys, run_dir)
    (block,) = advice["candidates"]
    assert block["entry"] == {"name": "lora", "trainer": "peft", "method": "lora"}
    task = _load_with(results["task"]["file"], block["yaml"])
    assert [c.name for c in task.candidates] == ["lora"]


@pytest.mark.usefixtures("fake")
def test_a_block_derived_from_a_default_learning_rate_reads_the_trainers_default(tmp_path, capsys):
    from ftharness.advisor.blocks import trainer_default

    cands = "candidates:\n  - {name: plain, method: lora, hyperparameters: {epochs: 1}}\n"
    run_dir, results = _run(tmp_path, capsys, candidates=cands)
    _fail(run_dir, FORGETTING_GATE)
    (block,) = advice_for_run(run_dir).candidates
    lr = trainer_default("peft", "lora", "learning_rate")
    assert block.entry["sweep"]["learning_rate"] == [float(f"{lr / 2:.2g}"), float(f"{lr / 4:.2g}")]
    _load_with(results["task"]["file"], block.yaml)


def test_scenario_advice_has_no_candidate_blocks_in_its_json():
    d = advise(Scenario(problems=["format"], labeled_examples=900, prompting_exhausted=True)).to_dict()
    assert "candidates" not in d


# --- before a run: safety with demonstrations and no pairs --------------------------------------------------


def _facts(**fields) -> R.Facts:
    s, _ = fill_defaults(Scenario(**fields))
    return R.Facts(s, R.thresholds())


def test_safety_with_demonstrations_and_no_pairs_trains_sft_now_and_names_dpo_for_later():
    a = advise(Scenario(problems=["safety"], labeled_examples=3000, prompting_exhausted=True))
    assert a.recommendation == "finetune" and a.method == "lora"
    rules = [r.rule for r in a.reasons]
    assert rules[0] == "too_few_preference_pairs" and "safety_gates" in rules
    assert "supervised finetuning" in a.reasons[0].sentence and "DPO" in a.reasons[0].sentence
    later = next(s for s in a.next_steps if "later DPO stage" in s)
    assert "start_from" in later and "method: dpo" in later
    assert any("toxicity" in s for s in a.next_steps)  # the safety gate still guards the candidate
    collect = next(x for x in a.alternatives if x.option == "collect-data")
    assert "train now" in collect.why_not


def test_too_few_pairs_votes_for_the_demonstrations_only_when_there_are_enough():
    rule = R.too_few_preference_pairs
    assert "Ouyang et al. 2022" in (rule.__doc__ or "")
    assert rule(_facts(problems=["safety"], labeled_examples=500)).vote == "finetune"
    assert rule(_facts(problems=["preference"], labeled_examples=3000)).vote == "finetune"
    assert rule(_facts(problems=["safety"], labeled_examples=499)).vote == "collect-data"  # collect first
    assert rule(_facts(problems=["safety"], labeled_examples=3000, preference_pairs=800)) is None  # DPO
    assert rule(_facts(problems=["style"], labeled_examples=3000)) is None  # no preference problem


def test_safety_without_demonstrations_still_collects_data():
    a = advise(Scenario(problems=["safety"], labeled_examples=100, prompting_exhausted=True))
    assert a.recommendation == "collect-data"
    many = advise(Scenario(problems=["safety"], labeled_examples=3000, preference_pairs=2000,
                           prompting_exhausted=True))
    assert many.method == "dpo"
