"""The task file of ``ftharness compare``: what to compare, on which data, judged by which gates.

A task file is YAML (or JSON) read strictly through :func:`ftharness.typed.from_mapping`; every mistake
a user can make in it (an unknown field, trainer or method, a missing data file, a hyperparameter the
candidate's trainer does not accept, at any point of a sweep, ``start_from`` naming an unknown candidate or
making a cycle, a distilled candidate's ``teacher`` naming no option, itself or an option that depends on
it, a gate that cannot be read, a gate or ``decision.metric`` on a value no suite of the task
computes, a ``target_modules`` name the base model has no layer for) is a
:class:`~ftharness.errors.BadInput` naming the file and field, before any work starts. Hyperparameters are checked by
:func:`ftharness.training.spec.validate_candidate`, as ``ftharness train`` and the training itself check them.

A sweep is one line: ``sweep: {r: [4, 8, 16, 32]}`` on a candidate expands into one candidate per value
(``lora-r4``, ``lora-r8``...; several keys give their product). Every point is trained, and the validation
split (``validation:``, carved from the training data) chooses one finalist per sweep: only finalists meet
the eval set. The eval set never teaches or selects.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from ftharness.data.knowledge import ChunkingSpec
from ftharness.errors import BadInput
from ftharness.models.endpoint import EndpointConfig, check_endpoint
from ftharness.models.engines import EngineChoice, engine_choice
from ftharness.paths import package_data
from ftharness.planner.strategies import LaunchSettings
from ftharness.retrieval import RetrievalSpec
from ftharness.suites.gates import Gate, parse_gate
from ftharness.typed import from_mapping, load_json_schema, load_mapping, resolve_path, spec, text_or_file

DEFAULT_TASK = package_data("bundled", "extraction", "task.yaml")  # examples/extraction/, packaged
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


@dataclass
class DataFiles:
    train: str
    eval: str
    preference: str | None = None
    corpus: str | None = spec(None, help="raw text for continued pretraining: a .txt file, a folder of them, or "
                                         "JSONL with a `text` field (ftharness.data.corpus)")
    knowledge: str | None = spec(None, help="the knowledge base retrieving options read: JSONL of {id, title?, "
                                            "text}, or a folder of .txt/.md files (ftharness.data.knowledge)")


@dataclass
class GenerationSpec:
    """Generation settings shared by every option (ftharness.models.generation.GenerationSettings)."""

    max_new_tokens: int = spec(256, ge=1)
    batch_size: int = spec(16, ge=1)
    do_sample: bool = False
    temperature: float = spec(1.0, ge=0)
    top_p: float = spec(1.0, ge=0, le=1)
    stop: list[str] = spec(factory=list)


@dataclass
class BaselineEntry:
    name: str
    kind: Literal["zero-shot", "few-shot", "retrieved", "rag", "endpoint"] = spec(
        "zero-shot",
        help="zero-shot, few-shot, retrieved: prompting the base model (retrieved: training examples as shots); "
             "rag: the base model reading the knowledge base's chunks its `retrieval:` finds, with the shots "
             "`shots:` names; endpoint: prompting a model behind an OpenAI-compatible server (`endpoint:`), "
             "with the prompt `shots:` names (and chunks, with `retrieval:`)",
    )
    k: int = spec(5, ge=1)
    seed: int | None = None  # None: the task's seed
    constrained: Literal["json-schema"] | None = spec(
        None, help="json-schema: decoding may only produce JSON valid under the task's schema"
    )
    shots: Literal["zero-shot", "few-shot", "retrieved"] = spec(
        "zero-shot", help="kinds endpoint and rag: its shots, drawn as the local baseline of that kind draws them "
                          "(with k); a rag shot shows the chunks its own input retrieves"
    )
    endpoint: EndpointConfig | None = spec(None, help="kind endpoint: the server, the model and its prices")
    retrieval: RetrievalSpec | None = spec(
        None, help="kinds rag and endpoint: the retriever and how many chunks of data.knowledge go into each prompt"
    )
    engine: str | dict[str, Any] | None = spec(
        None, help="the engine that serves it and generates its answers: a name (local, server, or a plugin's) or "
                   "{kind: NAME, ...its settings}; null: the task's engine:, else local (ftharness.models.engines)"
    )

    @property
    def prompt_kind(self) -> str:
        """How its shots are drawn (ftharness.baselines.KINDS): its kind, or the ``shots`` of an endpoint or
        rag baseline."""
        return self.shots if self.kind in ("endpoint", "rag") else self.kind


@dataclass
class ValidationSpec:
    """The validation split that early stopping, checkpoint choice and sweep choice read.

    Carved from the training data (``ftharness.data.split.carve_validation``: deterministic, disjoint from
    what is trained on), or read from ``file``. 10 % with at least 16 rows: 16 rows resolve a validation
    parse-rate difference of about 0.25 between sweep points, enough to tell a working setting from a broken
    one; the eval set, not validation, carries the reported statistics.
    """

    fraction: float = spec(0.1, ge=0, le=0.5)
    min: int = spec(16, ge=1)
    file: str | None = None  # a JSONL file of validation rows (relative to the task file)


# Replay's default share: one general row for every five task rows, the mix practitioners' forgetting
# checklists give ("mix 20 % general data with task data"); rehearsal helps from small shares on
# (Scialom et al. 2022, Continual-T0: 1 %; Ibrahim et al. 2024 measure 0.5 % to 50 % when continuing to
# pretrain). Sweep it (`sweep: {replay.fraction: [0, 0.2]}`) and let validation and the selection part of the
# forgetting reference choose.
REPLAY_SOURCE = ("Scialom et al. 2022 (Fine-tuned Language Models are Continual Learners, arXiv:2205.12393); "
                 "Ibrahim et al. 2024 (Simple and Scalable Strategies to Continually Pre-train LLMs, "
                 "arXiv:2403.08763); Huang et al. 2024 (Self-Synthesized Rehearsal, arXiv:2403.01244) for `self`")
REPLAY_SOURCES = ("general", "self")


@dataclass
class ReplaySpec:
    """General text mixed into a supervised candidate's training rows against forgetting
    (``ftharness.compare.replay``)."""

    fraction: float = spec(0.2, ge=0, lt=1, source=REPLAY_SOURCE,
                           help="replay rows per task training row (0.2: one in five); 0 turns replay off")
    source: str = spec(
        "self",
        help="self: the base model's own answers to general prompts (one per document of the bundled "
             "reference's replay part), generated once and cached (self-synthesized rehearsal); general: the "
             "paragraphs of that replay part (no document of the forgetting reference's test or selection "
             "part, but the same kind of text, so it flatters the bundled forgetting gate); or a file: JSONL "
             "with `text`, or a .txt of documents separated by blank lines, relative to the task file",
    )


SWEEP_STRATEGIES = ("grid", "halving")
HALVING_SOURCE = ("Jamieson & Talwalkar 2016 (Non-stochastic Best Arm Identification and Hyperparameter "
                  "Optimization, AISTATS); Li et al. 2018 (Hyperband, JMLR: the minimum budget r and eta)")


@dataclass
class HalvingSpec:
    """Successive halving's settings (``ftharness.compare.selection``)."""

    eta: int = spec(2, ge=2, le=8, source=HALVING_SOURCE,
                    help="1 in eta validated points continues at each rung, and each rung trains eta times the "
                         "steps of the one before (the last: the full budget)")
    first: float | None = spec(
        None, gt=0, lt=1, source=HALVING_SOURCE,
        help="the first rung's share of the full budget; null: 1 / eta^(rungs - 1), with as many rungs as it "
             "takes to keep one point. Raise it when what is swept slows early learning (replay does): "
             "points judged too early rank as they would not at the end")


@dataclass
class CandidateEntry:
    name: str
    trainer: str = "peft"
    method: str = "lora"
    hyperparameters: dict[str, Any] = spec(factory=dict, help="checked against the trainer's class for the method")
    start_from: str | None = None
    data: Literal["train", "preference", "corpus"] | None = None  # None: what its method trains on (data_kind)
    sweep: dict[str, list[Any]] = spec(factory=dict, help="hyperparameter (or prompt) -> the values to try")
    seed: int | None = None
    prompt: Literal["instruction", "bare"] = spec(
        "instruction",
        help="instruction: the task instruction is the system turn at train and serve time; "
             "bare: the input alone, the instruction baked into the weights by training",
    )
    constrained: Literal["json-schema"] | None = None
    teacher: str | None = spec(
        None, help="distill: the baseline or candidate of this task whose outputs label the student's inputs"
    )
    retrieval: RetrievalSpec | None = spec(
        None, help="retrieval-augmented finetuning: training rows hold the chunks their input retrieves, exactly "
                   "as served (or RAFT's gold and distractor chunks, with `distractors:`); served with the top k "
                   "chunks of data.knowledge"
    )
    unlabeled: str | None = spec(
        None, help="distill: a JSONL of inputs without outputs for the teacher to label (relative to the task "
                   "file); null: the training rows candidates train on, their labels dropped"
    )
    replay: ReplaySpec | None = spec(
        None, help="mix general text into supervised training against forgetting: {fraction, source}"
    )
    sweep_strategy: Literal["grid", "halving"] = spec(
        "grid", help="grid: train every sweep point to its full budget; halving: successive halving on "
                     "validation, the better half continuing at each budget (ftharness.compare.selection)"
    )
    halving: HalvingSpec | None = spec(
        None, help="successive halving's settings {eta, first} (with sweep_strategy: halving; null: eta 2, "
                   "first rung at 1 / eta^(rungs - 1) of the budget)"
    )
    engine: str | dict[str, Any] | None = spec(
        None, help="the engine that serves it and generates its answers: a name (local, server, or a plugin's) or "
                   "{kind: NAME, ...its settings}; null: the task's engine:, else local (ftharness.models.engines)"
    )
    launch: LaunchSettings | None = spec(
        None, help="train on several processes under accelerate launch: {processes, strategy: ddp | fsdp | "
                   "deepspeed-zero2 | deepspeed-zero3, config: an accelerate config file}; null: one process "
                   "(ftharness.training.launch)"
    )

    def system_prompt(self, instruction: str | None) -> str | None:
        """The system turn this candidate trains and is served with."""
        return None if self.prompt == "bare" else instruction


@dataclass
class DecisionSpec:
    """What the decision weighs. Prices are assumptions the report states, not facts."""

    metric: str = "format.parse_rate"  # what "better" is judged on (validation choice and the decision)
    higher_is_better: bool = True
    gpu: str | None = None  # planner catalogue name: price a GPU training by it
    cpu_usd_per_hour: float = spec(0.10, ge=0)
    requests_per_month: int = spec(100_000, ge=0)
    usd_per_million_prompt_tokens: float = spec(0.10, ge=0)
    confidence: float = spec(0.95, ge=0.5, le=0.999)
    bootstrap_samples: int = spec(10_000, ge=100)
    merged_latency_prompts: int = spec(8, ge=0)


@dataclass
class TaskSpec:
    """The task file as written (paths still relative to it)."""

    data: DataFiles
    name: str = "task"
    base_model: str | None = None  # None / "embedded": the embedded default
    instruction: str | None = None
    instruction_file: str | None = None
    schema: str | None = None
    slices: list[str] = field(default_factory=list)
    seed: int = 0
    chunking: ChunkingSpec = field(default_factory=ChunkingSpec)
    validation: ValidationSpec = field(default_factory=ValidationSpec)
    generation: GenerationSpec = field(default_factory=GenerationSpec)
    baselines: list[BaselineEntry] = field(default_factory=list)
    candidates: list[CandidateEntry] = field(default_factory=list)
    suites: list[str] = field(default_factory=list)
    gates: dict[str, str] = field(default_factory=dict)
    decision: DecisionSpec = field(default_factory=DecisionSpec)
    engine: str | dict[str, Any] | None = None  # every option's engine unless it names its own (null: local)
    # experiment trackers the finished run is logged to, by name, with their settings ({mlflow: {}})
    trackers: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Task:
    """A checked task: resolved paths, expanded sweeps, candidates in training order."""

    spec: TaskSpec
    file: Path
    train_path: Path
    eval_path: Path
    preference_path: Path | None
    corpus_path: Path | None
    schema_path: Path | None
    schema: dict | None
    instruction: str | None
    candidates: list[CandidateEntry]  # expanded, parents before children
    gates: list[Gate]
    suites: list[str] = field(default_factory=list)  # names, or paths resolved against the task file
    validation_path: Path | None = None
    sweeps: dict[str, list[str]] = field(default_factory=dict)  # sweep name -> its points' candidate names
    unlabeled_paths: dict[str, Path] = field(default_factory=dict)  # candidate name -> its `unlabeled:` file
    knowledge_path: Path | None = None  # data.knowledge: what retrieving options read when served
    training_knowledge: dict[str, Path] = field(default_factory=dict)  # candidate -> its retrieval.knowledge
    replay_paths: dict[str, Path] = field(default_factory=dict)  # candidate -> its replay file (source: a file)
    # candidate -> its hyperparameters typed by its trainer's class, defaults filled: checked once, at load
    # (check_trainers), and what training, planning and the records read
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    # option -> the engine that serves it, its settings typed by the engine: checked once, at load (check_engines)
    engines: dict[str, EngineChoice] = field(default_factory=dict)
    trackers: dict[str, Any] = field(default_factory=dict)  # tracker name -> its settings, typed by the tracker

    @property
    def name(self) -> str:
        return self.spec.name


def load_task(path: str | Path | None = None, *, check_plugins: bool = True) -> Task:
    """Read and check a task file (the bundled example when ``path`` is None).

    ``check_plugins=False`` skips loading the suites and the GPU catalogue. The candidates' trainers are
    always checked: what a candidate trains on is its method's declaration.
    """
    path = Path(path) if path is not None else DEFAULT_TASK
    raw = load_mapping(path)
    spec = from_mapping(TaskSpec, raw, source=path)
    return check_task(spec, path, check_plugins=check_plugins)


def check_task(spec: TaskSpec, path: Path, *, check_plugins: bool = True) -> Task:
    def need_file(value: str | None, fld: str) -> Path | None:
        p = resolve_path(value, path)
        if p is not None and not p.is_file():
            raise BadInput(f"file not found: {p}", file=path, field=fld)
        return p

    train_path = need_file(spec.data.train, "data.train")
    eval_path = need_file(spec.data.eval, "data.eval")
    preference_path = need_file(spec.data.preference, "data.preference")
    corpus_path = resolve_path(spec.data.corpus, path)
    schema_path = need_file(spec.schema, "schema")
    validation_path = need_file(spec.validation.file, "validation.file")
    instruction = text_or_file(spec.instruction, spec.instruction_file, names=("instruction", "instruction_file"),
                               source=path)
    schema = load_json_schema(schema_path, source=path, field="schema") if schema_path else None

    if not spec.baselines and not spec.candidates:
        raise BadInput("nothing to compare: add baselines and/or candidates", file=path)
    gates = [parse_gate(k, v, file=path) for k, v in spec.gates.items()]
    candidates = expand_sweeps(spec.candidates, path)
    sweeps = {c.name: [p.name for p in _sweep_points(c)] for c in spec.candidates if c.sweep}
    _check_names([b.name for b in spec.baselines], [c.name for c in candidates], path)
    _check_constraints(spec, candidates, schema, path)
    _check_endpoints(spec.baselines, path)
    knowledge_path, training_knowledge = check_retrieval(spec, candidates, path)
    check_teachers(spec.baselines, candidates, path)
    candidates = order_candidates(candidates, path)
    typed = check_trainers(spec.candidates, path)
    engines = check_engines(spec, candidates, path)
    candidates = check_launches(candidates, path)
    trackers = check_trackers(spec, path)
    unlabeled_paths = {c.name: need_file(c.unlabeled, f"candidates.{c.name}.unlabeled") for c in candidates
                       if c.unlabeled}
    replay_paths = check_replay(candidates, path)
    for c in candidates:
        if data_kind(c) == "preference" and preference_path is None:
            raise BadInput(
                "this candidate trains on preference pairs but data.preference is not set",
                file=path,
                field=f"candidates.{c.name}.data",
            )
        if data_kind(c) == "corpus" and corpus_path is None:
            raise BadInput(
                "this candidate trains on a raw-text corpus but data.corpus is not set",
                file=path,
                field=f"candidates.{c.name}.data",
            )
    if corpus_path is not None:
        from ftharness.data.corpus import check_corpus

        check_corpus(corpus_path, source=path, field="data.corpus")
    suites = [_suite_ref(name, path) for name in spec.suites]
    if check_plugins:
        if spec.decision.gpu:
            from ftharness.planner.catalogue import gpu_name

            try:
                spec.decision.gpu = gpu_name(spec.decision.gpu)
            except BadInput as e:
                raise BadInput(e.reason, file=path, field="decision.gpu") from None
        from ftharness.models.loading import is_embedded, local_model_dir

        if not is_embedded(spec.base_model):
            try:  # a GGUF file is converted here once, as the run would
                local_model_dir(spec.base_model)
            except BadInput as e:
                raise BadInput(e.reason if e.file is None else f"{e.reason}: {e.file}", file=path,
                               field="base_model") from None
        check_block_sizes(spec, candidates, path)
        if knowledge_path is not None:
            check_chunk_size(spec, path)
        from ftharness.suites.suite import load_suite, parse_gates

        measured: dict[str, dict[str, Any]] = {}  # every metric the task's suites compute, with its settings
        for i, ref in enumerate(suites):
            try:
                suite = load_suite(ref)
            except BadInput as e:
                raise BadInput(
                    e.reason if e.file else f"{e.reason}",
                    file=e.file or path,
                    line=e.line,
                    field=e.field if e.file else f"suites[{i}]",
                ) from None
            for name, settings in suite.metrics.items():
                measured.setdefault(name, settings)
        owner = f"the task's suites ({', '.join(spec.suites) or 'none'})"
        parse_gates(spec.gates, measured, file=path, owner=owner)
        metric = spec.decision.metric
        if "." not in metric:
            raise BadInput("a metric is named METRIC.VALUE, e.g. task.field_accuracy", file=path,
                           field="decision.metric")
        parse_gates({metric: ">= 0"}, measured, file=path, owner=owner, field="decision.metric")
        check_candidate_layers(candidates, typed, spec.base_model, path)  # last: it imports transformers
    return Task(
        spec=spec,
        file=path,
        train_path=train_path,
        eval_path=eval_path,  # type: ignore[arg-type]
        preference_path=preference_path,
        corpus_path=corpus_path,
        schema_path=schema_path,
        schema=schema,
        instruction=instruction,
        candidates=candidates,
        gates=gates,
        suites=suites,
        validation_path=validation_path,
        sweeps=sweeps,
        unlabeled_paths=unlabeled_paths,  # type: ignore[arg-type]
        knowledge_path=knowledge_path,
        training_knowledge=training_knowledge,
        replay_paths=replay_paths,
        hyperparameters=typed,
        engines=engines,
        trackers=trackers,
    )


def _check_constraints(spec: TaskSpec, candidates: list[CandidateEntry], schema: dict | None, path: Path) -> None:
    """A constrained option needs the task's schema to constrain by."""
    if schema is not None:
        return
    for where, entries in (("baselines", spec.baselines), ("candidates", candidates)):
        for e in entries:
            if e.constrained:
                raise BadInput(
                    "constrained: json-schema needs the task's `schema:` file",
                    file=path,
                    field=f"{where}.{e.name}.constrained",
                )


def retrieving(entries: list[Any]) -> list[tuple[str, Any]]:
    """``(field prefix, entry)`` of every baseline and candidate whose prompts hold retrieved chunks."""
    return [(f"{where}.{e.name}.", e) for where, group in entries for e in group if e.retrieval is not None]


def check_retrieval(spec: TaskSpec, candidates: list[CandidateEntry], path: Path) -> tuple[Path | None, dict[str, Path]]:
    """Everything a retrieving option needs, checked before any work: a ``rag`` baseline has its
    ``retrieval:`` block; every block names an installed retriever whose settings it accepts; the knowledge
    bases (``data.knowledge``, a candidate's ``retrieval.knowledge``) load (every document checked:
    ``ftharness.data.knowledge.load_knowledge``); RAFT's ``distractors`` go on candidates only. Returns the
    task's knowledge base and each candidate's training knowledge base."""
    from ftharness.data.knowledge import load_knowledge
    from ftharness.plugins import get_plugins

    for b in spec.baselines:
        if b.kind == "rag" and b.retrieval is None:
            b.retrieval = RetrievalSpec()  # the documented default: bm25, k 2
        if b.retrieval is not None and b.kind not in ("rag", "endpoint"):
            raise BadInput("retrieval: is for kinds rag and endpoint; a local baseline that retrieves is kind: rag",
                           file=path, field=f"baselines.{b.name}.retrieval")
    users = retrieving([("baselines", spec.baselines), ("candidates", candidates)])
    knowledge_path = resolve_path(spec.data.knowledge, path)
    if knowledge_path is None:
        if users:
            where, _ = users[0]
            raise BadInput("this option retrieves but the task has no knowledge base: set data.knowledge (JSONL of "
                           "{id, title, text}, or a folder of .txt/.md files)", file=path, field=where + "retrieval")
        return None, {}
    load_knowledge(knowledge_path, source=path, field="data.knowledge")
    from ftharness.data.knowledge import check_chunking

    check_chunking(spec.chunking, None, file=path)
    training: dict[str, Path] = {}
    for where, e in users:
        r = e.retrieval
        retriever = get_plugins().retriever(r.retriever, file=path, field=where + "retrieval.retriever")
        check = getattr(retriever, "check_settings", None)
        if callable(check):
            r.settings = check(dict(r.settings), source=path)
        if where.startswith("baselines.") and (r.distractors is not None or r.knowledge is not None):
            extra = "distractors" if r.distractors is not None else "knowledge"
            raise BadInput(f"{extra}: shapes a candidate's training rows; a baseline reads data.knowledge as served",
                           file=path, field=where + "retrieval." + extra)
        kb_path = knowledge_path
        if r.knowledge is not None:
            kb_path = training[e.name] = resolve_path(r.knowledge, path)
        kb = load_knowledge(kb_path, source=path, field=where + "retrieval.knowledge") if r.knowledge else None
        if r.distractors is not None:
            _check_gold_ids(spec, path, kb or load_knowledge(kb_path))
    return knowledge_path, training


def _check_gold_ids(spec: TaskSpec, path: Path, kb: Any) -> None:
    """RAFT builds each training row around its gold document: every row names one (``doc_id`` or
    ``doc_ids``) that the knowledge base holds."""
    from ftharness.data.knowledge import check_gold
    from ftharness.data.loading import load_dataset

    docs = {d.id for d in kb.documents}
    for ex in load_dataset(resolve_path(spec.data.train, path)).examples:
        check_gold(ex, docs, kb.path)


def check_chunk_size(spec: TaskSpec, path: Path) -> None:
    """A chunk fits the base model's positions (its config.json) with room for the rest of the prompt."""
    import json

    from ftharness.data.knowledge import check_chunking
    from ftharness.models.loading import local_model_dir
    from ftharness.training.sequences import max_positions

    try:
        config = local_model_dir(None if spec.base_model == "embedded" else spec.base_model) / "config.json"
    except BadInput as e:
        raise BadInput(e.reason, file=path, field="base_model") from None
    positions = max_positions(json.loads(config.read_text(encoding="utf-8")))
    check_chunking(spec.chunking, positions, file=path)


def _check_endpoints(baselines: list[BaselineEntry], path: Path) -> None:
    """An endpoint baseline has its ``endpoint:`` (checked by ``check_endpoint``: URL, key variable set) and
    decodes on the server, unconstrained; ``endpoint:`` and ``shots:`` belong to endpoint baselines only."""
    for b in baselines:
        where = f"baselines.{b.name}."
        if b.kind != "endpoint":
            if b.endpoint is not None or (b.shots != "zero-shot" and b.kind != "rag"):
                extra, kinds = ("endpoint", "kind: endpoint") if b.endpoint is not None else ("shots", "kinds endpoint and rag")
                raise BadInput(f"{extra}: is for {kinds}; a local baseline's kind is its prompt",
                               file=path, field=where + extra)
            continue
        if b.endpoint is None:
            raise BadInput("kind: endpoint needs `endpoint: {base_url, model, price_per_million_input, "
                           "price_per_million_output}`", file=path, field=where + "endpoint")
        if b.constrained:
            raise BadInput("an endpoint decodes on its server: schema-constrained decoding applies to local "
                           "options only; drop it (the format suite measures the endpoint's parse rate)",
                           file=path, field=where + "constrained")
        check_endpoint(b.endpoint, file=path, field=where + "endpoint")


def check_engines(spec: TaskSpec, candidates: list[CandidateEntry], path: Path) -> dict[str, EngineChoice]:
    """Each option's engine (``ftharness.models.engines.engine_choice``): an endpoint baseline's is
    ``openai`` with its ``endpoint:``; any other option's is its ``engine:``, else the task's, else local. A
    schema-constrained option needs an engine that enforces the schema (``enforces_schema``)."""
    from ftharness.plugins import get_plugins

    plugins = get_plugins()
    out: dict[str, EngineChoice] = {}
    for where, e in [*((f"baselines.{b.name}", b) for b in spec.baselines),
                     *((f"candidates.{c.name}", c) for c in candidates)]:
        if getattr(e, "kind", None) == "endpoint":
            if e.engine is not None:
                raise BadInput("an endpoint baseline is served by its endpoint: (engine openai); drop engine:",
                               file=path, field=where + ".engine")
            out[e.name] = EngineChoice("openai", e.endpoint)
            continue
        field_name = where + ".engine" if e.engine is not None else "engine"
        choice = engine_choice(e.engine, spec.engine, file=path, field=field_name, plugins=plugins)
        enforces = getattr(plugins.engine(choice.name), "enforces_schema", None)
        if e.constrained and callable(enforces) and not enforces(choice.settings):
            raise BadInput(f"engine {choice.name!r} as set cannot enforce the task's schema (constrained: json-schema); "
                           "serve this option with engine: local, or a launcher that enforces it (vllm)",
                           file=path, field=field_name)
        out[e.name] = choice
    return out


def check_launches(candidates: list[CandidateEntry], path: Path) -> list[CandidateEntry]:
    """Each candidate's ``launch:`` with its config resolved against the task file (None: one process)."""
    from ftharness.training.launch import check_launch

    return [replace(c, launch=check_launch(c.launch, source=path, field=f"candidates.{c.name}.launch"))
            for c in candidates]


def check_trackers(spec: TaskSpec, path: Path) -> dict[str, Any]:
    """Each tracker the task names (``trackers: {NAME: {settings}}``): registered, able to log from here
    (EnvironmentProblem, exit 3, before any work), its settings typed by its ``check_settings``."""
    from ftharness.errors import EnvironmentProblem
    from ftharness.plugins import get_plugins

    out: dict[str, Any] = {}
    for name, settings in spec.trackers.items():
        where = f"trackers.{name}"
        tracker = get_plugins().entry("trackers", name, file=path, field=where).obj
        if not isinstance(settings, dict):
            raise BadInput(f"a tracker's settings are a mapping (or {{}}), not {type(settings).__name__}",
                           file=path, field=where)
        why = tracker.unavailable_reason()
        if why:
            raise EnvironmentProblem(f"{path}: {where}: tracker {name!r} cannot log from here: {why}")
        check = getattr(tracker, "check_settings", None)
        out[name] = check(dict(settings), source=path, field=where) if callable(check) else dict(settings)
    return out


def _suite_ref(name: str, task_file: Path) -> str:
    """A suite named by path is read relative to the task file; a bare name is looked up in suites/."""
    if name.endswith((".yaml", ".yml", ".json")) or "/" in name:
        return str(resolve_path(name, task_file))
    return name


def expand_sweeps(entries: list[CandidateEntry], path: Path) -> list[CandidateEntry]:
    """One candidate per point of each sweep's grid, named ``NAME-KEYVALUE`` (``lora-r8``)."""
    out: list[CandidateEntry] = []
    for c in entries:
        if c.halving is not None and c.sweep_strategy != "halving":
            raise BadInput("halving: settings need sweep_strategy: halving", file=path,
                           field=f"candidates.{c.name}.halving")
        if not c.sweep:
            if c.sweep_strategy == "halving":
                raise BadInput("halving chooses among sweep points; add a sweep: or drop sweep_strategy",
                               file=path, field=f"candidates.{c.name}.sweep_strategy")
            out.append(c)
            continue
        for key, values in c.sweep.items():
            if not values:
                raise BadInput(
                    "a sweep needs at least one value", file=path, field=f"candidates.{c.name}.sweep.{key}"
                )
            if key == "prompt" and any(v not in ("instruction", "bare") for v in values):
                raise BadInput(
                    "a prompt sweep takes instruction and/or bare",
                    file=path,
                    field=f"candidates.{c.name}.sweep.prompt",
                )
            if key in c.hyperparameters:
                raise BadInput(
                    "swept and also fixed in hyperparameters; keep one",
                    file=path,
                    field=f"candidates.{c.name}.sweep.{key}",
                )
            if key.startswith("replay."):
                if key != "replay.fraction":
                    raise BadInput("of replay, a sweep varies only replay.fraction", file=path,
                                   field=f"candidates.{c.name}.sweep.{key}")
                for v in values:
                    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v < 1:
                        raise BadInput(f"replay.fraction takes numbers in [0, 1), got {v!r}", file=path,
                                       field=f"candidates.{c.name}.sweep.{key}")
        out.extend(_sweep_points(c))
    return out


SWEPT_FIELDS = ("prompt",)  # candidate fields a sweep may vary besides the trainer's hyperparameters


def _sweep_points(c: CandidateEntry) -> list[CandidateEntry]:
    keys = list(c.sweep)
    points = []
    for point in itertools.product(*(c.sweep[k] for k in keys)):
        values = dict(zip(keys, point, strict=True))
        suffix = "-".join(f"{_short(k)}{_fmt(v)}" for k, v in values.items())
        fields: dict[str, Any] = {k: values.pop(k) for k in SWEPT_FIELDS if k in values}
        if "replay.fraction" in values:
            fields["replay"] = replace(c.replay or ReplaySpec(), fraction=float(values.pop("replay.fraction")))
        hp = {**c.hyperparameters, **values}
        points.append(replace(c, name=f"{c.name}-{suffix}", hyperparameters=hp, sweep={}, **fields))
    return points


def _short(key: str) -> str:
    return {"learning_rate": "lr", "lora_alpha": "alpha", "epochs": "ep", "prompt": "",
            "replay.fraction": "replay"}.get(key, key)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != 0 and abs(value) < 1e-2:  # learning rates: 2e-4, not 0.0002
            mantissa, exp = f"{value:e}".split("e")
            return f"{float(mantissa):g}e{int(exp)}"
        return f"{value:g}"
    if isinstance(value, list):
        return "+".join(map(str, value))
    return str(value)


def _check_names(baselines: list[str], candidates: list[str], path: Path) -> None:
    seen: set[str] = set()
    for name in baselines + candidates:
        if not NAME_RE.match(name):
            raise BadInput(f"option name {name!r} may use letters, digits and . _ + - only", file=path)
        if name in seen:
            raise BadInput(f"two options are named {name!r}; names must be unique", file=path)
        seen.add(name)


def order_candidates(candidates: list[CandidateEntry], path: Path) -> list[CandidateEntry]:
    """Parents before children (``start_from``), teachers that are candidates before their students; an
    unknown parent or a cycle is bad input."""
    by_name = {c.name: c for c in candidates}
    for c in candidates:
        if c.start_from is not None and c.start_from not in by_name:
            raise BadInput(
                f"start_from names no candidate: {c.start_from!r} (candidates: {', '.join(by_name)})",
                file=path,
                field=f"candidates.{c.name}.start_from",
            )
    ordered: list[CandidateEntry] = []
    state: dict[str, str] = {}

    def visit(c: CandidateEntry, chain: list[str]) -> None:
        if state.get(c.name) == "done":
            return
        if state.get(c.name) == "visiting":
            cycle = " -> ".join([*chain[chain.index(c.name) :], c.name])
            raise BadInput(
                f"start_from makes a cycle: {cycle}", file=path, field=f"candidates.{c.name}.start_from"
            )
        state[c.name] = "visiting"
        if c.start_from:
            visit(by_name[c.start_from], [*chain, c.name])
        if c.teacher in by_name:  # checked by check_teachers: never itself nor a candidate depending on it
            visit(by_name[c.teacher], [*chain, c.name])
        state[c.name] = "done"
        ordered.append(c)

    for c in candidates:
        visit(c, [])
    return ordered


def check_teachers(baselines: list[BaselineEntry], candidates: list[CandidateEntry], path: Path) -> None:
    """A method declared to train on teacher labels (``Method.data == "teacher"``: distill) needs a
    ``teacher:`` naming a baseline or another candidate of the task, which neither is the candidate nor
    depends on it
    (through ``start_from`` or its own ``teacher``); ``teacher`` and ``unlabeled`` belong to such methods
    only."""
    from ftharness.plugins import get_plugins

    by_name: dict[str, BaselineEntry | CandidateEntry] = {b.name: b for b in baselines}
    by_name.update({c.name: c for c in candidates})
    for c in candidates:
        where = f"candidates.{c.name}."
        declared = get_plugins().training_method(c.trainer, c.method, file=path, field_prefix=where)
        if declared.data != "teacher":
            for name in ("teacher", "unlabeled"):
                if getattr(c, name):
                    raise BadInput(f"`{name}` is for methods that train on a teacher's labels (distill), not "
                                   f"{c.method}", file=path, field=f"{where}{name}")
            continue
        if not c.teacher:
            raise BadInput(f"{c.method} needs `teacher:`, the baseline or candidate whose outputs label the "
                           f"student's inputs (options: {', '.join(n for n in by_name if n != c.name)})",
                           file=path, field=f"{where}teacher")
        if c.teacher == c.name:
            raise BadInput("a candidate cannot be its own teacher", file=path, field=f"{where}teacher")
        if c.teacher not in by_name:
            raise BadInput(f"teacher names no option of this task: {c.teacher!r} (options: "
                           f"{', '.join(n for n in by_name if n != c.name)})", file=path, field=f"{where}teacher")
        chain = _depends_on(c.teacher, c.name, by_name)
        if chain:
            raise BadInput(f"the teacher depends on this candidate: {' -> '.join(chain)}", file=path,
                           field=f"{where}teacher")


def _depends_on(name: str, target: str, by_name: dict[str, Any]) -> list[str]:
    """The chain ``name -> ... -> target`` of ``start_from`` and ``teacher`` links, or [] when ``name``
    does not depend on ``target``."""
    seen: set[str] = set()

    def walk(current: str) -> list[str]:
        if current == target:
            return [current]
        if current in seen or current not in by_name:
            return []
        seen.add(current)
        entry = by_name[current]
        for nxt in (getattr(entry, "start_from", None), getattr(entry, "teacher", None)):
            if nxt and (rest := walk(nxt)):
                return [current, *rest]
        return []

    return walk(name)


def check_replay(candidates: list[CandidateEntry], path: Path) -> dict[str, Path]:
    """Replay goes on supervised candidates only; a file source exists and holds text. Returns each
    file-sourced candidate's replay file, resolved against the task file."""
    from ftharness.data.general import read_documents

    out: dict[str, Path] = {}
    for c in candidates:
        if c.replay is None:
            continue
        where = f"candidates.{c.name}.replay"
        if data_kind(c) != "train":
            raise BadInput("replay mixes general text into supervised training rows; this candidate trains on "
                           f"{data_kind(c)} data", file=path, field=where)
        if c.replay.source in REPLAY_SOURCES:
            continue
        file = resolve_path(c.replay.source, path)
        if file is None or not file.is_file():
            raise BadInput(f"replay source {c.replay.source!r} is neither {' nor '.join(REPLAY_SOURCES)} nor a "
                           "file; name a JSONL (text) or .txt file relative to the task file",
                           file=path, field=f"{where}.source")
        try:
            read_documents(file)
        except BadInput as e:
            raise BadInput(f"{e.reason}: {file}", file=path, field=f"{where}.source") from None
        out[c.name] = file
    return out


def check_trainers(written: list[CandidateEntry], path: Path) -> dict[str, Any]:
    """Each candidate names an installed trainer that trains its method (from ``start_from`` too, when it
    has one), and every point of its sweep passes that trainer's hyperparameter contract
    (:func:`ftharness.training.spec.validate_candidate`): the typed hyperparameters of each candidate
    (each sweep point), by name."""
    from ftharness.training.spec import validate_candidate
    from ftharness.training.trainer import CandidateSpec

    typed: dict[str, Any] = {}
    for c in written:
        where = f"candidates.{c.name}."
        for point in _sweep_points(c) if c.sweep else [c]:
            spec = CandidateSpec(name=point.name, trainer=c.trainer, method=c.method, start_from=c.start_from,
                                 hyperparameters=point.hyperparameters)
            try:
                typed[point.name] = validate_candidate(spec, source=path, prefix=where)
            except BadInput as e:  # a sweep point's error names the sweep (and the line) it comes from
                key = (e.field or "").removeprefix(f"{where}hyperparameters.").split(".")[0].split("[")[0]
                if point is c:
                    raise
                if key in c.sweep:
                    raise BadInput(f"{e.reason} (sweep point {point.name})", file=path,
                                   line=getattr(c.sweep, "lines", {}).get(key), field=f"{where}sweep.{key}") from None
                raise BadInput(e.reason, file=path, line=getattr(c.hyperparameters, "lines", {}).get(key),
                               field=e.field) from None
    return typed


def check_candidate_layers(candidates: list[CandidateEntry], typed: dict[str, Any], base_model: str | None,
                           path: Path) -> None:
    """The layers each candidate (each sweep point) names in its typed hyperparameters (``typed``, by name)
    exist in the base model (:func:`ftharness.training.spec.check_layers`): checked here, on the model's
    config, rather than when a training loads the weights, which after the first candidate may be many
    minutes into the run."""
    from ftharness.training.spec import check_layers

    for c in candidates:
        check_layers(typed[c.name], base_model, source=path, prefix=f"candidates.{c.name}.",
                     lines=getattr(c.hyperparameters, "lines", {}))


def data_kind(c: CandidateEntry) -> str:
    """Which of the task's data files a candidate trains on: ``preference`` for a method declared to train
    on preference pairs, ``corpus`` for one declared to train on raw text, else ``train``; a candidate's
    ``data:`` overrides it."""
    from ftharness.plugins import get_plugins

    if c.data:
        return c.data
    declared = get_plugins().training_method(c.trainer, c.method).data
    return {"preference": "preference", "corpus": "corpus"}.get(declared, "train")


def check_block_sizes(spec: TaskSpec, candidates: list[CandidateEntry], path: Path) -> None:
    """A candidate that packs a corpus into blocks (a ``block_size`` hyperparameter) asks for no block longer
    than the base model's positions (its config.json)."""
    import json

    from ftharness.models.loading import local_model_dir
    from ftharness.training.sequences import max_positions, resolve_block_size

    positions: int | None = None
    for c in candidates:
        block_size = c.hyperparameters.get("block_size")
        if data_kind(c) != "corpus" or block_size is None:
            continue
        if positions is None:
            try:
                config = local_model_dir(None if spec.base_model == "embedded" else spec.base_model) / "config.json"
            except BadInput as e:
                raise BadInput(e.reason, file=path, field="base_model") from None
            positions = max_positions(json.loads(config.read_text(encoding="utf-8"))) or 0
        resolve_block_size(block_size, positions or None, file=path,
                           field=f"candidates.{c.name}.hyperparameters.block_size")
