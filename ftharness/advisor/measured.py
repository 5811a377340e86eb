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
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

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


def next_experiments(m: Measured) -> list[str]:
    """What to run next when the run did not settle the question, each with the figure that sizes it."""
    steps: list[str] = []
    c = m.comparison
    if c is not None and c.verdict == "inconclusive":
        rows = rows_to_resolve(c)
        if rows is not None:
            steps.append(
                f"The interval of {c.option} vs {c.reference} contains zero at n={c.n}: with the measured "
                f"spread (sd {c.sd:.2f} per row) and difference ({_diff(c.diff)}), about {rows[0]} eval rows "
                f"would exclude zero if that difference is real ({rows[1]} for {POWER:.0%} power).")
    for o in m.candidates:
        guard = [s for s in o.failed_suites if s in GUARD_SUITES]
        if "forgetting" in guard:
            lr = o.hyperparameters.get("learning_rate")
            steps.append(
                f"Rerun {o.name} to forget less: a lower learning rate"
                + (f" than {lr:g}" if isinstance(lr, int | float) else "")
                + ", fewer steps or a smaller rank, or mix general text into its training data "
                "(Biderman et al. 2024, \"LoRA Learns Less and Forgets Less\": forgetting grows with the "
                "learning rate and the steps).")
        if "safety" in guard or "redteam" in guard:
            steps.append(f"Add refusal and safe-completion examples to {o.name}'s training data, or train a DPO "
                         "stage on safety preference pairs (Qi et al. 2023: finetuning erodes safety).")
    best = max((o for o in m.candidates if o.score is not None), key=lambda o: _signed(m, o.score), default=None)
    short = best is not None and m.target is not None and _signed(m, best.score) < _signed(m, m.target)
    if short and best is not None:
        r = best.hyperparameters.get("r")
        if best.still_improving:
            steps.append(f"{best.name} still improved at its last validation ({m.metric} {best.score:.2f}, target "
                         f"{m.target:g}): train longer or on more data (the OpenAI fine-tuning guide sees gains "
                         "with each doubling of the examples).")
        elif isinstance(r, int):
            steps.append(f"{best.name} stopped improving short of the target ({best.score:.2f} < {m.target:g}): "
                         f"try a bigger rank (r={2 * r}) or more examples; a sweep over learning rates picks the "
                         "best on validation.")
        else:
            steps.append(f"{best.name} falls short of the target ({best.score:.2f} < {m.target:g}): train on more "
                         "examples.")
    if not m.candidates:
        steps.append("The run trained no candidate: add a LoRA candidate to the task to measure what training "
                     "adds over prompting.")
    return steps


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
