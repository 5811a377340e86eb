"""What a comparison measured and decided: the records ``ftharness.compare`` builds (per option, per sweep
point and sweep, per phase, the paired statistics and the decision), that the run folder's ``state/``
keeps for a resumed run and that results.json carries (``ftharness.report.results``).

They live in the reports layer, below the comparison, so the reports read them without importing the
comparison. Records follow ``ftharness.jsonrecord``: each field says what it means, ``to_json`` writes
them and ``from_json`` reads them back, those written by earlier versions included (``from_older``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ftharness.jsonrecord import doc
from ftharness.suites.gates import GateOutcome
from ftharness.suites.runner import SuiteResult
from ftharness.suites.slices import SliceBucket


@dataclass(kw_only=True)
class Training:
    """How a candidate was trained: the trainer's measurements and where the weights are."""

    wall_s: float = doc("seconds this candidate's own training took (as first trained, when reused)")
    total_wall_s: float = doc("wall_s plus the training of every candidate it starts from and of its earlier "
                              "halving stages")
    train_tokens: int = doc("tokens that went through the model in training (not padding)", default=0)
    tokens_per_s: float | None = doc("trained tokens per second", default=None)
    peak_memory_bytes: int = doc("peak memory while training, as measured_kind says", default=0)
    memory_kind: str = doc(
        "what peak_memory_bytes is: 'rss' (CPU process resident set) or 'cuda_max_allocated'", default="rss"
    )
    trainable_params: int = doc("parameters trained", default=0)
    total_params: int = doc("parameters of the model", default=0)
    loss_curve: list[dict[str, float | None]] = doc(
        "the trainer's log: {step, epoch, loss | eval_loss, ...} per logged step", default_factory=list
    )
    extra: dict[str, Any] = doc(
        "trainer-specific figures (global_step, stopped_early, DPO reward margins, ...)", default_factory=dict
    )
    cached: bool = doc("taken from the artifact cache instead of trained in this run", default=False)
    artifact: str = doc("the folder of the trained weights", default="")
    start_from: str | None = doc("the candidate it continues from", default=None)
    launch: Launch | None = doc("how many processes trained it and how they shared the model; null: one process",
                                default=None)


@dataclass(kw_only=True)
class Launch:
    """A training on several processes under ``accelerate launch`` (ftharness.training.launch)."""

    strategy: str = doc("ddp (whole model per process), fsdp (PyTorch FSDP2 full sharding), deepspeed-zero2 or "
                        "deepspeed-zero3")
    processes: int = doc("processes asked for")
    world_size: int = doc("processes the workers saw (torch.distributed's world size)")
    config: str | None = doc("the user's accelerate config file; null: the one the harness wrote", default=None)
    accelerate_config: str | None = doc("the text of the accelerate config launched with", default=None)


@dataclass(kw_only=True)
class Cost:
    """What serving the option cost on the eval rows, as measured on this machine."""

    prompt_tokens_mean: float = doc("prompt tokens per request")
    new_tokens_mean: float = doc("generated tokens per request")
    latency_s_mean: float | None = doc(
        "seconds per request: a request is answered when its batch ends, so each row counts its batch's wall "
        "time (ftharness.models.generation)"
    )
    latency_s_p50: float | None = doc("median seconds per request")
    generation_wall_s: float = doc(
        "seconds spent generating every eval row (an endpoint's rows answered from its cache count their "
        "latency as first measured, spread over its concurrency)"
    )
    tokens_per_s: float | None = doc("generated tokens per second of generation")
    hit_max_new_tokens: int = doc("rows cut by the max_new_tokens limit")


@dataclass(kw_only=True)
class EndpointUsage:
    """A baseline answered by an OpenAI-compatible server (``kind: endpoint``): its usage and its cost at
    the prices the task states. The API key is never recorded."""

    base_url: str = doc("the server's API root")
    model: str = doc("the model name sent")
    requests: int = doc("eval rows answered")
    cached: int = doc("rows answered from the on-disk cache of an earlier run: no call made for them")
    attempts: int = doc("HTTP requests sent, retries included (cached rows send none)")
    without_usage: int = doc("rows whose answer reported no token usage (counted as 0 tokens)")
    cut: int = doc("rows whose answer was longer than max_tokens tokens can be, cut to that length "
                   "(ftharness.models.endpoint)", default=0)
    input_tokens: int = doc("prompt tokens over every row, as the server counted them (usage.prompt_tokens)")
    output_tokens: int = doc("completion tokens over every row (usage.completion_tokens)")
    price_per_million_input: float = doc("the stated USD price per million input tokens")
    price_per_million_output: float = doc("the stated USD price per million output tokens")
    usd: float = doc("the eval rows' cost: tokens x the stated prices")
    usd_per_1k_requests: float = doc("usd per 1,000 requests like the eval rows")


@dataclass(kw_only=True)
class MergedLatency:
    """The same prompts served with the adapter attached and with it merged into the weights."""

    n: int = doc("prompts timed")
    adapter_latency_s_mean: float = doc("seconds per prompt with the adapter attached")
    merged_latency_s_mean: float = doc("seconds per prompt with the adapter merged")
    adapter_wall_s: float = doc("seconds for all prompts, adapter attached")
    merged_wall_s: float = doc("seconds for all prompts, merged")
    same_outputs: bool = doc("both gave the same outputs")


@dataclass(kw_only=True)
class MemoryRow:
    """The planner's peak training memory next to the measured one, and whether they compare."""

    planned_peak_gb: float | None = doc("the planner's accelerator peak, GB (null: no plan)")
    measured_peak_gb: float = doc("the measured peak, GB")
    measured_kind: str = doc("how it was measured: 'rss' or 'cuda_max_allocated'")
    comparable: bool = doc("measured as the planner predicts (CUDA allocated memory)")
    note: str = doc("what the measurement is, and why it does or does not compare with the plan")
    plan_error: str | None = doc("why no plan could be made", default=None)


def memory_row(training: Training | None, plan: dict[str, Any] | None, plan_error: str | None) -> MemoryRow | None:
    """The planner's estimate next to the trainer's measured peak (None for an option not trained)."""
    if training is None:
        return None
    comparable = training.memory_kind.startswith("cuda")
    note = (
        "measured with torch.cuda.max_memory_allocated: comparable with the plan"
        if comparable
        else "measured as CPU process RSS (whole process: Python, libraries, data), not CUDA allocated "
        "memory: not directly comparable with the plan's accelerator peak"
    )
    return MemoryRow(
        planned_peak_gb=plan.get("peak_gb") if plan else None,
        measured_peak_gb=training.peak_memory_bytes / 1e9,
        measured_kind=training.memory_kind,
        comparable=comparable,
        note=note,
        plan_error=plan_error,
    )


@dataclass(kw_only=True)
class Distillation:
    """How a distilled candidate's training rows were made: its teacher's labels of its inputs, the labels
    kept, and what labelling cost (``ftharness.compare.distill``)."""

    teacher: str = doc("the option whose outputs are the labels (a baseline or a candidate of the task)")
    teacher_kind: str = doc("what the teacher is: a baseline kind (zero-shot, few-shot, retrieved) or candidate")
    inputs: str = doc(
        "what was labelled: 'train' (the rows candidates train on, their labels dropped) or the unlabeled file"
    )
    excluded: int = doc("inputs left unlabelled because they also occur in the eval set or the validation split")
    labelled: int = doc("inputs the teacher labelled")
    kept: int = doc("labels kept as training rows")
    dropped: int = doc("labels dropped: not one JSON document valid under the task's schema (or empty)")
    drop_reasons: list[dict[str, Any]] = doc(
        "the most common schema errors of the dropped labels ({path, validator, count, example})",
        default_factory=list,
    )
    cached: bool = doc("the labels were read from the label cache, not generated in this run")
    key: str = doc("the label cache key (teacher identity, inputs, generation settings)")
    wall_s: float = doc("seconds the teacher took to label every input (as first labelled, when cached)")
    prompt_tokens: int = doc("prompt tokens the teacher read, all inputs together")
    new_tokens: int = doc("tokens the teacher wrote, all inputs together")
    usd: float | None = doc(
        "what labelling cost at the teacher's own token prices (an endpoint's; null: a local teacher, whose cost "
        "is its time)", default=None
    )
    price_basis: str = doc("where usd comes from, or why there is none", default="")


@dataclass(kw_only=True)
class RetrievalRecord:
    """How a retrieving option filled its prompts from the knowledge base (``ftharness.retrieval``)."""

    retriever: str = doc("the retriever plugin")
    description: str = doc("how it ranks, in its own words")
    k: int = doc("chunks in each prompt")
    settings: dict[str, Any] = doc("the retriever's settings")
    knowledge: str = doc("the knowledge base it read when served (data.knowledge)")
    knowledge_sha256: str = doc("its content hash")
    documents: int = doc("documents in it")
    chunks: int = doc("chunks they were split into")
    chunking: dict[str, Any] = doc("the chunking settings (tokens of the task's model)")
    training_knowledge: str | None = doc(
        "candidates: the knowledge base its training rows retrieved from, when not the served one", default=None
    )
    distractors: int | None = doc("candidates, RAFT: distractor chunks beside the gold one in training rows",
                                  default=None)
    oracle_fraction: float | None = doc("candidates, RAFT: share of training rows that kept the gold chunk",
                                        default=None)


# The four answers of the decision chart, simplest first: what must be built and kept running to serve it
# (nothing but a prompt; a retrieval index; a training pipeline; both). The decision prefers the simpler
# answer unless a more complex one beats it outside the noise (ftharness.compare.decision).
ANSWERS = ("prompt", "rag", "finetune", "rag+finetune")
Answer = Literal["prompt", "rag", "finetune", "rag+finetune"]


def answer_of(kind: str, retrieves: bool) -> str:
    """The decision chart's answer an option measures: prompting or training, with or without retrieval."""
    if kind == "baseline":
        return "rag" if retrieves else "prompt"
    return "rag+finetune" if retrieves else "finetune"


PLAN, MERGED_LATENCY = "plan", "merged latency"  # keys of OptionRecord.unavailable


@dataclass(kw_only=True)
class EngineRecord:
    """How an option's engine served it (``ftharness.models.engines``; the engine's ``record()``)."""

    name: str = doc("the engine that generated its rows: local (transformers here), openai (a hosted "
                    "OpenAI-compatible endpoint), server (a server the harness started), or a plugin's")
    served: str = doc("what answered: 'base model', 'merged' (a candidate's adapter folded into its weights), "
                      "'as trained' (attached adapter, or full weights), 'hosted' (an endpoint's model)")
    schema: str = doc("who enforces the task's schema on a constrained option: the local decoder, the server "
                      "(response_format), or 'not enforced: WHY'")
    weights: str = doc("where the suites that read weights (forgetting) scored it, or why they cannot")
    url: str | None = doc("the server's API root (a started server: its loopback address)", default=None)
    launcher: str | None = doc("what started the server (a started server: `transformers serve`, `vllm serve`)",
                               default=None)
    concurrency: int | None = doc("requests in flight at once (a server)", default=None)
    log: str | None = doc("the started server's log file", default=None)


@dataclass(kw_only=True)
class OptionRecord:
    """One option (a prompting baseline or a trained candidate) measured on the eval set."""

    name: str = doc("the option's name in the task file (a sweep point's name for a sweep finalist)")
    kind: Literal["baseline", "candidate"] = doc("baseline: prompting; candidate: trained")
    spec: dict[str, Any] = doc(
        "the option as the task file defines it, with its seed (and a candidate's data: train or preference)"
    )
    metrics: dict[str, float | None] = doc("every measured value by METRIC.VALUE (the first suite's, if several)")
    per_sample: dict[str, list[float | None]] = doc(
        "per-example scores by METRIC.VALUE, in eval-row order: what paired statistics and slices read"
    )
    gates: list[GateOutcome] = doc("every gate of its suites and of the task, checked")
    passed: bool = doc("every gate passed", init=False)
    slices: dict[str, dict[str, SliceBucket]] = doc(
        "per-sample scores by slice field (the task's and the suites'), then label (ftharness.suites.slices)"
    )
    suites: dict[str, SuiteResult] = doc("each suite's own result, by suite name")
    cost: Cost = doc("what serving it cost on the eval rows")
    training: Training | None = doc("how it was trained (candidates)", default=None)
    plan: dict[str, Any] | None = doc(
        "the planner's estimate for training it here (the `ftharness plan --json` document; candidates)",
        default=None,
    )
    merged_latency: MergedLatency | None = doc(
        "adapter vs merged serving time (candidates, when decision.merged_latency_prompts asks)", default=None
    )
    unavailable: dict[str, str] = doc(
        "estimates that could not be made ('plan', 'merged latency') and suites that could not run on it "
        "('suite NAME': an endpoint's weights cannot be read), and why",
        default_factory=dict,
    )
    served: Literal["merged", "as trained"] | None = doc(
        "how a candidate generated: its adapter merged into the weights, or as trained (an adapter that "
        "cannot be merged, or a full model); None for baselines",
        default=None,
    )
    distillation: Distillation | None = doc(
        "how a distilled candidate's training rows were labelled by its teacher, and the labelling cost",
        default=None,
    )
    retrieval: RetrievalRecord | None = doc(
        "how it retrieved from the knowledge base (null: it retrieves nothing)", default=None
    )
    answer: Answer = doc(
        "which answer of the decision chart it measures: prompt, rag (prompting with retrieval), finetune, "
        "rag+finetune (a candidate trained and served with retrieval)", init=False
    )
    memory: MemoryRow | None = doc("planned vs measured training memory (candidates)", init=False)
    endpoint: EndpointUsage | None = doc(
        "the server, token usage and cost of a baseline answered by an endpoint (null: a local model)", default=None
    )
    engine: EngineRecord | None = doc(
        "the engine that served it and how (null: written before engines were recorded)", default=None
    )
    samples_file: str = doc("its per-sample outputs, relative to the run folder")
    reused: bool = doc("taken from an earlier, interrupted run of the same task", default=False)

    def __post_init__(self) -> None:
        self.passed = all(g.passed for g in self.gates)
        self.answer = answer_of(self.kind, self.retrieval is not None)
        self.memory = memory_row(self.training, self.plan, self.unavailable.get(PLAN))

    @staticmethod
    def from_older(data: dict[str, Any]) -> dict[str, Any]:
        """Schema 1 put an estimate that could not be made as ``{"error": why}`` in its place."""
        unavailable = dict(data.get("unavailable") or {})
        for key, what in (("plan", PLAN), ("merged_latency", MERGED_LATENCY)):
            value = data.get(key)
            if isinstance(value, dict) and set(value) == {"error"}:
                unavailable[what], data[key] = str(value["error"]), None
        data["unavailable"] = unavailable
        return data


@dataclass(kw_only=True)
class PointOutput:
    """One validation row's output."""

    id: int = doc("position of the row in the validation split")
    output: str = doc("the sweep point's output for it")


@dataclass(kw_only=True)
class SweepPoint:
    """One trained point of a sweep, served on the validation rows."""

    name: str = doc("the point's candidate name")
    hyperparameters: dict[str, Any] = doc("its hyperparameters")
    replay_fraction: float | None = doc("its replay fraction (null: no replay)", default=None)
    metrics: dict[str, float | None] = doc(
        "values measured without the eval set, by METRIC.VALUE: the suites that read outputs on the validation "
        "rows, and the metrics of the model that have a selection setting (forgetting on the selection part "
        "of its reference)"
    )
    validation_loss: float | None = doc("the kept (best) checkpoint's loss on the validation rows")
    stopped_early: bool | None = doc("training stopped early on the validation loss")
    restored_best_from_step: int | None = doc("the step whose checkpoint was restored as the best")
    training_wall_s: float | None = doc("seconds its training took")
    global_step: int | None = doc("optimizer steps taken")
    outputs: list[PointOutput] = doc("its output on each validation row")
    gates: list[GateOutcome] = doc(
        "the gates measurable without the eval set, checked on those values (a gate on a value that has no "
        "selection measurement, such as forgetting's QA accuracy, is left out)", default_factory=list)
    feasible: bool | None = doc("every gate in gates passed (null: not checked)", default=None)
    rungs: list[Rung] = doc("halving: the point's validation at each budget it reached, in order (empty: grid)",
                            default_factory=list)


@dataclass(kw_only=True)
class Rung:
    """One budget of successive halving that a sweep point was trained to and validated at."""

    rung: int = doc("0 for the first budget, then 1, 2, ...")
    steps: int = doc("optimizer steps trained when validated")
    value: float | None = doc("the decision metric on validation")
    feasible: bool = doc("every gate measurable without the eval set passed")
    promoted: bool = doc("it went on to the next budget")


@dataclass(kw_only=True)
class Selection:
    """One sweep: every point's validation figures, and the finalist chosen on them
    (``ftharness.compare.selection``)."""

    chosen: str = doc("the finalist: the only point that meets the eval set")
    metric: str = doc("the decision metric it was chosen on (then parse rate, then validation loss)")
    on: Literal["validation"] = doc("the rows it was chosen on: always the validation split, never eval")
    n: int = doc("validation rows")
    points: list[SweepPoint] = doc("every point of the sweep")
    strategy: Literal["grid", "halving"] = doc(
        "grid: every point trained to its full budget; halving: successive halving (ftharness.compare.selection)",
        default="grid")
    feasible: bool = doc(
        "the finalist passes every gate measurable without the eval set; false: no point did, and the "
        "least-bad one was kept by the documented rule", default=True)
    steps_trained: int | None = doc("optimizer steps trained over all points (null: not counted)", default=None)
    steps_grid: int | None = doc("the steps a grid over the same points trains", default=None)


@dataclass(kw_only=True)
class DataFile:
    """One data file of the run (or the validation split carved from the training file)."""

    path: str | None = doc("the file (null: the validation split is carved from train)")
    sha256: str | None = doc("its content hash (of the rows, for a carved split)")
    n: int = doc("rows")
    carved_from: str | None = doc("validation only: the file it was carved from", default=None)
    fraction: float | None = doc("validation only: the share of the training rows carved off", default=None)
    trained_on: int | None = doc("validation only: training rows left for the candidates", default=None)


@dataclass(kw_only=True)
class Phase:
    """One measured part of a run."""

    phase: str = doc("what ran: load data, load model, train, generate, validate: ..., score: SUITE, ...")
    option: str | None = doc("the option it ran for (null: the run as a whole)")
    wall_s: float | None = doc("seconds it took")
    peak_memory_bytes: int | None = doc("peak memory during the phase, as memory_kind says")
    memory_kind: str | None = doc("'rss' (CPU process resident set) or 'cuda_max_allocated'")


@dataclass
class PairedComparison:
    """An option against a reference on the same eval rows: the paired difference and whether it is
    outside the noise."""

    option: str = doc("the option compared")
    reference: str = doc("what it is compared with (the best option of a simpler answer, or of another one)")
    metric: str = doc("the per-example score compared (METRIC.VALUE)")
    n: int = doc("paired examples")
    mean_option: float = doc("the option's mean score")
    mean_reference: float = doc("the reference's mean score")
    diff: float = doc("mean(option - reference); positive: the option scores higher")
    ci_low: float = doc("lower end of the bootstrap interval of diff")
    ci_high: float = doc("upper end of the bootstrap interval of diff")
    confidence: float = doc("the interval's confidence level")
    p_value: float = doc("two-sided p-value of no difference (paired approximate randomization)")
    verdict: Literal["better", "worse", "inconclusive", "same"] = doc(
        "from the option's side: better or worse when the whole interval is on one side of zero, "
        "inconclusive when it contains zero, same when every paired score is equal"
    )
    method: str = doc(
        "how the interval and p-value were computed",
        default="paired bootstrap percentile CI; paired sign-flip randomization test",
    )


@dataclass
class Interval:
    """The bootstrap interval of one option's mean score."""

    metric: str = doc("the per-example score (METRIC.VALUE)")
    low: float | None = doc("lower end (null: no scores)")
    high: float | None = doc("upper end (null: no scores)")
    confidence: float = doc("the confidence level")


@dataclass(kw_only=True)
class OptionCost:
    """What an option costs to train and to serve, from what was measured and the task's stated prices."""

    prompt_tokens_mean: float = doc("prompt tokens per request")
    latency_s_mean: float | None = doc("seconds per request, measured on this machine")
    monthly_prompt_usd: float = doc("prompt tokens x requests per month x the stated token price")
    requests_per_month: int = doc("the task's stated request volume")
    usd_per_prompt_token: float = doc(
        "the stated price of one prompt token: the endpoint's input price for an endpoint, else the task's"
    )
    usd_per_1k_requests: float | None = doc(
        "serving cost of 1,000 requests: an endpoint's input and output tokens at its prices; a local "
        "option's prompt tokens at the task's prompt price",
        default=None,
    )
    training_s: float = doc(
        "seconds of training, with every candidate it starts from and, for a distilled candidate, its teacher's "
        "labelling (0: prompting)"
    )
    training_usd: float = doc(
        "training_s at the hourly price of price_basis; a distilled candidate's labelling at its teacher's "
        "token prices where it has them (an endpoint), else at that hourly price"
    )
    price_basis: str = doc("the hourly price used for training and where it comes from ('': not trained)")


@dataclass(kw_only=True)
class Decision:
    """The verdict over every measured option, with its reasons and the costs it weighed."""

    verdict: Literal["prompt", "rag", "finetune", "rag+finetune", "none"] = doc(
        "the answer of the recommended option (OptionRecord.answer): prompt or rag when a prompting option is "
        "kept, finetune or rag+finetune when a trained candidate wins outside the noise; none: no option "
        "passes every gate"
    )
    recommended: str | None = doc("the recommended option (null: none)")
    recommended_kind: Literal["baseline", "candidate"] | None = doc("its kind (null: none)")
    passes_all_gates: bool = doc("the recommended option passes every gate (the exit code is 0 then)")
    headline: str = doc("the decision in one line")
    reasons: list[str] = doc("why, one line each: gates that failed, the noise, costs")
    metric: str = doc("the decision metric: what 'better' is judged on (METRIC.VALUE)")
    best_baseline: str | None = doc("the best prompting option on the decision metric")
    comparison: PairedComparison | None = doc(
        "the recommended candidate (when nothing passes: the best candidate) against the best prompting "
        "option; null when no candidate is weighed or there are no paired scores (comparison_note)",
        default=None,
    )
    comparison_note: str | None = doc("why no comparison was made, when one was sought", default=None)
    comparisons: list[PairedComparison] = doc(
        "the recommended option (when nothing passes: the best one) against the best option of every other "
        "answer, by the decision metric", default_factory=list,
    )
    costs: dict[str, OptionCost] = doc("every option's training and serving cost, by name")
    assumptions: list[str] = doc("the prices and confidence level the decision assumes")

    @staticmethod
    def from_older(data: dict[str, Any]) -> dict[str, Any]:
        """Schema 1 put ``{"note": why}`` in ``comparison`` when there were no paired scores."""
        c = data.get("comparison")
        if isinstance(c, dict) and "ci_low" not in c:
            data["comparison"], data["comparison_note"] = None, c.get("note")
        return data
