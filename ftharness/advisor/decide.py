"""Combining the fired rules into one piece of advice: recommendation, method, plan, next steps.

Precedence, in words: a target already met, a task that changes often, or prompting not yet exhausted
keep the answer in the prompt (with retrieval when facts are missing). Past that: a smaller model
(distill) when cost, latency or the device demand it; continued pretraining for a large domain corpus;
DPO when preference pairs exist; supervised finetuning when there are enough demonstrations (for a
preference or safety problem too: SFT on the demonstrations is the first stage, DPO joins once pairs exist);
otherwise collect data. Retrieval joins finetuning (rag+finetune) when facts matter too: finetune for the form,
retrieve the facts, and train on examples that carry retrieved documents (Zhang et al. 2024, "RAFT: Adapting
Language Model to Domain Specific RAG"; OpenAI, "Optimizing LLMs for accuracy": the two are additive).
The method is LoRA unless the plan says it does not fit (QLoRA) or large data, a domain shift and the
compute justify full. Each rule and its source is in :mod:`ftharness.advisor.rules`.

With a run (``advise --from-run``, :mod:`ftharness.advisor.measured`), the run's measured facts replace the
scenario's assumptions where they answer the same field, and the measured rules outrank the scenario rules:
a candidate that beat prompting outside the noise makes the answer finetune (with its method), prompting that
passes every gate makes it prompt, training that did not help rules finetuning out; an inconclusive run leaves
the scenario rules to decide and sizes the experiment that would settle it. A next step of a run that changes
training names the candidate that runs it as a task-file block (``Advice.candidates``;
:mod:`ftharness.advisor.blocks`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ftharness.advisor import planning
from ftharness.advisor import rules as R
from ftharness.advisor.blocks import CandidateBlock
from ftharness.advisor.measured import Measured, MeasuredFact, next_experiments, run_facts, scenario_facts
from ftharness.advisor.rules import Facts, Fired
from ftharness.advisor.scenario import Scenario

TRAINING = ("finetune", "rag+finetune", "distill", "continued-pretraining")
TASK_HINT = "start TASK.yaml from examples/extraction/task.yaml"

# Missing field -> (value assumed, why), stated in the advice.
DEFAULTS: dict[str, tuple[Any, str]] = {
    "problems": ([], "none named"),
    "prompting_exhausted": (False, "false (prompting not yet tried systematically)"),
    "labeled_examples": (0, "0"),
    "preference_pairs": (0, "0"),
    "domain_corpus_tokens": (0, "0"),
    "knowledge_refresh": ("static", "static"),
    "task_changes_often": (False, "false"),
    "on_device": (False, "false (served from a server)"),
    "data_can_leave": (True, "true (set it to false if the data must stay in-house)"),
    "gpu_count": (1, "1"),
}
UNSET_NOTES: dict[str, str] = {
    "gpu": "gpu unknown: the plan lists every catalogue GPU and the method is chosen without a memory check",
    "budget_usd": "budget_usd unknown: cost is reported, not checked",
}


@dataclass
class Alternative:
    option: str
    why_not: str

    def to_dict(self) -> dict[str, str]:
        return {"option": self.option, "why_not": self.why_not}


@dataclass
class Advice:
    """What `ftharness advise` answers; :meth:`to_dict` is the ``--json`` contract."""

    recommendation: str
    method: str | None
    reasons: list[Fired]
    assumptions: list[str]
    next_steps: list[str]
    plan: dict[str, Any] | None
    alternatives: list[Alternative]
    plan_model: str | None = None  # the model the plan is for (a preset or config path)
    fit: planning.Fit | None = field(default=None, repr=False)
    run: str | None = None  # the run whose measurements the advice read (advise --from-run)
    measured: list[MeasuredFact] = field(default_factory=list)  # what the run measured, with its source
    candidates: list[CandidateBlock] = field(default_factory=list)  # the task-file blocks of the next steps

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` document; ``run``, ``measured`` and ``candidates`` are there when the advice read a
        run, and then ``assumptions`` holds only what the run did not measure. Each of ``candidates`` is the
        task-file block of one next step (``step``: its 1-based position in ``next_steps``, whose text ends
        with the same YAML): ``{name, derived_from, step, needs, entry, yaml}``."""
        out = {
            "recommendation": self.recommendation,
            "method": self.method,
            "reasons": [r.to_dict() for r in self.reasons],
            "assumptions": list(self.assumptions),
            "next_steps": list(self.next_steps),
            "plan": self.plan,
            "alternatives": [a.to_dict() for a in self.alternatives],
        }
        if self.run is not None:
            out["run"] = self.run
            out["measured"] = [f.to_dict() for f in self.measured]
            out["candidates"] = [c.to_dict() for c in self.candidates]
        return out


def fill_defaults(s: Scenario) -> tuple[Scenario, list[str]]:
    """The scenario with every missing field the rules read set to its stated assumption."""
    filled, notes = {}, []
    for name, (value, text) in DEFAULTS.items():
        if getattr(s, name) is None:
            filled[name] = value
            notes.append(f"{name} unknown: assumed {text}")
    return dataclasses.replace(s, **filled), notes


def with_measured(s: Scenario, m: Measured) -> tuple[Scenario, list[MeasuredFact], list[str]]:
    """The scenario with every field the run measured set to the measurement, the facts used, and a note for
    each field the user said that the run measured differently (the run wins)."""
    facts = scenario_facts(m)
    updates: dict[str, Any] = {}
    notes: list[str] = []
    for f in facts:
        said = getattr(s, f.field)
        value = f.value
        if f.field == "problems":  # a measured problem joins the ones the user named
            value = list(dict.fromkeys([*(said or []), *f.value]))
        elif said is not None and said != value:
            notes.append(f"{f.field}: you said {said!r}; run {m.run_id} measured {value!r}, which is used")
        updates[f.field] = value
    return dataclasses.replace(s, **updates), facts, notes


def advise(s: Scenario, measured: Measured | None = None) -> Advice:
    """Decide for one scenario (already validated: see :func:`ftharness.advisor.load_scenario`), and with a
    run's measurements when given (``ftharness.report.advice`` reads them from a results.json)."""
    t = R.thresholds()
    facts: list[MeasuredFact] = []
    notes: list[str] = []
    if measured is not None:
        s, facts, notes = with_measured(s, measured)
    eff, assumptions = fill_defaults(s)
    assumptions = notes + assumptions
    model, size_b = _model_facts(eff, assumptions)
    x = Facts(eff, t, size_b)
    fired = [f for rule in R.SCENARIO_RULES if (f := rule(x)) is not None]
    by_rule = {f.rule: f for f in fired}
    votes = {f.vote for f in fired}

    rec, path = _recommend(eff, by_rule, votes)
    measured_fired: list[Fired] = []
    chosen_method = None
    if measured is not None:
        measured_fired = [f for rule in R.MEASURED_RULES if (f := rule(measured)) is not None]
        rec, path, chosen_method = _measured_recommendation(rec, path, measured_fired, measured, "rag" in votes)

    method, fit, plan_model, method_fired, tried = None, None, None, [], {}
    if rec in TRAINING:
        plan_model = _plan_model(eff, rec, model, size_b, t, assumptions)
        if chosen_method is not None:
            method, fit = chosen_method, _measured_fit(eff, t, plan_model, chosen_method, path)
        else:
            method, fit, method_fired, tried = _choose_method(x, path, plan_model, assumptions)
    if fit is not None:
        assumptions += [f"planner: {w}" for w in fit.plan.get("warnings", [])]
    for name, note in UNSET_NOTES.items():
        if getattr(s, name) is None and rec in TRAINING and plan_model is not None:
            assumptions.append(note)

    deciding = _deciding_votes(rec, path)
    reasons = measured_fired + [f for f in fired if f.vote in deciding] + method_fired
    reasons += [f for f in fired if f.vote == "constraint"]
    steps = _next_steps(eff, rec, path, method, plan_model, fit, by_rule, t, ran=measured is not None)
    candidates: list[CandidateBlock] = []
    if measured is not None:
        experiments = next_experiments(measured)
        candidates = [dataclasses.replace(e.block, step=i) for i, e in enumerate(experiments, 1) if e.block]
        steps = [e.text for e in experiments] + steps
    return Advice(
        recommendation=rec,
        method=method,
        reasons=reasons,
        assumptions=assumptions,
        next_steps=steps,
        plan=fit.plan if fit is not None else None,
        alternatives=_alternatives(eff, rec, method, by_rule, t, tried),
        plan_model=plan_model,
        fit=fit,
        run=measured.run_id if measured is not None else None,
        measured=facts + run_facts(measured, s.requests_per_month) if measured is not None else [],
        candidates=candidates,
    )


def _measured_recommendation(
    rec: str, path: str | None, fired: list[Fired], m: Measured, rag: bool
) -> tuple[str, str | None, str | None]:
    """(recommendation, training path, method) once the run's measurements have spoken; the method is the
    winning candidate's, None when the scenario rules choose it."""
    rules = {f.rule for f in fired}
    # A run that measured retrieval answers whether to retrieve; one that did not leaves it to the scenario.
    rag = rag and not m.measured_retrieval
    if rules & {"measured_candidate_wins", "measured_candidate_wins_with_losses"}:
        assert m.comparison is not None
        cand = m.option(m.comparison.option)
        method = cand.method if cand is not None else None
        answer = "rag+finetune" if rag or (cand is not None and cand.answer == "rag+finetune") else "finetune"
        return answer, ("dpo" if method == "dpo" else "sft"), method
    if "measured_rag_wins" in rules:
        return "rag", None, None
    if "measured_prompting_suffices" in rules:
        return ("rag" if rag else "prompt"), None, None
    if "measured_training_no_gain" in rules and rec in TRAINING:
        return "collect-data", None, None
    return rec, path, None


def _measured_fit(s: Scenario, t: R.Thresholds, model: str | None, method: str, path: str | None
                  ) -> planning.Fit | None:
    """The plan for the method the run measured (None: no model to plan on, or a method the planner does
    not price)."""
    from ftharness.errors import BadInput

    if model is None:
        return None
    try:
        return _fit(s, t, model, method, path)
    except BadInput:
        return None


# --- the recommendation ---------------------------------------------------------------------------


def _recommend(s: Scenario, by_rule: dict[str, Fired], votes: set[str]) -> tuple[str, str | None]:
    """(recommendation, training path: sft | dpo | distill | cpt | None)."""
    rag = "rag" in votes
    if "prompting_meets_target" in by_rule:
        return "prompt", None
    if "task_changes_often" in by_rule or "prompting_first" in by_rule or "no_problem_named" in by_rule:
        return ("rag" if rag else "prompt"), None
    if "distill" in votes:
        return "distill", "distill"
    if "continued-pretraining" in votes:
        return "continued-pretraining", "cpt"
    if "dpo" in votes:
        return ("rag+finetune" if rag else "finetune"), "dpo"
    if "enough_examples" in by_rule or _demonstrations_first(by_rule):
        return ("rag+finetune" if rag else "finetune"), "sft"
    if "collect-data" in votes:
        return "collect-data", None
    return ("rag" if rag else "prompt"), None


def _demonstrations_first(by_rule: dict[str, Fired]) -> bool:
    """Too few preference pairs, but enough demonstrations to train on now (the rule voted finetune)."""
    fired = by_rule.get("too_few_preference_pairs")
    return fired is not None and fired.vote == "finetune"


def _deciding_votes(rec: str, path: str | None) -> set[str]:
    return {
        "prompt": {"prompt", "no-finetune"},
        "rag": {"rag", "prompt", "no-finetune"},
        "finetune": {"finetune", "dpo"},
        "rag+finetune": {"rag", "finetune", "dpo"},
        "distill": {"distill"},
        "continued-pretraining": {"continued-pretraining"},
        "collect-data": {"collect-data", "finetune"},
    }[rec]


# --- model, method, plan ---------------------------------------------------------------------------


def _model_facts(s: Scenario, assumptions: list[str]) -> tuple[str | None, float | None]:
    """(model to plan on, its size in billions) from ``model`` or ``model_params_b``."""
    if s.model is not None:
        size = planning.params_b(s.model)
        if s.model_params_b is not None and abs(size - s.model_params_b) > 0.25 * max(size, 0.1):
            assumptions.append(
                f"model_params_b {s.model_params_b:g} ignored: {s.model} has {size:.2f}B parameters"
            )
        return s.model, size
    if s.model_params_b is not None:
        name, size = planning.closest_preset(s.model_params_b)
        assumptions.append(
            f"model unknown: planned on {name} ({size:.2f}B), the preset closest to model_params_b "
            f"{s.model_params_b:g}"
        )
        return name, s.model_params_b
    return None, None


def _plan_model(
    s: Scenario, rec: str, model: str | None, size_b: float | None, t: R.Thresholds, assumptions: list[str]
) -> str | None:
    cap = t.small_model_max_b
    if rec == "distill" and (model is None or (size_b is not None and size_b > cap)):
        student = _small_preset(t)
        teacher = f"{model} as the teacher" if model else "a larger model that meets the target as the teacher"
        assumptions.append(f"student for distillation: {student} (at most {cap:g}B), with {teacher}")
        return student
    if model is None and (s.on_device or not s.data_can_leave):
        local = _small_preset(t)
        assumptions.append(f"model unknown: planned on {local}, a small open-weights model you can run locally")
        return local
    if model is None:
        assumptions.append("model unknown: no memory or cost plan; pass --model or --model-params-b")
    return model


def _small_preset(t: R.Thresholds) -> str:
    try:
        return planning.check_model(t.small_local_model)
    except Exception:  # the preset table changed: fall back to the largest small preset
        found = planning.largest_preset_up_to(t.small_model_max_b)
        if found is None:
            raise
        return found[0]


def _choose_method(
    x: Facts, path: str | None, model: str | None, assumptions: list[str]
) -> tuple[str, planning.Fit | None, list[Fired], dict[str, planning.Fit]]:
    """The method, its plan, the plan rules that decided it, and every plan computed on the way."""
    s, t = x.s, x.t
    tried: dict[str, planning.Fit] = {}
    if path == "dpo":
        if model is None:
            return "dpo", None, [], tried
        chosen = tried["lora"] = _fit(s, t, model, "dpo", path)
        fired = []
        if chosen.fits is False:  # DPO on 4-bit QLoRA adapters instead of LoRA ones
            qlora = tried["qlora"] = _fit(s, t, model, "dpo", path, dpo_base="qlora")
            if f := R.qlora_when_memory_tight(x, chosen, qlora):
                fired.append(f)
                assumptions.append("DPO trains QLoRA adapters on a 4-bit base (planner: --dpo-base qlora)")
                chosen = qlora
        fired += [f for f in (R.does_not_fit(x, chosen), R.over_budget(x, chosen)) if f]
        return "dpo", chosen, fired, tried
    if model is None:
        return "lora", None, [f for f in [R.lora_by_default(x, None)] if f], tried
    fired: list[Fired] = []
    if _big_data(s, t) and "domain" in (s.problems or []) and s.gpu is not None:
        full = tried["full"] = _fit(s, t, model, "full", path)
        if f := R.full_when_justified(x, full):
            return "full", full, [f] + [b for b in [R.over_budget(x, full)] if b], tried
    lora = tried["lora"] = _fit(s, t, model, "lora", path)
    qlora = None
    if lora.fits is False:
        qlora = tried["qlora"] = _fit(s, t, model, "qlora", path)
    if f := R.qlora_when_memory_tight(x, lora, qlora):
        fired.append(f)
        method, chosen = "qlora", qlora
    else:
        fired += [f for f in [R.lora_by_default(x, lora)] if f]
        method, chosen = "lora", lora
    fired += [f for f in (R.does_not_fit(x, chosen), R.over_budget(x, chosen)) if f]
    return method, chosen, fired, tried


def _big_data(s: Scenario, t: R.Thresholds) -> bool:
    return s.labeled_examples >= t.full_min_examples or s.domain_corpus_tokens >= t.full_min_tokens


def _fit(
    s: Scenario, t: R.Thresholds, model: str, method: str, path: str | None, *, dpo_base: str = "lora"
) -> planning.Fit:
    n, e, tokens = _amount(s, t, path)
    return planning.fit(
        model, method, gpu=s.gpu, gpus=s.gpu_count, examples=n, epochs=e, train_tokens=tokens,
        gradient_checkpointing=t.plan_settings.gradient_checkpointing, dpo_base=dpo_base,
    )


def _amount(s: Scenario, t: R.Thresholds, path: str | None) -> tuple[int | None, float, int | None]:
    """(examples, epochs, train_tokens) the plan is for."""
    epochs = t.epochs
    if path == "cpt":
        return None, epochs.continued_pretraining, s.domain_corpus_tokens
    if path == "dpo":
        return s.preference_pairs, epochs.dpo, None
    if path == "distill":
        return max(s.labeled_examples, t.min_labeled_examples), epochs.distill, None
    return (s.labeled_examples or None), epochs.sft, None


# --- next steps -------------------------------------------------------------------------------------


def _gates(s: Scenario, t: R.Thresholds, training: bool) -> list[str]:
    """``suite (gate)`` items for the comparison: format when format is a problem, safety and forgetting
    whenever a model is trained (finetuning can erode both: Qi et al. 2023; Biderman et al. 2024)."""
    suites = []
    if "format" in (s.problems or []):
        suites.append("format")
    if training or "safety" in (s.problems or []):
        suites.append("safety")
    if training:
        suites.append("forgetting")
    gates = [f"{name} ({getattr(t.gates, name)})" for name in suites]
    if s.target_score is not None:
        gates.append(f"task (score >= {s.target_score:g})")
    return gates


def _next_steps(
    s: Scenario,
    rec: str,
    path: str | None,
    method: str | None,
    model: str | None,
    fit: planning.Fit | None,
    by_rule: dict[str, Fired],
    t: R.Thresholds,
    *,
    ran: bool = False,
) -> list[str]:
    """What to do next; ``ran``: a comparison already measured this (advise --from-run), so the steps that
    would run one are left to the run's own next experiments."""
    training = rec in TRAINING
    gates = _gates(s, t, training)
    gate_text = f"; suites: {', '.join(gates)}" if gates else ""
    task = "TASK.yaml"
    steps: list[str] = []
    if rec in ("prompt", "rag"):
        if rec == "rag" and ran:
            steps.append(f"Keep the knowledge base refreshed {s.knowledge_refresh} or faster, and rerun the "
                         "comparison when it changes.")
        elif rec == "rag":
            steps.append(
                f"Index the fact source for retrieval, refreshed {s.knowledge_refresh} or faster, and measure "
                f"it: `data.knowledge` and a `kind: rag` baseline in `ftharness compare {task}` "
                "(examples/facts/task.yaml), with questions whose answers changed after the model was trained."
            )
        if not ran:
            steps.append(f"Measure prompting: `ftharness compare {task}` ({TASK_HINT}) with the zero-shot, "
                         f"few-shot and retrieved few-shot baselines{gate_text}.")
        if "distill_for_cost_latency" in by_rule or "small_model_on_device" in by_rule:
            steps.append("Try a smaller model with few-shot prompting first: cost and latency often improve "
                         "most by choosing another model.")
        if "task_changes_often" in by_rule:
            steps.append("Keep the task definition in a versioned prompt and rerun the comparison when it changes.")
        elif "prompting_meets_target" not in by_rule and not s.prompting_exhausted:
            steps.append("When prompting plateaus below the target, rerun `ftharness advise` with "
                         "--prompting-exhausted --prompting-score S --target-score T.")
        return steps
    if rec == "collect-data":
        need = max(t.min_labeled_examples - s.labeled_examples, 0)
        if "too_few_examples" in by_rule:
            steps.append(
                f"Collect or synthesise about {need} more labeled examples (to {t.min_labeled_examples}): "
                "label real inputs, or let a stronger model draft answers that people review."
            )
        if "too_few_preference_pairs" in by_rule:
            need_p = max(t.min_preference_pairs - s.preference_pairs, 0)
            steps.append(f"Collect about {need_p} more chosen/rejected preference pairs.")
        steps.append("Check what you collect with `ftharness data inspect FILE.jsonl` (format, lengths, "
                     "near-duplicates).")
        if not ran and s.labeled_examples >= t.pilot_labeled_examples:
            steps.append(f"Meanwhile compare prompting with a pilot: `ftharness compare {task}` ({TASK_HINT}) "
                         f"with the few-shot baselines and a LoRA candidate on the {s.labeled_examples} examples"
                         f"{gate_text}; a pilot shows the direction of the gain, not its size.")
        elif not ran:
            steps.append(f"Meanwhile keep prompting: `ftharness compare {task}` ({TASK_HINT}) with the few-shot "
                         f"baselines{gate_text}.")
        steps.append("Rerun `ftharness advise` with the new --labeled-examples / --preference-pairs counts.")
        return steps

    if path == "cpt":
        steps.append("Count the corpus with the model's tokenizer first: `ftharness data inspect CORPUS "
                     "--model MODEL` (a .txt file, a folder of them or JSONL with `text`: documents, tokens, "
                     "duplicates).")
    else:
        data = "PAIRS.jsonl" if path == "dpo" else "TRAIN.jsonl"
        steps.append(f"Inspect the data first: `ftharness data inspect {data} EVAL.jsonl` (format, lengths, "
                     "near-duplicates, train/eval leakage).")
    if rec == "distill":
        teacher = "a local teacher" if not s.data_can_leave else "the teacher"
        steps.append(f"Have {teacher} answer real inputs (at least {t.min_labeled_examples}) and keep its "
                     "rationales as extra targets (distilling step-by-step).")
    if rec == "rag+finetune" and not ran:
        steps.append("Build the retrieval index, and train on examples that include retrieved context with "
                     "distractor documents (RAFT) so the model learns to use what retrieval returns: "
                     "`data.knowledge`, a `kind: rag` baseline and a candidate with `retrieval: {k: 2, "
                     "distractors: 1}` in the task file (examples/facts/task.yaml).")
    if path == "dpo" and s.labeled_examples < t.min_labeled_examples:
        steps.append("Start DPO from an SFT model: first finetune on the chosen responses of the pairs.")
    if model is not None and method is not None:
        steps.append(f"Check memory and cost: `{_plan_command(s, t, model, fit, method, path)}`.")
    candidate = _candidate(method or "lora")
    if rec == "continued-pretraining":
        from ftharness.planner import CONTINUED_PRETRAINING, CORPUS_ADAPTERS

        steps.append("Then finetune the adapted model on labeled task examples (rerun `ftharness advise` with "
                     "--labeled-examples N).")
        if method in CORPUS_ADAPTERS:
            candidate = (f"{_candidate(CONTINUED_PRETRAINING)} with `adapter: {method}` on `data.corpus`, and a "
                         "LoRA candidate with `start_from` on it")
    if not ran:
        steps.append(f"Run `ftharness compare {task}` ({TASK_HINT}) with the zero-shot and few-shot baselines "
                     f"and {candidate} on the same held-out split{gate_text}.")
    if fit is not None and fit.fits is False:
        steps.append("The plan does not fit the named GPU: pick one marked fits in `ftharness plan`.")
    if "too_few_preference_pairs" in by_rule:
        need_p = max(t.min_preference_pairs - s.preference_pairs, 0)
        steps.append(f"For the {'/'.join(p for p in ('preference', 'safety') if p in (s.problems or []))} "
                     f"problem, collect about {need_p} more chosen/rejected pairs for a later DPO stage: "
                     f"{_candidate('dpo')} with `start_from:` the SFT candidate and the pairs in `data.preference` "
                     "learns which of two answers to prefer (and, for safety, to refuse), which demonstrations "
                     "alone do not teach (Rafailov et al. 2023; Ouyang et al. 2022).")
    return steps


def _candidate(method: str) -> str:
    """A candidate of ``method`` as a task file writes it, with the installed trainer that trains it."""
    from ftharness.plugins import get_plugins

    trainer = get_plugins().trainer_for(method)
    if trainer is None:
        return f"a {method} candidate (no installed trainer trains {method}; see `ftharness plugins`)"
    return f"a `{{trainer: {trainer}, method: {method}}}` candidate"


def _title(method: str) -> str:
    """How people write ``method`` (LoRA), as its trainers declare it."""
    from ftharness.plugins import get_plugins

    declared = get_plugins().methods().get(method, {})
    return next((d.title for d in declared.values() if d.title), method)


def _plan_command(s: Scenario, t: R.Thresholds, model: str, fit: planning.Fit | None, method: str,
                  path: str | None) -> str:
    from ftharness.planner import CONTINUED_PRETRAINING, CORPUS_ADAPTERS

    n, e, tokens = _amount(s, t, path)
    if path == "cpt" and method in CORPUS_ADAPTERS:  # the method continued pretraining trains through
        parts = ["ftharness plan", f"--model {model}", f"--method {CONTINUED_PRETRAINING}", f"--adapter {method}"]
        tokens, n = None, None
        corpus = [f"--corpus-tokens {s.domain_corpus_tokens}", f"--epochs {e:g}"]
    else:
        parts, corpus = ["ftharness plan", f"--model {model}", f"--method {method}"], []
    if fit is not None and fit.base not in (None, "lora"):
        parts.append(f"--dpo-base {fit.base}")
    if s.gpu:
        parts.append(f"--gpu {s.gpu}")
    if s.gpu_count and s.gpu_count > 1:
        parts += [f"--processes {s.gpu_count}", f"--strategy {planning.strategy_for(s.gpu_count)}"]
    if t.plan_settings.gradient_checkpointing:
        parts.append("--gradient-checkpointing")
    parts += corpus
    if tokens is not None:
        parts.append(f"--train-tokens {tokens}")
    elif n is not None:
        parts += [f"--examples {n}", f"--epochs {e:g}"]
    return " ".join(parts)


# --- alternatives ------------------------------------------------------------------------------------


def _alternatives(
    s: Scenario,
    rec: str,
    method: str | None,
    by_rule: dict[str, Fired],
    t: R.Thresholds,
    tried: dict[str, planning.Fit],
) -> list[Alternative]:
    """Each option not chosen, with the rule(s) that kept it out."""
    blockers = [r for r in ("prompting_meets_target", "task_changes_often", "prompting_first") if r in by_rule]
    blocked = f"{by_rule[blockers[0]].sentence}" if blockers else None
    n, need = s.labeled_examples, t.min_labeled_examples
    rag = "rag_for_changing_facts" in by_rule or "rag_for_knowledge" in by_rule
    form = "finetune_for_form" in by_rule or "finetune_for_domain" in by_rule
    out: list[Alternative] = []

    def add(option: str, why: str) -> None:
        if option != rec:
            out.append(Alternative(option, why))

    if rec != "prompt":
        add("prompt", blocked if blockers else _prompt_why_not(s))
    add("rag", "Keep it beside the recommendation: the answers need facts retrieval supplies."
        if rag else "No missing or changing facts were named: retrieval would add an index and latency for nothing.")
    if rec == "continued-pretraining":
        why_ft = (f"Comes after: adapt the model to the domain on the {R._n(s.domain_corpus_tokens)}-token corpus "
                  "first, then finetune it on labeled task examples.")
    elif rec == "distill":
        why_ft = ("Finetuning the current model does not make it smaller or cheaper; the small student is "
                  "what gets finetuned.")
    elif blocked and (form or "dpo_for_preference_pairs" in by_rule):
        why_ft = f"Not yet: {blocked[0].lower()}{blocked[1:]}"
    elif "too_few_examples" in by_rule:
        why_ft = f"Only {n} labeled examples (bar: {need}); a finetune on them would be noisy and overfit."
    elif form or "dpo_for_preference_pairs" in by_rule:
        why_ft = "Training the full task is not the first step here; see the reasons."
    else:
        why_ft = "No format, style, behaviour, domain or preference problem was named: finetuning teaches " \
                 "form, not facts (Ovadia et al. 2023)."
    add("finetune", why_ft)
    if rec != "rag+finetune":
        add("rag+finetune", why_ft if rag else "Needs both a form problem and facts that change; "
            + ("no facts problem was named." if form else "neither was named."))
    distill = "distill_for_cost_latency" in by_rule or (
        "small_model_on_device" in by_rule and by_rule["small_model_on_device"].vote == "distill")
    add("distill", f"Not yet: {blocked[0].lower()}{blocked[1:]}" if distill and blocked
        else "Cost, latency and on-device size were not named as problems." if not distill
        else "Considered; see the reasons.")
    corpus, bar = s.domain_corpus_tokens, t.domain_corpus_min_tokens
    add("continued-pretraining",
        f"Only {R._n(corpus)} tokens of unlabeled domain text (bar: {R._n(bar)})."
        if corpus < bar and "domain" in (s.problems or [])
        else f"No domain problem and no large unlabeled domain corpus (bar: {R._n(bar)} tokens)."
        if corpus < bar
        else "The corpus is large but no domain problem was named." if "continued_pretraining_for_corpus" not in by_rule
        else f"Not yet: {blocked[0].lower()}{blocked[1:]}" if blocked else "Considered; see the reasons.")
    if "too_few_examples" not in by_rule and _demonstrations_first(by_rule):
        add("collect-data", "Worth doing alongside, not instead: the demonstrations train now, and preference "
            "pairs add a DPO stage later.")
    elif "too_few_examples" in by_rule or "too_few_preference_pairs" in by_rule:
        add("collect-data", "Worth doing alongside: more examples widen the options later.")
    else:
        add("collect-data", f"{n} labeled examples already meet the bar of {need}." if n >= need
            else "Nothing recommended here needs more labeled examples yet.")
    if method in ("lora", "qlora", "full"):
        for m, why in _method_alternatives(s, method, t, tried).items():
            out.append(Alternative(m, why))
    return out


def _prompt_why_not(s: Scenario) -> str:
    score, target = s.prompting_score, s.target_score
    if score is not None and target is not None:
        if score >= target:
            return (f"Prompting meets the quality target ({score:g} >= {target:g}) but not the cost or latency "
                    "one: a prompt cannot make the model smaller.")
        return f"Prompting is exhausted at {score:g}, short of the {target:g} target."
    return "Prompting is exhausted and falls short of what the task needs."


def _fit_text(f: planning.Fit) -> str:
    if f.gpus > 1:
        return f"{f.device_gb:.1f} GB per GPU against the {f.vram_gb:g} GB of each of {f.gpus}x {f.gpu}"
    return f"{f.device_gb:.1f} GB on the device against the {f.vram_gb:g} GB of {f.gpu}"


def _method_alternatives(
    s: Scenario, method: str, t: R.Thresholds, tried: dict[str, planning.Fit]
) -> dict[str, str]:
    out = {}
    if method != "full":
        full = tried.get("full")
        if not (_big_data(s, t) and "domain" in (s.problems or [])):
            out["full"] = ("Needs large data and a large domain shift to beat LoRA (Biderman et al. 2024), "
                           "and the compute for it.")
        elif full is None:
            out["full"] = "Large data and a domain shift, but no GPU was named to check the compute."
        elif not full.fits:
            out["full"] = (f"Large data and a domain shift, but full finetuning does not fit: {_fit_text(full)} "
                           "(the planner assumes data parallelism; sharding with FSDP/ZeRO-3 would change this).")
        else:
            cost = f"${full.cost_usd:,.0f}" if full.cost_usd is not None else "an unknown cost"
            out["full"] = f"Large data and a domain shift, but it costs {cost}, over the ${s.budget_usd:,.0f} budget."
    if method != "qlora":
        lora = tried.get("lora")
        out["qlora"] = (
            "Full finetuning fits; 4-bit weights save memory that is not short here, at a cost in accuracy "
            "and speed." if method == "full"
            else "No GPU named, so memory was not checked: switch to QLoRA if your GPU cannot hold the plan's peak."
            if lora is None or lora.fits is None
            else f"{_title(method)} fits ({_fit_text(tried.get(method, lora))}); 4-bit weights would slow "
            "training and cost some accuracy."
        )
    if method != "lora":
        lora = tried.get("lora")
        out["lora"] = (
            f"Does not fit: {_fit_text(lora)}." if method == "qlora" and lora is not None
            else "Learns less than full finetuning on this much data in a new domain (Biderman et al. 2024)."
        )
    return out
