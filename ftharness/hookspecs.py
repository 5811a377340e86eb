"""The pluggy contract between the ftharness core and its plugins: the hooks, and the Protocols of what
each hook registers. A plugin author reads this module alone.

A plugin is a module (or any object) with ``@hookimpl`` functions named as the hooks below. Built-in
plugins live in ``plugins/`` (the ``ftharness_plugins`` package); third-party plugins declare an entry
point in the group ``ftharness``::

    [project.entry-points.ftharness]
    my_trainer = "my_package.my_module"

What a plugin registers, by hook:

- ``register_trainers``: :class:`Trainer` objects, which declare each method they train as a
  :class:`Method`;
- ``register_metrics``: :class:`Metric` objects;
- ``register_toxicity_scorers``: :class:`ToxicityScorer` objects;
- ``register_report_sections``: :class:`ReportSection` objects;
- ``register_retrievers``: :class:`Retriever` objects, which index a knowledge base's chunks into a
  :class:`RetrievalIndex`;
- ``register_engines``: :class:`Engine` objects, which serve an option's model (:class:`Served`) and
  generate its answers;
- ``register_trackers``: :class:`Tracker` objects, which log a finished run to an experiment tracker.

The types these Protocols name (a trainer's ``TrainJob`` and ``TrainResult`` from
:mod:`ftharness.training.trainer`, a metric's ``MetricContext`` and ``MetricResult`` from
:mod:`ftharness.suites.metric`) live in the layers that build them: they are imported here for type
checkers only, so that this module, like the registry that imports it, stands on the foundation alone.

How the hooks are called (:mod:`ftharness.plugins`): the first time the process asks for its plugins
(:func:`ftharness.plugins.get_plugins`), every plugin is loaded (built-ins, then entry points), then each
``register_*`` hook is called through the plugin manager once per plugin that implements it, in that
loading order; a plugin added in code later has its hooks called when it is added. No hook is
``firstresult``: every implementation runs, and its return value is ignored. Hook wrappers
(``@hookimpl(wrapper=True)``) of any plugin wrap each of those calls.

Each hook receives one argument, ``register`` (a :class:`Register`); the plugin calls it once per object it
provides, as ``llm``'s ``register_models`` does. Before an object enters the registry it is checked:

- it must follow the hook's Protocol (``isinstance`` against the runtime-checkable Protocol; for trainers,
  ``methods`` must hold :class:`Method` declarations);
- its ``name`` must be free in its kind: a name another plugin registered first is refused, naming both
  plugins' sources, unless ``register(obj, override=True)`` asks to replace it (``ftharness plugins`` then
  shows what was replaced).

An object that fails a check is not registered, and ``ftharness plugins`` lists its plugin as broken with
the reason. A hook that raises registers nothing from that call, and its plugin is listed as broken too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, runtime_checkable

import pluggy

if TYPE_CHECKING:
    from pathlib import Path

    from ftharness.models.engines import EngineTarget
    from ftharness.models.generation import Generation, GenerationSettings
    from ftharness.suites.metric import MetricContext, MetricResult
    from ftharness.training.trainer import TrainJob, TrainResult

PROJECT = "ftharness"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

T_contra = TypeVar("T_contra", contravariant=True)


# --- what plugins register ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Method:
    """One method a trainer trains, and the facts about it the core acts on.

    - ``name``: what candidate files write in ``method:`` (``lora``, ``dpo``...). The names of the methods
      ftharness knows are the names the installed trainers declare: ``ftharness plugins`` lists them,
      ``ftharness plan --method`` accepts them.
    - ``title``: how people write it in prose (LoRA, QLoRA, DPO).
    - ``data``: what it trains on. ``supervised``: prompts with a completion; ``preference``: prompts with a
      chosen and a rejected answer; ``corpus``: raw-text documents (:mod:`ftharness.data.corpus`: examples
      with no prompt and the document as the completion); ``teacher``: inputs whose completions another
      option of the task (the candidate's ``teacher:``) writes, trained on as ``supervised``
      (distillation). ``compare`` gives a candidate the task's ``data.train``, ``data.preference`` or
      ``data.corpus`` by it, or the teacher's labels (:mod:`ftharness.compare.distill`), and ``ftharness
      train`` requires completions only for ``supervised`` (it has no teacher to run: a ``teacher`` method
      trains through ``compare`` only).
    - ``output``: ``adapter`` (a PEFT adapter folder on top of the base model) or ``model`` (a standalone
      model folder).
    - ``mergeable``: the adapter folds into the base weights, so ``ftharness train --merge-to`` can write a
      standalone model (prefix and prompt tuning add virtual tokens instead and cannot).
    - ``combinable``: the adapter is one that ``method: combine`` can merge with others (PEFT's
      ``add_weighted_adapter`` works on LoRA-family adapters).
    - ``continues``: it can train on top of another candidate's artifact (``start_from``).
    - ``requires_cuda``: it needs an NVIDIA GPU with CUDA; the core checks this before any work.
    """

    name: str
    title: str = ""
    data: Literal["supervised", "preference", "corpus", "teacher"] = "supervised"
    output: Literal["adapter", "model"] = "adapter"
    mergeable: bool = False
    combinable: bool = False
    continues: bool = True
    requires_cuda: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Trainer(Protocol):
    """What a trainer plugin registers; the registry checks every trainer against it when it registers.

    - ``name``: what candidate files write in ``trainer:``.
    - ``methods``: the :class:`Method` declarations of everything it trains (at least one).
    - ``unavailable_reason(method)``: None when it can train ``method`` (or, with None, anything) on this
      machine; else what is missing and what to do. Declared needs (``Method.requires_cuda``) are checked by
      the core first: this answers for the rest (libraries, licences...). It is asked only when needed (a
      training, ``ftharness plugins``), so it may import what it checks.
    - ``train(job)``: train ``job.spec`` into ``job.out_dir`` and return what it measured (a
      :class:`~ftharness.training.trainer.TrainJob` in, a :class:`~ftharness.training.trainer.TrainResult`
      out).

    Optional: ``hyperparameters(method) -> type``, the dataclass of what the trainer accepts for a method:
    fields built with :func:`ftharness.typed.spec` (a default with its ``source``, ranges such as ``gt=0``,
    ``help``), on the shared bases of :mod:`ftharness.hyperparameters` where they fit. ``compare``, ``train``
    and the training itself check a candidate's hyperparameters against this class and no other
    (:func:`ftharness.training.spec.validate_candidate`), and ``train`` receives them typed, defaults filled,
    as ``job.hyperparameters``. A trainer without it accepts no hyperparameters.

    Optional: ``plan_inputs(method, hyperparameters) -> dict | None``, the planner's request fields
    (:class:`ftharness.planner.PlanRequest`: ``method`` as the planner models it, ``rank``, ``targets``,
    ``batch_size``, ``epochs``, ``student``, ``adapter``...; ``block_size`` for a corpus) for a candidate
    trained with those typed hyperparameters; :func:`ftharness.hyperparameters.planner_inputs` reads the shared
    bases' fields. ``compare`` plans each candidate from it; None, or a trainer without it, means the planner
    has no memory model for the training (the record says no plan was made).
    """

    name: str
    methods: tuple[Method, ...]

    def unavailable_reason(self, method: str | None = None) -> str | None: ...

    def train(self, job: TrainJob) -> TrainResult: ...


@runtime_checkable
class Metric(Protocol):
    """What a metric plugin registers; the registry checks every metric against it when it registers.

    - ``name``: what suites write under ``metrics:``, and the prefix of the values gates read.
    - ``needs_model``: it reads the model itself, not only the outputs.
    - ``compute(ctx, settings)``: the values from a
      :class:`~ftharness.suites.metric.MetricContext` (the samples, and the model when it needs one) and
      the suite's settings for it, as a :class:`~ftharness.suites.metric.MetricResult`.

    Optional members the suite loader and runner use when a metric has them:

    - ``value_names(settings) -> list[str]``: every value it can produce, so that a suite gating on a
      value the metric never produces is rejected when the suite is loaded, not after a long run.
    - ``check_settings(settings, *, source) -> dict``: validate the suite's settings for it (raise
      ``BadInput`` naming ``source``) and return them normalised, e.g. paths resolved against the suite
      file.

    A metric with one settings dataclass derives both from
    :class:`ftharness.suites.settings.TypedMetric`: it declares ``settings_class`` and ``values`` (and a
    ``finish`` for what a field cannot check alone), as every built-in metric does.
    - ``lower_is_better: frozenset[str]``: the values that improve as they fall (a failure rate, a
      toxicity, a latency, a perplexity); every other value improves as it rises. ``ftharness diff`` reads
      it to call a change between two runs better or worse (a gate's ``<``/``<=`` says the same for the
      value it gates).
    - ``needs_base_model: bool``: it compares ``ctx.model`` with ``ctx.base_model`` (forgetting), so the
      evaluator should load the base model too.
    - ``selection_settings: dict``: for a metric of the model, the settings under which it measures without
      reading what the eval run is judged on (forgetting: ``{"part": "selection"}``); a sweep then reads it
      to choose its point (``ftharness.compare.selection``). A metric of the model without it does not take
      part in a sweep's choice.
    - values with a confidence interval go in ``MetricResult.intervals``; a gate on such a value reads the
      interval (passed, failed or inconclusive; ``ftharness.suites.gates``).

    A value it cannot compute for this run (no references, no timings) is left out of ``values`` and the
    reason put in ``details["missing"][value_name]``: a gate on it then fails with that reason.
    """

    name: str  # "format", "task", "toxicity", "forgetting", "throughput", ...
    needs_model: bool  # True when it must read the model itself (forgetting), not only outputs

    def compute(self, ctx: MetricContext, settings: dict[str, Any]) -> MetricResult: ...


@runtime_checkable
class ToxicityScorer(Protocol):
    """What a toxicity scorer plugin registers; the toxicity metric scores outputs with the one its
    ``scorer:`` setting names.

    Optional: ``configure(settings: dict) -> ToxicityScorer`` returns a scorer using the suite's settings for
    it (e.g. a local ``checkpoint`` path); the toxicity metric calls it when present.
    """

    name: str

    def unavailable_reason(self) -> str | None:
        """None when it can score on this machine; else why not and what to do."""

    def score(self, texts: list[str]) -> list[float]:
        """A probability of toxicity in [0, 1] for each text."""


@runtime_checkable
class ReportSection(Protocol):
    """What a report section plugin registers: an extra part of ``report.html``, with its ``title``."""

    name: str
    title: str

    def render(self, results: dict[str, Any]) -> str:
        """HTML for the section, from the run's results.json content. Escape everything user-derived
        (use jinja2 with autoescape)."""


@runtime_checkable
class RetrievalIndex(Protocol):
    """What :meth:`Retriever.index` returns: the chunks of one knowledge base, searchable.

    - ``search(queries, k)``: for each query, at most ``k`` ``(chunk position, score)`` pairs, best first
      (a position indexes the ``texts`` the index was built from; a higher score is more relevant). Ties
      are broken by position, so that a search is deterministic.

    Optional: ``save(folder)`` writes the index into an empty folder, and the retriever's ``load(folder,
    settings)`` reads it back; with both, the core caches the index by the content hash of the chunks and
    the retriever's settings (:mod:`ftharness.retrieval`), else it is built again in every process.
    """

    def search(self, queries: list[str], k: int) -> list[list[tuple[int, float]]]: ...


@runtime_checkable
class Retriever(Protocol):
    """What a retriever plugin registers; the registry checks every retriever against it when it registers.

    - ``name``: what a ``retrieval:`` block of a task file names in ``retriever:``.
    - ``unavailable_reason()``: None when it can index and search on this machine, else what is missing
      and what to do (asked only when needed; it may import what it checks).
    - ``index(texts, settings)``: a :class:`RetrievalIndex` over ``texts`` (the knowledge base's chunks, in
      a fixed order), under the task's ``retrieval.settings`` for it.

    Optional members the core uses when a retriever has them:

    - ``check_settings(settings, *, source) -> dict``: validate the task's settings for it (raise
      ``BadInput`` naming ``source``) and return them normalised, e.g. paths resolved against the task file.
      Called when the task is loaded, before any work.
    - ``load(folder, settings) -> RetrievalIndex``: read back what the index's ``save`` wrote.
    - ``describe(settings) -> str``: one line saying how it ranks, for the report (default: its name).
    - ``fingerprint(settings) -> str``: what else its rankings depend on (the content hash of a local
      model folder, say); it joins the index's cache key, so a changed model is indexed again.
    """

    name: str

    def unavailable_reason(self) -> str | None: ...

    def index(self, texts: list[str], settings: dict[str, Any]) -> RetrievalIndex: ...


@runtime_checkable
class Served(Protocol):
    """One option's model as an engine serves it, from :meth:`Engine.start` until ``close()``.

    - ``generate(conversations, settings)``: one :class:`~ftharness.models.generation.Generation` per
      conversation (a list of ``{role, content}`` messages), in order, under the task's generation settings
      (``settings.json_schema`` set: the option decodes under the task's schema, where the engine can
      enforce it). An answer the engine cannot trust is an ``EnvironmentProblem`` naming where it came from.
    - ``weights``: the model in this process (``ftharness.models.loading.LoadedModel``) for the metrics that
      read weights (forgetting), or None when there is none to read here; ``weights_reason`` then says why,
      and the report files those suites as unavailable with it.
    - ``record()``: how it served, for the report (:class:`~ftharness.report.records.EngineRecord`'s fields
      as a dict: ``served``, ``url``, ``launcher``, ``schema``, ``weights``, ``concurrency``).
    - ``close()``: free what it holds; a server it started is stopped. Called however the evaluation ends.

    Optional members the core uses when a served model has them:

    - ``merged_latency(conversations, settings) -> dict | None``: the same prompts with a LoRA adapter
      attached, then merged (the local engine), as the fields of the report's ``MergedLatency``;
    - ``concurrency``: requests in flight at once (cached rows' wall time is spread over it).
    """

    weights: Any
    weights_reason: str | None

    def generate(self, conversations: list[list[dict[str, str]]], settings: GenerationSettings) -> list[Generation]: ...

    def record(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


@runtime_checkable
class Engine(Protocol):
    """What an engine plugin registers: how an option's model is served and generates. The registry checks
    every engine against it when it registers.

    - ``name``: what a task writes in ``engine:`` (on a baseline or candidate, or task-wide): ``local``
      (transformers in this process), ``openai`` (an OpenAI-compatible server the task names: ``kind:
      endpoint``), ``server`` (an OpenAI-compatible server the harness starts for the option's model).
    - ``unavailable_reason()``: None when it can serve on this machine, else what is missing and what to do.
    - ``start(target)``: serve the option's model (an :class:`~ftharness.models.engines.EngineTarget`: its
      loaders, its trained artifact, its settings) and return it as :class:`Served`.

    Optional: ``check_settings(settings, *, source, field) -> object``: read the option's ``engine:`` mapping
    (without ``kind``) strictly into the engine's typed settings, raising ``BadInput`` naming ``source`` and
    ``field``. Called when the task is loaded; what it returns is ``target.settings``. An engine without it
    takes no settings. ``enforces_schema(settings) -> bool``: False refuses a schema-constrained option at
    load (an engine without it is trusted to). ``usage(settings, rows) -> dict``: what generated
    rows (dicts with ``prompt_tokens``, ``new_tokens``, ``cached``, ``attempts``, ``usage``, ``cut``) cost at
    the server's stated token prices (a hosted endpoint), as the fields of the report's ``EndpointUsage``;
    asked without starting the engine.
    """

    name: str

    def unavailable_reason(self) -> str | None: ...

    def start(self, target: EngineTarget) -> Served: ...


@runtime_checkable
class Tracker(Protocol):
    """What a tracker plugin registers: where a finished run is logged besides its own folder (MLflow is
    built in; Weights & Biases would be a plugin registering a tracker named ``wandb`` whose ``log_run``
    calls ``wandb.init(project=..., name=RUN/OPTION, config=spec)``, ``wandb.log(metrics)`` and
    ``wandb.save`` on the report, through this same hook).

    - ``name``: what a task's ``trackers:`` names (``trackers: {mlflow: {tracking_uri: ...}}``).
    - ``unavailable_reason()``: None when it can log from this machine, else what to install; asked when
      the task loads, so a run that cannot be tracked exits 3 before any work.
    - ``log_run(results, folder, settings) -> str``: log the run whose ``results.json`` document is
      ``results`` (a dict; its report and results files are in ``folder``), under the task's settings for
      it; returns one line saying where it went. Called once the run has finished; what it raises is a
      warning (the run folder is whole), never a failed run.

    Optional: ``check_settings(settings, *, source, field) -> object``: the task's mapping for it read
    strictly (BadInput naming ``source`` and ``field``), called when the task is loaded.
    """

    name: str

    def unavailable_reason(self) -> str | None: ...

    def log_run(self, results: dict[str, Any], folder: Path, settings: Any) -> str: ...


# --- the hooks ----------------------------------------------------------------------------------------------


class Register(Protocol[T_contra]):
    """The ``register`` argument of every hook."""

    def __call__(self, obj: T_contra, *, override: bool = False) -> None:
        """Offer ``obj`` to the registry under ``obj.name``. ``override=True``: replace an object of the same
        kind and name that another plugin registered earlier (refused otherwise)."""


@hookspec
def register_trainers(register: Register[Trainer]) -> None:
    """Register trainers: objects following :class:`Trainer`.

    :param register: call ``register(trainer)`` once per trainer. ``trainer.name`` is what a candidate's
        ``trainer:`` names; ``trainer.methods`` declares each method it trains and the facts the core acts
        on (data kind, CUDA, merging: :class:`Method`).

    Called once per plugin when plugins load; not firstresult; the return value is ignored.
    """


@hookspec
def register_metrics(register: Register[Metric]) -> None:
    """Register metrics: objects following :class:`Metric`.

    :param register: call ``register(metric)`` once per metric. ``metric.name`` is what suites write under
        ``metrics:`` and the prefix of the values gates read (``format.parse_rate``).

    Called once per plugin when plugins load; not firstresult; the return value is ignored.
    """


@hookspec
def register_toxicity_scorers(register: Register[ToxicityScorer]) -> None:
    """Register toxicity scorers: objects following :class:`ToxicityScorer`.

    :param register: call ``register(scorer)`` once per scorer. ``scorer.name`` is what the toxicity
        metric's ``scorer:`` setting names.

    Called once per plugin when plugins load; not firstresult; the return value is ignored.
    """


@hookspec
def register_retrievers(register: Register[Retriever]) -> None:
    """Register retrievers: objects following :class:`Retriever`.

    :param register: call ``register(retriever)`` once per retriever. ``retriever.name`` is what a task's
        ``retrieval: {retriever: NAME}`` names (``bm25`` and ``dense`` are built in; a team's own vector
        database or search service is a plugin registering its own).

    Called once per plugin when plugins load; not firstresult; the return value is ignored.
    """


@hookspec
def register_report_sections(register: Register[ReportSection]) -> None:
    """Register extra sections of ``report.html``: objects following :class:`ReportSection`.

    :param register: call ``register(section)`` once per section; each registered section is rendered into
        ``report.html`` from the run's results.

    Called once per plugin when plugins load; not firstresult; the return value is ignored.
    """


@hookspec
def register_engines(register: Register[Engine]) -> None:
    """Register engines: objects following :class:`Engine`.

    :param register: call ``register(engine)`` once per engine. ``engine.name`` is what a task's ``engine:``
        names (``local``, ``openai`` and ``server`` are built in; a team's own serving stack is a plugin
        registering its own).

    Called once per plugin when plugins load; not firstresult; the return value is ignored.
    """


@hookspec
def register_trackers(register: Register[Tracker]) -> None:
    """Register experiment trackers: objects following :class:`Tracker`.

    :param register: call ``register(tracker)`` once per tracker. ``tracker.name`` is what a task's
        ``trackers:`` names (``mlflow`` is built in).

    Called once per plugin when plugins load; not firstresult; the return value is ignored.
    """
