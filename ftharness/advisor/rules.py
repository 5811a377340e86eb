"""Every rule of `ftharness advise`, each a named function that returns a :class:`Fired` or ``None``.

Scenario rules read :class:`Facts` (the scenario with its missing fields filled by the stated
assumptions, the model's size, the thresholds of ``rules.yaml``). Plan rules also read the planner's
:class:`~ftharness.advisor.planning.Fit` for a method. Each rule cites where its logic comes from;
``ftharness.advisor.decide`` combines the votes into one recommendation.

Votes: ``prompt``, ``rag``, ``finetune``, ``dpo``, ``distill``, ``continued-pretraining``,
``collect-data``, ``no-finetune`` (blocks task-specific training), ``lora``/``qlora``/``full``
(method), ``constraint`` (shapes the advice without choosing it).

Measured rules (``MEASURED_RULES``, for ``advise --from-run``) read what a comparison run measured
(:class:`~ftharness.advisor.measured.Measured`) and outrank the scenario rules: a measurement on the user's
own data is better evidence than a rule of thumb from the literature.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from ftharness.advisor.measured import Measured
from ftharness.advisor.planning import Fit
from ftharness.advisor.scenario import Refresh, Scenario
from ftharness.typed import load_file, spec

FORM_PROBLEMS = ("format", "style", "behavior")
PREFERENCE_PROBLEMS = ("preference", "safety")


@dataclass(frozen=True)
class Fired:
    """A rule that fired: its id, the sentence the user reads, and what it votes for."""

    rule: str
    sentence: str
    vote: str

    def to_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "sentence": self.sentence}


@dataclass(frozen=True)
class Epochs:
    """Training epochs planned per path."""

    sft: float = spec(gt=0)
    dpo: float = spec(gt=0)
    distill: float = spec(gt=0)
    continued_pretraining: float = spec(gt=0)


@dataclass(frozen=True)
class SuiteGates:
    """The gate expression of each suite the next steps name."""

    format: str
    safety: str
    forgetting: str


@dataclass(frozen=True)
class PlanSettings:
    """Settings every plan uses beyond the planner's defaults."""

    gradient_checkpointing: bool


@dataclass(frozen=True)
class Thresholds:
    """The numbers and tables of ``rules.yaml`` (package data; each value's source is cited there)."""

    min_labeled_examples: int = spec(ge=1)
    pilot_labeled_examples: int = spec(ge=1)
    min_preference_pairs: int = spec(ge=1)
    facts_change: list[Refresh] = spec()
    domain_corpus_min_tokens: int = spec(ge=1)
    full_min_examples: int = spec(ge=1)
    full_min_tokens: int = spec(ge=1)
    small_model_max_b: float = spec(gt=0)
    tight_latency_ms: float = spec(gt=0)
    small_local_model: str = spec()
    plan_settings: PlanSettings = spec()
    epochs: Epochs = spec()
    gates: SuiteGates = spec()


@dataclass(frozen=True)
class Facts:
    """What the rules read: ``s`` has no ``None`` left in the fields the rules count on."""

    s: Scenario
    t: Thresholds
    size_b: float | None = None  # size of the named model, billions of parameters


@lru_cache(maxsize=1)
def thresholds() -> Thresholds:
    """``rules.yaml`` (package data), checked."""
    from ftharness.paths import package_data

    return load_file(Thresholds, package_data("advisor", "rules.yaml"))


def _has(s: Scenario, *problems: str) -> list[str]:
    return [p for p in problems if p in (s.problems or [])]


def _n(x: float) -> str:
    """Counts as people write them: 800, 12k, 3.5M, 2B."""
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            v = x / div
            return f"{v:.0f}{suffix}" if v >= 10 or v == int(v) else f"{v:.1f}{suffix}"
    return f"{x:g}"


# --- prompting first ---------------------------------------------------------------------------


def prompting_meets_target(x: Facts) -> Fired | None:
    """Prompting already reaches the target score: nothing to train.

    Source: OpenAI, "Optimizing LLMs for accuracy" (platform.openai.com/docs/guides/optimizing-llm-accuracy):
    optimise only until accuracy meets the business target; Anthropic, "Prompt engineering overview"
    (docs.anthropic.com/en/docs/build-with-claude/prompt-engineering/overview).
    A score says nothing about cost or latency: with those problems named, this rule stays silent.
    """
    s = x.s
    if s.prompting_score is None or s.target_score is None or s.prompting_score < s.target_score:
        return None
    if _has(s, "cost", "latency"):
        return None
    return Fired(
        "prompting_meets_target",
        f"Prompting already scores {s.prompting_score:.2f} against a target of {s.target_score:.2f}: "
        "training cannot pay for itself.",
        "prompt",
    )


def prompting_first(x: Facts) -> Fired | None:
    """Exhaust prompting (clear instructions, few-shot examples, retrieved examples) before training.

    Source: OpenAI, "Optimizing LLMs for accuracy" (start with prompt engineering, then add context
    with RAG or behaviour with fine-tuning); Anthropic, "Prompt engineering overview": prompting is
    faster, cheaper, needs little data, and survives model updates that force a finetune to be redone.
    """
    if x.s.prompting_exhausted:
        return None
    return Fired(
        "prompting_first",
        "Prompting is not exhausted yet: instructions, few-shot and retrieved examples are faster, "
        "cheaper and reversible, and they set the baseline any finetune must beat.",
        "prompt",
    )


def task_changes_often(x: Facts) -> Fired | None:
    """A task that keeps changing should stay in the prompt: a finetune freezes yesterday's task.

    Source: Anthropic, "Prompt engineering overview" (flexibility and rapid iteration; finetunes may need
    retraining when things change); Together AI, "Fine-tuning vs prompting"
    (docs.together.ai/learn/finetune-vs-prompt: prompting is instantly reversible and composes per request).
    """
    if not x.s.task_changes_often:
        return None
    return Fired(
        "task_changes_often",
        "The task changes often: each change would need new training data and a new training run, "
        "while a prompt changes in minutes.",
        "no-finetune",
    )


def no_problem_named(x: Facts) -> Fired | None:
    """Without a named problem there is nothing for training to fix; keep prompting and measure.

    Source: OpenAI, "Optimizing LLMs for accuracy": diagnose the failure (context or behaviour) before
    choosing a technique.
    """
    if x.s.problems:
        return None
    return Fired(
        "no_problem_named",
        "No problem that prompting leaves unsolved was named: keep prompting and measure before "
        "choosing a technique.",
        "prompt",
    )


# --- facts: retrieval -------------------------------------------------------------------------


def rag_for_changing_facts(x: Facts) -> Fired | None:
    """Facts that change faster than a model can be retrained belong in a retrieval index.

    Source: Lewis et al. 2020, "Retrieval-Augmented Generation for Knowledge-Intensive NLP Tasks"
    (updating the index updates the knowledge, no retraining); Ovadia et al. 2023, "Fine-Tuning or
    Retrieval? Comparing Knowledge Injection in LLMs" (RAG beats unsupervised finetuning on new facts).
    """
    refresh = x.s.knowledge_refresh
    if refresh not in x.t.facts_change:
        return None
    return Fired(
        "rag_for_changing_facts",
        f"The facts change {refresh}: a retrieval index serves them fresh, a finetuned model is out of "
        "date the day after training.",
        "rag",
    )


def rag_for_knowledge(x: Facts) -> Fired | None:
    """Missing knowledge is better supplied by retrieval than trained into the weights, even static facts.

    Source: Ovadia et al. 2023, "Fine-Tuning or Retrieval? Comparing Knowledge Injection in LLMs"
    (RAG consistently outperformed unsupervised finetuning, for known and for new knowledge);
    OpenAI, "Optimizing LLMs for accuracy" (knowledge gaps are a context problem: RAG).
    """
    if not _has(x.s, "knowledge") or x.s.knowledge_refresh in x.t.facts_change:
        return None
    return Fired(
        "rag_for_knowledge",
        f"The model lacks knowledge (refreshed {x.s.knowledge_refresh}): retrieval supplies facts more "
        "reliably than finetuning them into the weights.",
        "rag",
    )


# --- form: supervised finetuning ----------------------------------------------------------------


def finetune_for_form(x: Facts) -> Fired | None:
    """Format, style and behaviour are what finetuning teaches well.

    Source: OpenAI, "Optimizing LLMs for accuracy" (fine-tuning for consistent behaviour, format and
    style; RAG for knowledge); Ovadia et al. 2023 (finetuning is weak at injecting facts).
    """
    form = _has(x.s, *FORM_PROBLEMS)
    if not form:
        return None
    return Fired(
        "finetune_for_form",
        f"The problem is form ({', '.join(form)}): demonstrations teach it more reliably than instructions.",
        "finetune",
    )


def finetune_for_domain(x: Facts) -> Fired | None:
    """A domain problem without a large unlabeled corpus is taught with in-domain labeled examples.

    Source: Gururangan et al. 2020, "Don't Stop Pretraining: Adapt Language Models to Domains and Tasks"
    (adaptation on the task's own data helps even when the corpus is small).
    """
    if not _has(x.s, "domain") or x.s.domain_corpus_tokens >= x.t.domain_corpus_min_tokens:
        return None
    return Fired(
        "finetune_for_domain",
        f"The domain is specialised but only {_n(x.s.domain_corpus_tokens)} tokens of unlabeled domain "
        "text are on hand: learn its vocabulary and conventions from labeled in-domain examples.",
        "finetune",
    )


def _needs_demonstrations(x: Facts) -> bool:
    return bool(_has(x.s, *FORM_PROBLEMS)) or finetune_for_domain(x) is not None


def enough_examples(x: Facts) -> Fired | None:
    """Enough high-quality demonstrations to finetune (the decision flowchart's 500+).

    Source: the project's decision flowchart (500+ examples); OpenAI fine-tuning guide
    (platform.openai.com/docs/guides/fine-tuning: minimum 10, clear gains from 50-100, more with each
    doubling); Zhou et al. 2023, "LIMA: Less Is More for Alignment" (1,000 curated examples: quality
    matters more than quantity).
    """
    n = x.s.labeled_examples
    if not _needs_demonstrations(x) or n < x.t.min_labeled_examples:
        return None
    return Fired(
        "enough_examples",
        f"{_n(n)} labeled examples meet the bar of {x.t.min_labeled_examples}; their quality matters "
        "more than their number (LIMA), so inspect them before training.",
        "finetune",
    )


def too_few_examples(x: Facts) -> Fired | None:
    """Fewer than 500 demonstrations: collect or synthesise data before finetuning.

    Source: the project's decision flowchart (500+); OpenAI fine-tuning guide (fewer examples, weaker and noisier
    gains); Zhou et al. 2023, "LIMA" (a small set can work only if every example is curated).
    Preference pairs do not block: their chosen responses double as demonstrations for DPO's SFT stage.
    """
    n = x.s.labeled_examples
    if not _needs_demonstrations(x) or n >= x.t.min_labeled_examples:
        return None
    if x.s.preference_pairs >= x.t.min_preference_pairs:
        return None
    return Fired(
        "too_few_examples",
        f"Only {_n(n)} labeled examples, below the bar of {x.t.min_labeled_examples}: collect or "
        "synthesise (teacher-labeled, then reviewed) examples before training.",
        "collect-data",
    )


# --- preferences --------------------------------------------------------------------------------


def dpo_for_preference_pairs(x: Facts) -> Fired | None:
    """Preference pairs (chosen vs rejected) are trained with DPO, no reward model or RL loop needed.

    Source: Rafailov et al. 2023, "Direct Preference Optimization: Your Language Model is Secretly a
    Reward Model".
    """
    pairs = x.s.preference_pairs
    if pairs < x.t.min_preference_pairs:
        return None
    return Fired(
        "dpo_for_preference_pairs",
        f"{_n(pairs)} preference pairs are on hand: DPO learns from chosen-vs-rejected pairs directly.",
        "dpo",
    )


def too_few_preference_pairs(x: Facts) -> Fired | None:
    """A preference or safety problem needs preference pairs; with too few, collect them. With enough labeled
    demonstrations meanwhile, train on those now (vote ``finetune``): supervised finetuning on demonstrations
    is the first stage of the preference pipeline, and the pairs add a DPO stage on top of it; without them,
    collecting comes first (vote ``collect-data``).

    Source: Ouyang et al. 2022, "Training language models to follow instructions with human feedback"
    (InstructGPT: supervised finetuning on labeler demonstrations first, then preference comparisons train the
    later stages, starting from the SFT model); Rafailov et al. 2023 (DPO, from the SFT model as its reference
    policy); Bai et al. 2022, "Training a Helpful and Harmless Assistant with Reinforcement Learning from Human
    Feedback" (harmlessness is taught from human preference comparisons).
    """
    wanted = _has(x.s, *PREFERENCE_PROBLEMS)
    pairs, n = x.s.preference_pairs, x.s.labeled_examples
    if not wanted or pairs >= x.t.min_preference_pairs:
        return None
    short = (f"A {'/'.join(wanted)} problem is taught from preference pairs, and only {_n(pairs)} are on hand "
             f"(bar: {x.t.min_preference_pairs})")
    if n >= x.t.min_labeled_examples:
        return Fired(
            "too_few_preference_pairs",
            f"{short}; the {_n(n)} labeled demonstrations train now: supervised finetuning on them is the first "
            "stage of that pipeline (InstructGPT), and the pairs, once collected, add a DPO stage on top of it.",
            "finetune",
        )
    return Fired("too_few_preference_pairs", f"{short}: collect chosen/rejected pairs.", "collect-data")


def safety_gates(x: Facts) -> Fired | None:
    """Safety problems: gate every candidate on safety, because finetuning itself can erode it.

    Source: Qi et al. 2023, "Fine-tuning Aligned Language Models Compromises Safety, Even When Users Do
    Not Intend To!"; Bai et al. 2022 (harmlessness from preference data).
    """
    if not _has(x.s, "safety"):
        return None
    return Fired(
        "safety_gates",
        "Safety is at stake: finetuning can erode safety even on benign data (Qi et al. 2023), so every "
        f"candidate must pass the safety gate ({x.t.gates.safety}).",
        "constraint",
    )


# --- smaller models: distillation, on device ----------------------------------------------------


def distill_for_cost_latency(x: Facts) -> Fired | None:
    """Cost or latency: train a smaller student on a larger teacher's outputs.

    Source: Hinton, Vinyals and Dean 2015, "Distilling the Knowledge in a Neural Network"; Hsieh et al.
    2023, "Distilling Step-by-Step! Outperforming Larger Language Models with Less Training Data and
    Smaller Model Sizes" (770M students beat a 540B teacher's few-shot prompting).
    """
    s, t = x.s, x.t
    named = _has(s, "cost", "latency")
    tight = (
        s.latency_ms is not None
        and s.latency_ms <= t.tight_latency_ms
        and x.size_b is not None
        and x.size_b > t.small_model_max_b
    )
    if not named and not tight:
        return None
    why = f"{' and '.join(named)} matter" if named else f"a {s.latency_ms:g} ms latency budget is tight"
    return Fired(
        "distill_for_cost_latency",
        f"{why[0].upper()}{why[1:]}: a small student trained on a larger teacher's answers serves the task "
        "for a fraction of the compute.",
        "distill",
    )


def small_model_on_device(x: Facts) -> Fired | None:
    """On-device serving needs a small model; a larger one has to be distilled into one.

    Source: Liu et al. 2024, "MobileLLM: Optimizing Sub-billion Parameter Language Models for On-Device
    Use Cases"; Hinton et al. 2015 (distillation into the small model).
    """
    if not x.s.on_device:
        return None
    cap = x.t.small_model_max_b
    if x.size_b is not None and x.size_b > cap:
        return Fired(
            "small_model_on_device",
            f"The model must run on device, and {x.size_b:.1f}B parameters is more than a device holds "
            f"(cap {cap:g}B): distill into a small student.",
            "distill",
        )
    return Fired(
        "small_model_on_device",
        f"The model must run on device: keep it at {cap:g}B parameters or fewer and plan its quantised size.",
        "constraint",
    )


def keep_data_local(x: Facts) -> Fired | None:
    """Data that may not leave rules out hosted finetuning APIs and hosted teachers: train open weights locally.

    Source: OpenAI fine-tuning guide (hosted finetuning uploads the training file to the provider);
    Hinton et al. 2015 (the teacher for distillation can be any local model).
    """
    if x.s.data_can_leave:
        return None
    return Fired(
        "keep_data_local",
        "The data may not leave: train an open-weights model on your own hardware (no hosted finetuning "
        "API, no hosted teacher), and keep any retrieval index in-house.",
        "constraint",
    )


# --- domain corpora: continued pretraining --------------------------------------------------------


def continued_pretraining_for_corpus(x: Facts) -> Fired | None:
    """A large unlabeled in-domain corpus: continue pretraining on it (domain-adaptive pretraining).

    Source: Gururangan et al. 2020, "Don't Stop Pretraining: Adapt Language Models to Domains and Tasks"
    (DAPT on 2-8B-token domain corpora improved every domain's tasks).
    """
    tokens = x.s.domain_corpus_tokens
    if tokens < x.t.domain_corpus_min_tokens:
        return None
    if x.s.problems and not _has(x.s, "domain"):
        return None
    return Fired(
        "continued_pretraining_for_corpus",
        f"{_n(tokens)} tokens of unlabeled domain text (bar: {_n(x.t.domain_corpus_min_tokens)}) can "
        "adapt the model to the domain before any task training.",
        "continued-pretraining",
    )


SCENARIO_RULES: tuple[Callable[[Facts], Fired | None], ...] = (
    prompting_meets_target,
    prompting_first,
    task_changes_often,
    no_problem_named,
    rag_for_changing_facts,
    rag_for_knowledge,
    finetune_for_form,
    finetune_for_domain,
    enough_examples,
    too_few_examples,
    dpo_for_preference_pairs,
    too_few_preference_pairs,
    safety_gates,
    distill_for_cost_latency,
    small_model_on_device,
    keep_data_local,
    continued_pretraining_for_corpus,
)


# --- measured: what a comparison run showed (advise --from-run) ---------------------------------
# A difference counts only when its interval excludes zero (the comparison's paired bootstrap); a candidate
# that wins but fails a gate is not ready, whatever it scores.


def _vs(m: Measured) -> str:
    c = m.comparison
    assert c is not None
    return (f"{c.option} vs {c.reference} on {m.metric}: {c.diff:+.2f} "
            f"({c.confidence:.0%} CI [{c.ci_low:+.2f}, {c.ci_high:+.2f}], n={c.n})")


def measured_candidate_wins(m: Measured) -> Fired | None:
    """A trained candidate beats the best prompting option outside the noise and passes every gate."""
    c = m.comparison
    cand = m.option(c.option) if c is not None else None
    if c is None or c.verdict != "better" or cand is None or not cand.passed:
        return None
    return Fired("measured_candidate_wins",
                 f"Measured in run {m.run_id}: {_vs(m)}, and {cand.name} passes every gate.", "finetune")


def measured_candidate_wins_with_losses(m: Measured) -> Fired | None:
    """A trained candidate beats prompting outside the noise but fails a gate: finetuning is the way to
    the target, and what it lost is the next thing to fix."""
    c = m.comparison
    cand = m.option(c.option) if c is not None else None
    if c is None or c.verdict != "better" or cand is None or cand.passed:
        return None
    return Fired("measured_candidate_wins_with_losses",
                 f"Measured in run {m.run_id}: {_vs(m)}, but {cand.name} fails {'; '.join(cand.failed)}: "
                 "fix that before shipping it.", "finetune")


def measured_rag_wins(m: Measured) -> Fired | None:
    """The run recommends prompting with retrieval: an option reading the knowledge base passes every gate
    and nothing that needs training beats it outside the noise (facts, not form, were missing)."""
    best = m.option(m.recommended)
    if m.verdict != "rag" or best is None:
        return None
    beaten = m.option(m.comparison.option) if m.comparison is not None else None
    tail = (f"; {_vs(m)} is not a win" if beaten is not None and beaten.name != best.name else "")
    return Fired("measured_rag_wins",
                 f"Measured in run {m.run_id}: {best.name} (prompting with chunks retrieved from the knowledge "
                 f"base) passes every gate{tail}.", "rag")


def measured_prompting_suffices(m: Measured) -> Fired | None:
    """The best prompting option passes every gate and no candidate beats it outside the noise: keep the
    prompt (cheaper to change, nothing to train or serve)."""
    best = m.option(m.best_baseline)
    if best is None or not best.passed or (m.comparison is not None and m.comparison.verdict == "better"):
        return None
    if m.verdict == "rag":  # measured_rag_wins says it
        return None
    return Fired("measured_prompting_suffices",
                 f"Measured in run {m.run_id}: {best.name} passes every gate"
                 + (f" and {_vs(m)} is not a win." if m.comparison is not None else "."), "prompt")


def measured_training_no_gain(m: Measured) -> Fired | None:
    """The trained candidate is no better than prompting (worse, or the same on every row): training as
    run adds nothing yet."""
    c = m.comparison
    if c is None or c.verdict not in ("worse", "same"):
        return None
    return Fired("measured_training_no_gain",
                 f"Measured in run {m.run_id}: {_vs(m)}: {c.verdict}, so this training does not help yet.",
                 "no-finetune")


def measured_inconclusive(m: Measured) -> Fired | None:
    """The interval contains zero: the run cannot tell the options apart, so the scenario rules decide and
    the next experiment is sized to settle it."""
    c = m.comparison
    if c is None or c.verdict != "inconclusive":
        return None
    return Fired("measured_inconclusive", f"Measured in run {m.run_id}: {_vs(m)}: inconclusive.", "constraint")


MEASURED_RULES: tuple[Callable[[Measured], Fired | None], ...] = (
    measured_candidate_wins,
    measured_candidate_wins_with_losses,
    measured_rag_wins,
    measured_prompting_suffices,
    measured_training_no_gain,
    measured_inconclusive,
)


# --- method: plan rules -------------------------------------------------------------------------


def lora_by_default(x: Facts, lora: Fit | None) -> Fired | None:
    """LoRA is the default method: a small fraction of trainable parameters, quality close to full.

    Source: Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models"; Biderman et al. 2024,
    "LoRA Learns Less and Forgets Less" (LoRA keeps more of the base model's abilities).
    """
    if lora is not None and lora.fits is False:
        return None
    return Fired(
        "lora_by_default",
        "LoRA by default: it trains a small fraction of the weights, needs far less memory than full "
        "finetuning and forgets less of what the base model knew.",
        "lora",
    )


def qlora_when_memory_tight(x: Facts, lora: Fit | None, qlora: Fit | None) -> Fired | None:
    """When LoRA does not fit the GPU, QLoRA (4-bit NF4 base, LoRA adapters) usually does.

    Source: Dettmers et al. 2023, "QLoRA: Efficient Finetuning of Quantized LLMs" (a 65B model finetuned
    on one 48 GB GPU, matching 16-bit finetuning quality).
    """
    if lora is None or lora.fits is not False:
        return None
    where = f"each of {lora.gpus}x {lora.gpu}" if lora.gpus > 1 else str(lora.gpu)
    also = ""
    if qlora is not None and qlora.fits:
        also = f"; QLoRA needs {qlora.device_gb:.1f} GB and fits"
    return Fired(
        "qlora_when_memory_tight",
        f"LoRA needs {lora.device_gb:.1f} GB on the device (peak allocation plus CUDA context and allocator "
        f"reserve), more than the {lora.vram_gb:g} GB of {where}{also}.",
        "qlora",
    )


def does_not_fit(x: Facts, chosen: Fit | None) -> Fired | None:
    """Even the leanest planned method does not fit: say so rather than recommend a run that cannot start.

    Source: the planner's memory model (``ftharness plan``), which follows Dettmers et al. 2023 for 4-bit
    weights and Korthikanti et al. 2022 for activations.
    """
    if chosen is None or chosen.fits is not False:
        return None
    return Fired(
        "does_not_fit",
        f"Even {chosen.method} needs {chosen.device_gb:.1f} GB on the device, more than the {chosen.vram_gb:g} GB "
        f"of {'each ' if chosen.gpus > 1 else ''}{chosen.gpu}: use a GPU with more memory, a smaller model, "
        "or a shorter sequence / smaller batch.",
        "constraint",
    )


def full_when_justified(x: Facts, full: Fit | None) -> Fired | None:
    """Full finetuning only with large data, a large domain shift, and the compute (and budget) for it.

    Source: Biderman et al. 2024, "LoRA Learns Less and Forgets Less" (full finetuning wins on large
    continued-pretraining and instruction sets in new domains such as code and math; LoRA wins on forgetting).
    """
    s, t = x.s, x.t
    big_data = s.labeled_examples >= t.full_min_examples or s.domain_corpus_tokens >= t.full_min_tokens
    if not (big_data and _has(s, "domain") and full is not None and full.fits):
        return None
    if s.budget_usd is not None and (full.cost_usd is None or full.cost_usd > s.budget_usd):
        return None
    data = (
        f"{_n(s.labeled_examples)} examples"
        if s.labeled_examples >= t.full_min_examples
        else f"{_n(s.domain_corpus_tokens)} tokens"
    )
    return Fired(
        "full_when_justified",
        f"Full finetuning is justified: {data} in a new domain, and it fits ({full.device_gb:.1f} GB on "
        f"{full.gpus}x {full.gpu}" + (f", ${full.cost_usd:,.0f}" if full.cost_usd is not None else "") + ").",
        "full",
    )


def over_budget(x: Facts, chosen: Fit | None) -> Fired | None:
    """The planned run costs more than the budget: say so before anyone rents a GPU.

    Source: the planner's cost model (``ftharness plan``: hours x the catalogue's $/hour).
    """
    b = x.s.budget_usd
    if chosen is None or b is None or chosen.cost_usd is None or chosen.cost_usd <= b:
        return None
    return Fired(
        "over_budget",
        f"The planned {chosen.method} run costs about ${chosen.cost_usd:,.0f}, over the ${b:,.0f} budget: "
        "train on fewer examples or epochs, or pick a cheaper GPU from the plan.",
        "constraint",
    )
