"""What a comparison run measured, as the advisor reads it (``ftharness advise --from-run``).

``ftharness.report.advice`` turns a run's results.json into :class:`Measured`; the advisor reads only the
plain figures here, never the report records. Measured facts replace the scenario's assumptions where they
answer the same question (:func:`scenario_facts`): a fact the user said and the run measured differently is
taken from the run, and the advice says so. The rules that read a run are in :mod:`ftharness.advisor.rules`
(``MEASURED_RULES``); the sizes of the next experiment are computed here:

- **eval rows to resolve an inconclusive interval**: the paired difference's half-width shrinks as
  ``z * sd / sqrt(n)`` (the normal approximation of the mean's sampling distribution; the bootstrap interval
  the run reports converges to it), so excluding zero needs ``n >= (z * sd / |diff|)^2`` rows when the true
  difference is the measured one (Cohen 1988, *Statistical Power Analysis*, ch. 2, at 50 % power: a
  difference exactly at the bar is seen half the time; the factor ``((z + z_power) / z)^2`` for 80 % power
  is applied as well, and both are given).
- **payback**: the training cost divided by the monthly serving saving against the reference, at the
  scenario's requests per month (or the task's).

Every next experiment that changes training (:func:`next_experiments`) comes with the task-file block that
runs it (:mod:`ftharness.advisor.blocks`), derived from the measured candidate's own entry: its text ends
with the block's YAML, and :attr:`NextStep.block` holds the block itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from ftharness.advisor import blocks
from ftharness.advisor.blocks import CandidateBlock

POWER = 0.8  # the conventional power for sizing an experiment (Cohen 1988, ch. 2)


@dataclass(frozen=True)
class MeasuredOption:
    """One option of the run, as the advice reads it."""

    name: str
    kind: Literal["baseline", "candidate"]
    score: float | None  # the decision metric's mean on the eval rows
    passed: bool  # every gate passed
    failed: tuple[str, ...] = ()  # the failed gates' messages
    failed_suites: tuple[str, ...] = ()  # the suites those gates belong to
    prompt_tokens_mean: float = 0.0
    usd_per_request: float | None = None  # serving cost of one request as the run priced it (an endpoint's
    # input and output tokens at its prices); None: prompt tokens at the task's price
    training_s: float = 0.0  # with every candidate it starts from
    training_usd: float = 0.0
    prompting: str | None = None  # a baseline's kind: zero-shot, few-shot, retrieved, ...
    method: str | None = None  # a candidate's training method
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    still_improving: bool | None = None  # the validation loss was lowest at the last evaluation
    answer: str = "prompt"  # the decision chart's answer it measures: prompt, rag, finetune, rag+finetune
    entry: dict[str, Any] = field(default_factory=dict)  # a candidate's task-file entry, as the task file
    # writes it (no field left at its default, no sweep: a finalist's swept values are in its hyperparameters)
    data: str | None = None  # what a candidate trained on: train, preference or corpus


@dataclass(frozen=True)
class MeasuredComparison:
    """The run's paired comparison of the best (or recommended) candidate with the best baseline."""

    option: str
    reference: str
    n: int
    diff: float
    ci_low: float
    ci_high: float
    confidence: float
    verdict: Literal["better", "worse", "inconclusive", "same"]
    sd: float | None  # standard deviation of the per-row differences (None: not enough rows)


@dataclass(frozen=True)
class Measured:
    """What one run measured that bears on the advice."""

    run_id: str
    source: str  # the results.json read
    metric: str  # the decision metric (METRIC.VALUE)
    higher_is_better: bool
    target: float | None  # the task's own gate threshold on the decision metric
    verdict: str  # the run's decision: prompt, rag, finetune, rag+finetune, none
    recommended: str | None
    best_baseline: str | None
    options: tuple[MeasuredOption, ...]
    comparison: MeasuredComparison | None
    train_examples: int | None  # rows the candidates trained on
    preference_pairs: int | None
    has_schema: bool  # the task's outputs follow a JSON Schema
    requests_per_month: int  # the task's stated volume
    usd_per_prompt_token: float
    model: str | None  # the base model as the planner names it (a preset or a config.json), if known
    task_file: str | None = None  # the task file the run read

    def option(self, name: str | None) -> MeasuredOption | None:
        return next((o for o in self.options if o.name == name), None)

    @property
    def measured_retrieval(self) -> bool:
        """Some option of the run retrieved from a knowledge base: the run measured RAG itself."""
        return any(o.answer in ("rag", "rag+finetune") for o in self.options)

    @property
    def baselines(self) -> list[MeasuredOption]:
        return [o for o in self.options if o.kind == "baseline"]

    @property
    def candidates(self) -> list[MeasuredOption]:
        return [o for o in self.options if o.kind == "candidate"]


@dataclass(frozen=True)
class MeasuredFact:
    """One fact the advice takes from the run: the scenario field it answers (or None), its value, the
    sentence the user reads and where in results.json it comes from."""

    field: str | None
    value: Any
    text: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "value": self.value, "text": self.text, "source": self.source}


# Baseline kinds that count as trying prompting hard: examples in the prompt, chosen or retrieved
# (the advisor's prompting_first rule names instructions, few-shot and retrieved examples).
STRONG_PROMPTING = ("few-shot", "retrieved")
# Suites whose failed gates mean a candidate lost general ability or safety.
GUARD_SUITES = ("forgetting", "safety", "redteam")


def _diff(x: float) -> str:
    return f"{x:+.2f}"


def scenario_facts(m: Measured) -> list[MeasuredFact]:
    """The scenario fields the run answers, each with the figure that answers it."""
    facts: list[MeasuredFact] = []
    best = m.option(m.best_baseline)
    kinds = sorted({o.prompting for o in m.baselines if o.prompting})
    if best is not None and best.score is not None:
        facts.append(MeasuredFact(
            "prompting_score", round(best.score, 4),
            f"best prompting option {best.name}: {m.metric} {best.score:.2f}",
            f"options[{best.name}].metrics"))
        strong = [k for k in kinds if k in STRONG_PROMPTING]
        exhausted = bool(strong) and not best.passed
        facts.append(MeasuredFact(
            "prompting_exhausted", exhausted,
            f"prompting tried as {', '.join(kinds)}" + (
                f"; the best still fails: {'; '.join(best.failed)}" if exhausted
                else "; it passes every gate" if best.passed
                else "; no few-shot or retrieved baseline was run, so prompting is not exhausted yet"),
            "settings.baselines, options[].gates"))
        if not best.passed and m.has_schema:
            facts.append(MeasuredFact(
                "problems", ["format"],
                "prompting falls short on a task whose outputs follow a JSON Schema: a form problem",
                "task.schema, options[].gates"))
    if m.target is not None:
        facts.append(MeasuredFact("target_score", m.target, f"the task's gate: {m.metric} >= {m.target:g}",
                                  "task.gates"))
    if m.train_examples is not None:
        facts.append(MeasuredFact("labeled_examples", m.train_examples,
                                  f"{m.train_examples} labeled examples trained on", "data.train"))
    if m.preference_pairs is not None:
        facts.append(MeasuredFact("preference_pairs", m.preference_pairs,
                                  f"{m.preference_pairs} preference pairs", "data.preference"))
    if m.model is not None:
        facts.append(MeasuredFact("model", m.model, f"base model: {m.model}", "task.base_model"))
    return facts


def monthly_usd(m: Measured, o: MeasuredOption, requests_per_month: int | None) -> float:
    """Serving cost per request as the run priced it x requests per month (without a price per request:
    prompt tokens x the task's price per prompt token)."""
    per_request = o.usd_per_request if o.usd_per_request is not None else o.prompt_tokens_mean * m.usd_per_prompt_token
    return per_request * (requests_per_month or m.requests_per_month)


def payback_months(
    m: Measured, candidate: MeasuredOption, reference: MeasuredOption, requests_per_month: int | None
) -> float | None:
    """Months until the candidate's training cost is repaid by its lower serving cost (None: it saves
    nothing per month)."""
    saving = monthly_usd(m, reference, requests_per_month) - monthly_usd(m, candidate, requests_per_month)
    if saving <= 0:
        return None
    return candidate.training_usd / saving


def rows_to_resolve(c: MeasuredComparison, power: float = POWER) -> tuple[int, int] | None:
    """Eval rows for an interval that excludes zero when the true difference is the measured one:
    ``(at 50 % power, at ``power``)``; None when there is no difference to resolve."""
    from statistics import NormalDist  # statistics imports random, fractions and decimal: only when used

    if c.sd is None or c.diff == 0 or c.sd == 0:
        return None
    z = NormalDist().inv_cdf(1 - (1 - c.confidence) / 2)
    z_power = NormalDist().inv_cdf(power)
    half = (z * c.sd / abs(c.diff)) ** 2
    full = ((z + z_power) * c.sd / abs(c.diff)) ** 2
    return math.ceil(half), math.ceil(full)


def run_facts(m: Measured, requests_per_month: int | None) -> list[MeasuredFact]:
    """The measured facts beyond the scenario's fields: the gap with its interval, the monthly cost of each
    option, the payback, and any general ability or safety a candidate lost."""
    out: list[MeasuredFact] = []
    c = m.comparison
    if c is not None:
        out.append(MeasuredFact(
            None, {"diff": c.diff, "ci": [c.ci_low, c.ci_high], "verdict": c.verdict},
            f"{c.option} vs {c.reference} on {m.metric}: {_diff(c.diff)} "
            f"({c.confidence:.0%} CI [{_diff(c.ci_low)}, {_diff(c.ci_high)}], n={c.n}): {c.verdict}",
            "decision.comparison"))
    requests = requests_per_month or m.requests_per_month
    costs = {o.name: monthly_usd(m, o, requests_per_month) for o in m.options}
    out.append(MeasuredFact(
        None, costs,
        f"serving cost per month at {requests:,} requests: "
        + ", ".join(f"{name} ${usd:,.2f}" for name, usd in costs.items()),
        "decision.costs"))
    ref = m.option(c.reference) if c is not None else None
    cand = m.option(c.option) if c is not None else None
    if cand is not None and ref is not None:
        months = payback_months(m, cand, ref, requests_per_month)
        out.append(MeasuredFact(
            None, months,
            f"{cand.name} trained for ${cand.training_usd:,.2f} ({cand.training_s / 60:.1f} min); "
            + (f"its shorter prompts repay that in {_span(months)} against {ref.name}" if months is not None
               else f"its prompts cost no less than {ref.name}'s, so training does not pay back in serving cost"),
            "decision.costs"))
    for o in m.candidates:
        for suite in GUARD_SUITES:
            lost = [msg for msg, s in zip(o.failed, o.failed_suites, strict=True) if s == suite]
            if lost:
                what = "general ability" if suite == "forgetting" else "safety"
                out.append(MeasuredFact(None, lost, f"{o.name} lost {what}: {'; '.join(lost)}",
                                        f"options[{o.name}].gates"))
    return out


@dataclass(frozen=True)
class NextStep:
    """One next experiment: the text the user reads (ending with the block's YAML when it has one) and the
    task-file block that runs it (None: the step changes no candidate)."""

    text: str
    block: CandidateBlock | None = None


def _with_block(text: str, block: CandidateBlock | None, fallback: str) -> NextStep:
    """``text`` followed by the block's YAML, or ``fallback`` when no block could be derived."""
    if block is None:
        return NextStep(fallback)
    return NextStep(f"{text}\n{block.yaml}", block)


def next_experiments(m: Measured) -> list[NextStep]:
    """What to run next when the run did not settle the question, each with the figure that sizes it; a step
    that changes training carries the candidate block that runs it (:mod:`ftharness.advisor.blocks`)."""
    steps: list[NextStep] = []
    taken = {o.name for o in m.options}
    rerun = f"`ftharness compare {m.task_file}`" if m.task_file else "`ftharness compare TASK.yaml`"
    add = f"Add this candidate to the task file's `candidates:` and rerun {rerun}"
    c = m.comparison
    if c is not None and c.verdict == "inconclusive":
        rows = rows_to_resolve(c)
        if rows is not None:
            steps.append(NextStep(
                f"The interval of {c.option} vs {c.reference} contains zero at n={c.n}: with the measured "
                f"spread (sd {c.sd:.2f} per row) and difference ({_diff(c.diff)}), about {rows[0]} eval rows "
                f"would exclude zero if that difference is real ({rows[1]} for {POWER:.0%} power)."))
    for o in m.candidates:
        guard = [s for s in o.failed_suites if s in GUARD_SUITES]
        if "forgetting" in guard:
            steps.append(_forgetting_step(o, taken, add))
        if "safety" in guard or "redteam" in guard:
            steps.append(_safety_step(m, o, taken, add))
    best = max((o for o in m.candidates if o.score is not None), key=lambda o: _signed(m, o.score), default=None)
    short = best is not None and m.target is not None and _signed(m, best.score) < _signed(m, m.target)
    if short and best is not None:
        gap = f"{m.metric} {best.score:.2f}, target {m.target:g}"
        more = "the OpenAI fine-tuning guide sees gains with each doubling of the examples"
        if best.still_improving:
            block = blocks.longer_block(best, taken)
            steps.append(_with_block(
                f"{best.name} still improved at its last validation ({gap}): train it longer, and on more "
                f"examples ({more}). {add}:", block,
                f"{best.name} still improved at its last validation ({gap}): train longer or on more data "
                f"({more})."))
        elif (block := blocks.rank_block(best, taken)) is not None:
            r = block.entry["sweep"]["r"]
            steps.append(NextStep(
                f"{best.name} stopped improving short of the target ({gap}): try a bigger rank (r={r[0]} and "
                f"{r[1]}, validation chooses) or more examples ({more}). {add}:\n{block.yaml}", block))
        elif isinstance(rank := best.hyperparameters.get("r"), int):  # its trainer is not installed here
            steps.append(NextStep(f"{best.name} stopped improving short of the target ({gap}): try a bigger rank "
                                  f"(r={2 * rank}) or more examples ({more})."))
        else:
            steps.append(NextStep(f"{best.name} falls short of the target ({best.score:.2f} < {m.target:g}): "
                                  "train on more examples."))
    if not m.candidates:
        fallback = ("The run trained no candidate: add a LoRA candidate to the task to measure what training adds "
                    "over prompting.")
        steps.append(_with_block(f"The run trained no candidate: measure what training adds over prompting with a "
                                 f"LoRA candidate. {add}:", blocks.first_candidate_block(taken), fallback))
    return steps


def _forgetting_step(o: MeasuredOption, taken: set[str], add: str) -> NextStep:
    lost = "; ".join(msg for msg, s in zip(o.failed, o.failed_suites, strict=True) if s == "forgetting")
    why = ("forgetting grows with the learning rate and the steps (Biderman et al. 2024, \"LoRA Learns Less and "
           "Forgets Less\")")
    block = blocks.forgetting_block(o, taken)
    fallback = f"Rerun {o.name} with a lower learning rate or fewer steps to forget less ({lost}): {why}."
    if block is None:
        return NextStep(fallback)
    sweep = block.entry["sweep"]
    varied = []
    if "learning_rate" in sweep:
        varied.append("lower learning rates (" + " and ".join(f"{v:g}" for v in sweep["learning_rate"]) + ")")
    if "replay.fraction" in sweep:
        varied.append(f"general text mixed into its training rows (replay, {sweep['replay.fraction'][-1]:g} per "
                      "task row; Scialom et al. 2022: rehearsal keeps what the model knew) against "
                      + (f"{sweep['replay.fraction'][0]:g}" if sweep["replay.fraction"][0] else "none"))
    how = (f"; successive halving trains its {block.points} points on part of their steps and continues the better "
           "half on validation, points that pass the forgetting gate first"
           if block.entry.get("sweep_strategy") == "halving" else "; validation chooses among them")
    return _with_block(f"Rerun {o.name} to forget less ({lost}): {why}. Try {' with '.join(varied)}{how}. "
                       f"{add}:", block, fallback)


def _safety_step(m: Measured, o: MeasuredOption, taken: set[str], add: str) -> NextStep:
    erodes = "finetuning erodes safety (Qi et al. 2023)"
    if o.data == "preference":  # a DPO candidate already: the same candidate on safety pairs, no new block
        return NextStep(f"{o.name} fails a safety gate, and {erodes}: add safety pairs (chosen: the refusal or safe "
                        "answer) to the task's data.preference and rerun it.")
    fallback = (f"Add refusal and safe-completion examples to {o.name}'s training data, or train a DPO stage on "
                f"safety preference pairs ({erodes}).")
    has_pairs = bool(m.preference_pairs)
    block = blocks.dpo_block(o, taken, has_pairs=has_pairs)
    if block is None:
        return NextStep(fallback)
    pairs = (f"add safety pairs (chosen: the refusal or safe answer) to the task's data.preference "
             f"({m.preference_pairs} pairs there now)" if has_pairs
             else "collect safety pairs (chosen: the refusal or safe answer) and name them in the task's "
                  "`data.preference`")
    return _with_block(f"{o.name} fails a safety gate, and {erodes}: add refusal and safe-completion examples to its "
                       f"training rows, and train a DPO stage on top of it (Rafailov et al. 2023): {pairs}. "
                       f"{add}:", block, fallback)


def _span(months: float) -> str:
    """A payback time as people say it (30-day months)."""
    days = months * 30
    if days < 1:
        return "under a day"
    if months < 2:
        return f"{days:.0f} days"
    return f"{months:.1f} months"


def _signed(m: Measured, value: float) -> float:
    return value if m.higher_is_better else -value
