"""The experiment: every baseline and candidate through the same eval set, suites and gates.

Order of work:
1. Load the data and carve the validation split from the training data (``ftharness.data.split``).
   Candidates train on the rest; the validation rows serve early stopping and the best checkpoint (the
   trainer's validation loss) and the choice within a sweep. The eval set is read only to be judged on.
2. Sweeps: every point is trained and served on the validation rows; ``ftharness.compare.selection``
   picks one finalist per sweep from those scores. Only finalists go on to step 3.
3. Every baseline and every remaining candidate is generated on the eval rows (``train_candidate`` for
   the weights, ``generate`` for the outputs, ``run_suite`` for the scores). A distilled candidate's
   training rows are its teacher's labels of its inputs (``ftharness.compare.distill``), made (or read
   from the label cache) just before it trains.

Per-sample outputs stream to ``samples/NAME.jsonl`` as they are produced, and each finished evaluation
and validation is recorded in the run's ``state/`` under a key that hashes everything the result depends
on (option spec and its ``start_from`` chain, data hashes, base model, generation settings, suites, gates,
instruction, schema, seed). A rerun after a kill reuses every finished evaluation, and every sample
already generated for a half-finished one (a samples line a kill cut short is dropped and its row
generated again); trainings are reused from the artifact cache. The state files
hold the records of ``ftharness.report.records`` as JSON and read them back, those an earlier version
wrote included (``from_older``). Each phase's wall time and peak memory is recorded
(``ftharness.compare.phases``), and each candidate's model is freed when its evaluation ends.

The heavy pieces sit behind :class:`Backend` so the orchestration is tested with fakes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftharness import faults, ui
from ftharness.compare import distill, replay
from ftharness.compare.phases import Phases, release_memory
from ftharness.compare.retrieving import Retrieval
from ftharness.compare.selection import halving_budgets, rank, selection_suite, survivors
from ftharness.compare.task import BaselineEntry, CandidateEntry, HalvingSpec, Task, data_kind
from ftharness.errors import BadInput
from ftharness.io import append_jsonl, repair_jsonl, sha256_file, sha256_json
from ftharness.jsonrecord import doc, from_json, to_json
from ftharness.models.endpoint import EndpointGeneration
from ftharness.report.records import (
    MERGED_LATENCY,
    PLAN,
    Cost,
    DataFile,
    Distillation,
    EndpointUsage,
    MergedLatency,
    OptionRecord,
    Phase,
    PointOutput,
    Rung,
    Selection,
    SweepPoint,
    Training,
)
from ftharness.report.run_dir import RunDir
from ftharness.suites.gates import GateOutcome
from ftharness.suites.runner import SuiteResult
from ftharness.suites.slices import check_slice_fields, compute_slices

STATE_VERSION = 3  # 3: sweep points carry their gates and rungs
ENDPOINT_MODEL_ONLY = (
    "reads the model's weights, and an endpoint's cannot be read here (prompting changes no weights: there is "
    "nothing to forget)"
)


@dataclass
class Option:
    name: str
    kind: str  # "baseline" | "candidate"
    entry: BaselineEntry | CandidateEntry
    spec: dict[str, Any] = field(default_factory=dict)


RETRIEVES_NOTHING = "reads what an option retrieved, and this option retrieves nothing (no retrieval: block)"


@dataclass
class LoadedData:
    train: Any  # ftharness.data.records.Dataset: every training row (the baselines' pool of shots)
    eval: Any
    preference: Any | None = None
    hashes: dict[str, str] = field(default_factory=dict)
    corpus: Any | None = None  # the raw-text documents continued pretraining trains on (ftharness.data.corpus)
    fit: Any | None = None  # the training rows candidates train on (train minus validation)
    validation: Any | None = None  # carved from train, or the task's validation file

    def __post_init__(self) -> None:
        if self.fit is None:
            self.fit = self.train


def options_of(task: Task) -> list[Option]:
    out = []
    for b in task.spec.baselines:
        spec = dataclasses.asdict(b)
        if b.kind != "endpoint":  # a local baseline's spec (and its evaluation key) stays as it was
            spec.pop("shots")
            spec.pop("endpoint")
        spec["seed"] = task.spec.seed if b.seed is None else b.seed
        out.append(Option(b.name, "baseline", b, spec))
    for c in task.candidates:
        spec = dataclasses.asdict(c)
        spec.pop("sweep", None)
        for name, default in (("replay", None), ("sweep_strategy", "grid"), ("halving", None)):
            if spec.get(name) == default:  # the spec (and evaluation key) of a candidate without them is unchanged
                spec.pop(name)
        spec["seed"] = task.spec.seed if c.seed is None else c.seed
        spec["data"] = data_kind(c)
        out.append(Option(c.name, "candidate", c, spec))
    return out


def is_endpoint(option: Option) -> bool:
    """A baseline answered by an OpenAI-compatible server rather than the local base model."""
    return option.kind == "baseline" and option.entry.kind == "endpoint"


def task_hash(task: Task) -> str:
    """What identifies "the same task" for resuming: the task file and every file it names."""
    from ftharness.data.corpus import corpus_sha256

    files = [task.file, task.train_path, task.eval_path, task.preference_path, task.schema_path]
    corpus = corpus_sha256(task.corpus_path) if task.corpus_path else None
    return sha256_json([sha256_file(p) if p else None for p in files] + [task.instruction]
                       + ([corpus] if corpus else []))


class Backend:
    """The heavy pieces (data, models, generation, training, suites), wired together. Tests substitute a
    fake."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self._base = None

    # data and models --------------------------------------------------------------------------
    def load_data(self) -> LoadedData:
        from ftharness.data.loading import load_dataset
        from ftharness.data.split import carve_validation, drop_overlap
        from ftharness.training.run import examples_hash

        t = self.task
        pref = load_dataset(t.preference_path, format="preference") if t.preference_path else None
        hashes = {"train": sha256_file(t.train_path), "eval": sha256_file(t.eval_path)}
        if t.preference_path:
            hashes["preference"] = sha256_file(t.preference_path)
        train = load_dataset(t.train_path)
        v = t.spec.validation
        if t.validation_path is not None:
            validation = load_dataset(t.validation_path)
            fit = drop_overlap(train, validation)
        else:
            fit, validation = carve_validation(train, fraction=v.fraction, minimum=v.min, seed=t.spec.seed)
        hashes["validation"] = examples_hash(validation.examples)
        if t.knowledge_path is not None:
            from ftharness.data.knowledge import knowledge_sha256

            hashes["knowledge"] = knowledge_sha256(t.knowledge_path)
            for name, path in t.training_knowledge.items():
                hashes[f"knowledge:{name}"] = knowledge_sha256(path)
        corpus = None
        if t.corpus_path is not None:
            from ftharness.data.corpus import load_corpus

            corpus = load_corpus(t.corpus_path, source=t.file, field="data.corpus")
            hashes["corpus"] = corpus.sha256
        return LoadedData(train, load_dataset(t.eval_path), pref, hashes, fit=fit, validation=validation,
                          corpus=corpus)

    def knowledge(self, path: Path, retrieval: Any, field: str) -> Any:
        """The knowledge base at ``path`` chunked with the base model's tokenizer and indexed by the
        retriever ``retrieval`` names (``ftharness.retrieval.Knowledge``; the index is cached on disk)."""
        from ftharness.data.knowledge import load_knowledge
        from ftharness.retrieval import build_knowledge

        kb = load_knowledge(path, source=self.task.file, field=field)
        return build_knowledge(kb, self.tokenizer(), self.task.spec.chunking, retrieval)

    def tokenizer(self) -> Any:
        """The base model's tokenizer (what chunks are counted in), without loading its weights."""
        if getattr(self, "_tokenizer", None) is None:
            from transformers import AutoTokenizer

            from ftharness.models.loading import local_model_dir

            self._tokenizer = AutoTokenizer.from_pretrained(local_model_dir(self._base_spec()))
        return self._tokenizer

    def base_model(self) -> Any:
        if self._base is None:
            from ftharness.models.loading import load_model

            self._base = load_model(self._base_spec())
            self._base.identity = self.model_identity()  # figures cached for it outlive drop_base()
        return self._base

    def drop_base(self) -> None:
        """Let the base model go (a training loads its own copy; the base reloads in well under a second)."""
        self._base = None

    def _base_spec(self) -> str | None:
        b = self.task.spec.base_model
        return None if b in (None, "embedded") else b

    def base_model_record(self) -> dict[str, Any]:
        from ftharness.models.loading import local_model_dir

        path = local_model_dir(self._base_spec())
        return {"spec": self.task.spec.base_model or "embedded", "path": str(path)}

    def train(self, option: Option, data: LoadedData, parent: Any | None, progress: bool,
              stop_at_step: int | None = None, resume_from: Any | None = None) -> Any:
        from ftharness.training.run import train_candidate
        from ftharness.training.trainer import CandidateSpec

        c = option.entry
        spec = CandidateSpec(
            name=c.name,
            trainer=c.trainer,
            method=c.method,
            base_model=self._base_spec(),
            start_from=c.start_from,
            hyperparameters=dict(c.hyperparameters),
            seed=option.spec["seed"],
        )
        kind = option.spec["data"]
        train = {"preference": data.preference, "corpus": data.corpus}.get(kind, data.fit)
        # The validation rows (carved from train) drive early stopping and the best checkpoint of what trains
        # on them. The eval set never reaches the trainer: it is what the comparison is judged on.
        validation = data.validation if kind == "train" else None
        return train_candidate(
            spec,
            train,
            validation,
            system_prompt=c.system_prompt(self.task.instruction),
            start_from=parent,
            progress=progress,
            typed_hyperparameters=self.task.hyperparameters[c.name],
            **staged(stop_at_step, resume_from),
        )

    def load_trained(self, artifact: Any) -> Any:
        from ftharness.models.loading import load_model

        return load_model(**artifact.model_args())

    def serve(self, lm: Any) -> None:
        """Make a loaded candidate what it is served as: its adapter merged into the weights where it can
        be (``LoadedModel.merged`` says so; :func:`ftharness.models.loading.merge_adapter`)."""
        from ftharness.models.loading import merge_adapter

        merge_adapter(lm)

    # prompts and generation ------------------------------------------------------------------
    def messages(self, option: Option, data: LoadedData, examples: list[Any]) -> list[list[dict[str, str]]]:
        """The option's prompt for each of ``examples``: a candidate's as it was trained (its ``prompt:``
        placement), a baseline's with its shots drawn from the training rows."""
        from ftharness import baselines

        if option.kind == "candidate":
            system = option.entry.system_prompt(self.task.instruction)
            return [baselines.zero_shot_messages(system, ex) for ex in examples]
        b = option.entry
        spec = baselines.BaselineSpec(name=b.name, kind=b.prompt_kind, k=b.k, seed=option.spec["seed"])
        return baselines.build_messages(spec, self.task.instruction, data.train.examples, examples)

    def teacher_messages(self, option: Option, data: LoadedData, examples: list[Any]) -> list[list[dict[str, str]]]:
        """A teacher's prompt for each input it labels (``ftharness.compare.distill``): the prompt it is
        evaluated with. A few-shot teacher draws its shots as on the eval set, whose inputs no shot may
        take (the labelled inputs may: they are training rows), so it labels with the shots it is judged
        by; a retrieved teacher never retrieves the input it labels."""
        from ftharness import baselines

        if option.kind == "candidate":
            return self.messages(option, data, examples)
        b = option.entry
        spec = baselines.BaselineSpec(name=b.name, kind=b.prompt_kind, k=b.k, seed=option.spec["seed"])
        return baselines.build_messages(spec, self.task.instruction, data.train.examples, examples,
                                        exclude=data.eval.examples)

    def model_identity(self) -> str:
        """The base model's content hash (what a baseline teacher's labels depend on)."""
        from ftharness.models.loading import local_model_dir
        from ftharness.training.run import model_fingerprint

        return model_fingerprint(local_model_dir(self._base_spec()))

    def render(self, lm: Any, messages: list[dict[str, str]]) -> str:
        from ftharness.models.prompts import render_prompt

        return render_prompt(lm.tokenizer, messages)

    def generate(self, lm: Any, prompts: list[str], constrained: str | None = None) -> list[Any]:
        from ftharness.models.generation import generate

        return generate(lm, prompts, self.settings(constrained), progress=False)

    def generate_endpoint(self, entry: BaselineEntry, conversations: list[list[dict[str, str]]]) -> list[Any]:
        """An endpoint baseline's answers (``ftharness.models.endpoint.generate_chat``), under the task's
        generation settings."""
        from ftharness.models.endpoint import generate_chat

        return generate_chat(entry.endpoint, conversations, self.settings(None), file=self.task.file,
                             field=f"baselines.{entry.name}.endpoint")

    def settings(self, constrained: str | None) -> Any:
        """The task's generation settings (``GenerationSettings``), under its schema when constrained."""
        from ftharness.models.generation import GenerationSettings

        g = self.task.spec.generation
        schema = self.task.schema if constrained == "json-schema" else None
        limit = g.max_new_tokens
        if schema is not None:  # room for every constrained row to close its JSON, where the schema bounds it
            from ftharness.models.constrained import token_budget

            limit = max(limit, token_budget(schema) or 0)
        return GenerationSettings(
            max_new_tokens=limit,
            batch_size=g.batch_size,
            do_sample=g.do_sample,
            temperature=g.temperature,
            top_p=g.top_p,
            seed=self.task.spec.seed,
            stop=list(g.stop),
            json_schema=schema,
        )

    def constraint_record(self) -> dict[str, Any]:
        """What schema-constrained decoding enforces of the task's schema, and what it cannot."""
        from ftharness.models.constrained import describe

        return describe(self.task.schema)

    def template_record(self) -> dict[str, Any]:
        from ftharness.models.prompts import template_record

        return template_record(self.base_model().tokenizer)

    # suites ----------------------------------------------------------------------------------
    def suites(self) -> list[Any]:
        from ftharness.suites.suite import load_suite

        return [load_suite(n) for n in self.task.suites]

    def model_only(self, suite: Any) -> bool:
        """True when every metric of the suite reads the model, not the outputs (forgetting)."""
        from ftharness.suites.evaluate import model_only

        return model_only(suite)

    def retrieval_only(self, suite: Any) -> bool:
        """True when every metric of the suite reads what an option retrieved (the rag suite)."""
        from ftharness.suites.evaluate import retrieval_only

        return retrieval_only(suite)

    def run_suite(self, suite: Any, samples: list[Any], model: Any, option: str, wall_s: float) -> SuiteResult:
        from ftharness.suites.metric import MetricContext
        from ftharness.suites.runner import run_suite

        ctx = MetricContext(
            samples=samples,
            schema=self.task.schema,
            model=model,
            base_model=self.base_model() if model is not None else None,  # read only by metrics of the model
            option=option,
            wall_s=wall_s,
        )
        return run_suite(suite, ctx, progress=False)

    def sample(self, **kw: Any) -> Any:
        from ftharness.suites.metric import Sample

        return Sample(**kw)

    # cost and memory -------------------------------------------------------------------------
    def plan(self, option: Option, data: LoadedData, seq_len: int) -> dict[str, Any] | None:
        """The planner's estimate for the candidate as trained here (fp32 on CPU); None for a method the
        planner has no memory model for."""
        from ftharness.models.loading import local_model_dir
        from ftharness.planner import PlanRequest, estimate
        from ftharness.planner.memory import MODELLED_METHODS

        c = option.entry
        if c.method not in MODELLED_METHODS:
            return None
        # the values the trainer trains with (its contract's defaults filled in); a trainer whose class has
        # no such field is planned with the planner's own default
        hp = self.task.hyperparameters[c.name]
        targets = getattr(hp, "target_modules", None) or "all-linear"
        if isinstance(targets, list):
            targets = ",".join(targets)
        config = local_model_dir(self._base_spec()) / "config.json"
        amount: dict[str, Any] = {"seq_len": seq_len}
        if option.spec["data"] == "corpus":  # packed blocks of the corpus's tokens, counted as training packs them
            from ftharness.data.corpus import document_ids
            from ftharness.training.sequences import max_positions, resolve_block_size

            positions = max_positions(json.loads(config.read_text(encoding="utf-8")))
            tokenizer = self.base_model().tokenizer
            amount = {"seq_len": resolve_block_size(getattr(hp, "block_size", None), positions),
                      "corpus_tokens": sum(len(document_ids(tokenizer, d.completion)) for d in data.corpus.examples),
                      "adapter": getattr(hp, "adapter", "lora")}
        else:
            amount["examples"] = len(data.preference if option.spec["data"] == "preference" else data.fit)
        if hasattr(hp, "student"):  # a distilled student is planned as the training it is (labelling is measured)
            amount["student"] = hp.student
        req = PlanRequest(
            model=str(config),
            method=c.method,
            rank=getattr(hp, "r", 16),
            targets=targets,
            precision="fp32",
            batch_size=getattr(hp, "batch_size", 8),
            epochs=getattr(hp, "epochs", 1.0),
            gpu=self.task.spec.decision.gpu,
            **amount,
        )
        return estimate(req).to_dict()

    def merged_latency(self, lm: Any, prompts: list[str]) -> MergedLatency | None:
        """Latency of the same prompts with the adapter attached vs merged into the weights."""
        if not prompts or getattr(lm, "adapter", None) is None or lm.merged or not hasattr(lm.model, "merge_and_unload"):
            return None
        t0 = time.perf_counter()
        with_adapter = self.generate(lm, prompts)
        adapter_s = time.perf_counter() - t0
        self.serve(lm)
        t0 = time.perf_counter()
        merged = self.generate(lm, prompts)
        merged_s = time.perf_counter() - t0
        n = len(prompts)
        return MergedLatency(
            n=n,
            adapter_latency_s_mean=adapter_s / n,
            merged_latency_s_mean=merged_s / n,
            adapter_wall_s=adapter_s,
            merged_wall_s=merged_s,
            same_outputs=[a.text for a in with_adapter] == [b.text for b in merged],
        )

    def environment(self) -> dict[str, Any]:
        return environment_record()


def environment_record() -> dict[str, Any]:
    import os
    import platform
    from importlib import metadata

    libs = {}
    for dist in (
        "ftharness",
        "torch",
        "transformers",
        "peft",
        "trl",
        "accelerate",
        "bitsandbytes",
        "datasets",
        "numpy",
        "jsonschema",
        "scikit-learn",
        "alt-profanity-check",
        "jinja2",
        "rich",
        "pluggy",
    ):
        try:
            libs[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "libraries": libs,
    }
    try:
        import torch

        env["torch_threads"] = torch.get_num_threads()
        env["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    return env


@dataclass(kw_only=True)
class ExperimentResult:
    """What :meth:`Experiment.run` measured, before the decision."""

    options: list[OptionRecord] = doc("every baseline and every finalist candidate, in task order")
    selection: dict[str, Selection] = doc("each sweep's points and finalist, by sweep name")
    data: dict[str, DataFile] = doc("train, eval, preference and validation rows, and the corpus's documents")
    suites: list[dict[str, Any]] = doc("the suites as defined")
    keys: dict[str, str] = doc("each option's evaluation key (what its state and samples are filed under)")
    wall_s: float = doc("seconds the experiment took")
    events: list[str] = doc("what was reused or computed, in order")
    phases: list[Phase] = doc("each phase's time and memory")


class Experiment:
    """One run of a task in a run folder. ``run()`` returns the option records and run metadata."""

    def __init__(
        self, task: Task, run: RunDir, backend: Backend | None = None, *, progress: bool = True
    ) -> None:
        self.task = task
        self.run_dir = run
        self.backend = backend or Backend(task)
        self.progress = progress
        self.data: LoadedData | None = None
        self._artifacts: dict[str, Any] = {}
        self._training: dict[str, Training] = {}
        self._distillation: dict[str, Distillation] = {}
        self._shared_suites: dict[str, SuiteResult] = {}
        self.events: list[str] = []  # what was reused / computed, for the terminal and tests
        self.phases = Phases()
        self._base_loaded = False
        self.retrieval = Retrieval(task, self.backend, self.phases, self.events)

    # keys ------------------------------------------------------------------------------------
    def eval_key(self, option: Option, options: dict[str, Option], suites: list[Any]) -> str:
        t = self.task
        return sha256_json(
            {
                "v": STATE_VERSION,
                "option": option.spec,
                "kind": option.kind,
                "parents": self._depends_on(option, options),
                "data": self.data.hashes if self.data else {},
                "base_model": t.spec.base_model,
                "generation": dataclasses.asdict(t.spec.generation),
                "seed": t.spec.seed,
                "suites": [s.to_dict() if hasattr(s, "to_dict") else str(s) for s in suites],
                "gates": [str(getattr(g, "text", g)) for g in t.gates],
                "instruction": t.instruction,
                "schema": t.schema,
            }
        )

    def _depends_on(self, option: Option, options: dict[str, Option]) -> list[Any]:
        """The specs of everything a candidate's weights depend on: its ``start_from`` chain, and its
        teacher with the teacher's own chain and the file of inputs it labels."""
        chain: list[Any] = []
        current = option
        while isinstance(current.entry, CandidateEntry):
            entry = current.entry
            if entry.teacher:
                teacher = options[entry.teacher]
                unlabeled = self.task.unlabeled_paths.get(current.name)
                chain.append({"teacher": teacher.spec, "teacher_parents": self._depends_on(teacher, options),
                              "unlabeled": sha256_file(unlabeled) if unlabeled else None})
            if not entry.start_from:
                break
            current = options[entry.start_from]
            chain.append(current.spec)
        return chain

    # the run ---------------------------------------------------------------------------------
    def run(self) -> ExperimentResult:
        t0 = time.perf_counter()
        with self.phases("load data"):
            self.data = self.backend.load_data()
        suites = self.backend.suites()
        # A slice field the eval rows lack is bad input: say so now, not after every option has run.
        check_slice_fields(
            (ex.meta for ex in self.data.eval.examples), self.slice_fields(suites), file=self.task.file
        )
        options = options_of(self.task)
        by_name = {o.name: o for o in options}
        keys = {o.name: self.eval_key(o, by_name, suites) for o in options}
        selection = self.select_sweeps(by_name, suites, keys)
        dropped = {p.name for s in selection.values() for p in s.points if p.name != s.chosen}
        records = []
        for option in options:
            if option.name in dropped:
                continue
            state = self.run_dir.read_state("eval", option.name)
            if state and state.get("key") == keys[option.name] and state.get("done"):
                self.events.append(f"reused evaluation of {option.name}")
                record = dataclasses.replace(from_json(OptionRecord, state["record"]), reused=True)
                records.append(record)
                if record.training is not None:
                    self._training[option.name] = record.training
                self.card(record)
                continue
            record = self.evaluate(option, by_name, suites, keys[option.name])
            self.run_dir.write_state(
                "eval", option.name, {"key": keys[option.name], "done": True, "record": to_json(record)}
            )
            records.append(record)
            self.card(record)
            release_memory()
        return ExperimentResult(
            options=records,
            selection=selection,
            data=self._data_record(),
            suites=[s.to_dict() for s in suites],
            keys={k: v for k, v in keys.items() if k not in dropped},
            wall_s=time.perf_counter() - t0,
            events=self.events,
            phases=self.phases.records,
        )

    def card(self, record: OptionRecord) -> None:
        """A scored candidate's eval-set values and gates into its artifact's model card
        (:func:`ftharness.training.card.record_evaluation`)."""
        from ftharness.training.card import record_evaluation

        if record.training is not None and record.training.artifact:
            record_evaluation(Path(record.training.artifact), run=self.run_dir.run_id, option=record.name,
                              metrics=record.metrics, gates=record.gates)

    def slice_fields(self, suites: list[Any]) -> list[str]:
        """The fields every option is sliced by: the task's, then each suite's, each once."""
        return list(dict.fromkeys([*self.task.spec.slices, *(f for s in suites for f in s.slices)]))

    def _data_record(self) -> dict[str, DataFile]:
        d = self.data
        out = {
            k: DataFile(path=str(p), sha256=d.hashes.get(k), n=len(ds))
            for k, p, ds in (
                ("train", self.task.train_path, d.train),
                ("eval", self.task.eval_path, d.eval),
                ("preference", self.task.preference_path, d.preference),
                ("corpus", self.task.corpus_path, d.corpus),
            )
            if ds is not None
        }
        if d.validation is not None:
            v = self.task.spec.validation
            out["validation"] = DataFile(
                path=str(self.task.validation_path) if self.task.validation_path else None,
                carved_from=None if self.task.validation_path else "train",
                fraction=None if self.task.validation_path else v.fraction,
                sha256=d.hashes.get("validation"),
                n=len(d.validation),
                trained_on=len(d.fit),
            )
        return out

    # sweeps, chosen without the eval set (ftharness.compare.selection) -----------------------------
    def select_sweeps(
        self, by_name: dict[str, Option], suites: list[Any], keys: dict[str, str]
    ) -> dict[str, Selection]:
        """Train the points of every sweep (all of them to the end, or by successive halving), score each
        on the validation rows and the selection part of the forgetting reference, keep one finalist."""
        spec = self.task.spec.decision
        out: dict[str, Selection] = {}
        for sweep, names in self.task.sweeps.items():
            strategy = by_name[names[0]].entry.sweep_strategy
            if strategy == "halving" and len(names) > 1:
                points, finalists, full = self.halve(names, by_name, suites, keys)
            else:
                points = [self.validate(by_name[n], by_name, suites, keys[n]) for n in names]
                finalists, full = names, None
            chosen = rank([p for p in points if p.name in finalists], spec.metric, spec.higher_is_better)[0]
            why = "" if chosen.feasible is not False else " (no point passed every gate measurable without the eval set)"
            self.events.append(f"validation chose {chosen.name} from sweep {sweep}{why}")
            trained = [p.global_step for p in points]
            out[sweep] = Selection(
                chosen=chosen.name,
                metric=spec.metric,
                on="validation",
                n=len(self.data.validation) if self.data.validation is not None else 0,
                points=points,
                strategy=strategy,
                feasible=chosen.feasible is not False,
                steps_trained=sum(trained) if all(t is not None for t in trained) else None,
                steps_grid=sum(self.full_steps(by_name[n]) for n in names) if full else None,
            )
        return out

    def halve(self, names: list[str], by_name: dict[str, Option], suites: list[Any],
              keys: dict[str, str]) -> tuple[list[SweepPoint], list[str], int]:
        """Successive halving over one sweep's points: (every point with its rungs, the points that reached
        the full budget, that budget in steps)."""
        spec = self.task.spec.decision
        full = max(self.full_steps(by_name[n]) for n in names)
        settings = by_name[names[0]].entry.halving or HalvingSpec()
        budgets = halving_budgets(full, len(names), settings.eta, settings.first)
        alive, stage, last = list(names), {}, {}
        rungs: dict[str, list[Rung]] = {n: [] for n in names}
        for r, steps in enumerate(budgets):
            final = r == len(budgets) - 1
            points = []
            for n in alive:
                option = by_name[n]
                art = self.artifact(option, by_name, stop_at_step=None if final else steps, resume_from=stage.get(n))
                stage[n] = art
                name = n if final else f"{n}@{steps}"
                points.append(self.validate(option, by_name, suites, f"{keys[n]}:{name}", art=art, state=name))
            keep = set() if final else {p.name for p in rank(points, spec.metric, spec.higher_is_better)[
                :survivors(len(points), settings.eta)]}
            for p in points:
                rungs[p.name].append(Rung(rung=r, steps=p.global_step if p.global_step is not None else steps,
                                          value=p.metrics.get(spec.metric), feasible=p.feasible is not False,
                                          promoted=p.name in keep))
                last[p.name] = p
            self.events.append(f"halving: rung {r} at {steps} steps validated {', '.join(p.name for p in points)}"
                               + (f"; {', '.join(sorted(keep))} continue" if keep else ""))
            if not final:
                alive = [n for n in alive if n in keep]
        points = [dataclasses.replace(last[n], rungs=rungs[n]) for n in names]
        return points, alive, full

    def full_steps(self, option: Option) -> int:
        """The optimizer steps a candidate trains at its full budget: ``max_steps``, else epochs times the
        steps of one pass over its rows (task rows, replay rows included) in batches of ``batch_size x
        grad_accum`` (as transformers counts them on one device)."""
        c = option.entry
        hp = self.task.hyperparameters[c.name]
        if getattr(hp, "max_steps", None):
            return int(hp.max_steps)
        rows = len(self.data.fit)
        if c.replay is not None:
            rows += replay.replay_count(c.replay.fraction, rows)
        per_step = int(getattr(hp, "batch_size", 8)) * int(getattr(hp, "grad_accum", 1))
        return max(1, math.ceil(float(getattr(hp, "epochs", 1.0)) * math.ceil(rows / per_step)))

    def validate(self, option: Option, by_name: dict[str, Option], suites: list[Any], key: str, *,
                 art: Any | None = None, state: str | None = None) -> SweepPoint:
        """One sweep point (``art``: one stage of it) served on the validation rows, scored by what a sweep
        may read (``ftharness.compare.selection.selection_suite``) and checked against the gates those
        values reach."""
        name = state or option.name
        saved = self.run_dir.read_state("validation", name)
        if saved and saved.get("key") == key and saved.get("done"):
            self.events.append(f"reused validation of {name}")
            if art is None:
                self.artifact(option, by_name)  # from the artifact cache; its training record is needed
            return from_json(SweepPoint, saved["record"])
        b = self.backend
        art = art if art is not None else self.artifact(option, by_name)
        examples = self.data.validation.examples
        with self.phases("load model", name):
            lm = b.load_trained(art)
            b.serve(lm)
        shown, hits = self.retrieval.view(option, examples, training=True)
        with self.phases("validate: generate", name):
            prompts = [b.render(lm, m) for m in b.messages(option, self.data, shown)]
            self._status(f"generating {name} on {len(prompts)} validation rows")
            t0 = time.perf_counter()
            outs = b.generate(lm, prompts, option.entry.constrained)
            wall = time.perf_counter() - t0
        samples = self._samples(examples, [_generated(g) for g in outs],
                                self.retrieval.rows_fields(option, hits, training=True))
        metrics, gates = self._selection_scores(suites, samples, lm, name, wall, retrieves=hits is not None)
        del lm
        release_memory()
        training = self._training[option.name]
        extra = training.extra  # what the trainer reports beyond the common figures
        losses = [p["eval_loss"] for p in training.loss_curve if p.get("eval_loss") is not None]
        point = SweepPoint(
            name=option.name,
            hyperparameters=dict(option.entry.hyperparameters),
            replay_fraction=option.entry.replay.fraction if option.entry.replay is not None else None,
            metrics=metrics,
            validation_loss=min(losses) if losses else None,  # the kept (best) checkpoint's
            stopped_early=extra.get("stopped_early"),
            restored_best_from_step=extra.get("restored_best_from_step"),
            training_wall_s=training.wall_s,
            global_step=extra.get("global_step"),
            outputs=[PointOutput(id=s.id, output=s.output) for s in samples],
            gates=gates,
            feasible=all(g.passed for g in gates),
        )
        self.run_dir.write_state("validation", name, {"key": key, "done": True, "record": to_json(point)})
        return point

    def _selection_scores(self, suites: list[Any], samples: list[Any], lm: Any, name: str, wall: float, *,
                          retrieves: bool) -> tuple[dict[str, float | None], list[GateOutcome]]:
        """What a sweep point is chosen on, and the gates it reaches: each suite's selection part, then the
        task's own gates on those values. A gate on a value nothing measured here is left out."""
        b = self.backend
        metrics: dict[str, float | None] = {}
        results: list[SuiteResult] = []
        gates: list[GateOutcome] = []
        with self.phases("validate: score", name):
            for suite in suites:
                part = selection_suite(suite)
                if part is None or (not retrieves and b.retrieval_only(suite)):
                    continue
                res = b.run_suite(part, samples, lm, name, wall)
                metrics.update(_metrics_of(res, len(samples))[0])
                results.append(res)
                gates.extend(dataclasses.replace(g, suite=suite.name) for g in res.gates if g.value is not None)
        gates.extend(g for g in self.task_gates(metrics, results) if g.value is not None)
        return metrics, gates

    def task_gates(self, metrics: dict[str, float | None], results: list[SuiteResult]) -> list[GateOutcome]:
        """The task file's own gates on ``metrics`` (METRIC.VALUE), each reading its value's interval where
        a suite result gives one."""
        from ftharness.suites.gates import check_gate

        intervals = {f"{name}.{k}": v for res in results for name, m in res.metrics.items()
                     for k, v in m.intervals.items()}
        out = []
        for gate in self.task.gates:
            values = {gate.value: metrics[gate.name]} if gate.name in metrics else None
            why = None if values else f"no suite of this task measures {gate.name}"
            out.append(check_gate(gate, values, why, suite="task", interval=intervals.get(gate.name)))
        return out

    def artifact(self, option: Option, by_name: dict[str, Option], *, stop_at_step: int | None = None,
                 resume_from: Any | None = None) -> Any:
        """Train (or take from the cache) a candidate and everything it starts from. ``stop_at_step`` and
        ``resume_from`` train one stage of successive halving (``ftharness.training.run``); a stage that
        stops early is not the candidate's artifact, the stage that trains to the end is."""
        if option.name in self._artifacts and stop_at_step is None and resume_from is None:
            return self._artifacts[option.name]
        parent = None
        if option.entry.start_from:
            parent = self.artifact(by_name[option.entry.start_from], by_name)
        data = self.data
        if option.entry.teacher:  # distilled: it trains on its teacher's labels, not on the training labels
            data = dataclasses.replace(data, fit=self.distill(option, by_name))
        data = self.retrieval.training_data(option, data)
        data = self.replay_data(option, data)
        stage = "" if stop_at_step is None else f" (to step {stop_at_step})"
        self.backend.drop_base()  # not two copies of the weights in memory while training
        release_memory()
        with self.phases("train", option.name + stage):
            art = self.backend.train(option, data, parent, self.progress, **staged(stop_at_step, resume_from))
        release_memory()
        result = art.result.to_dict() if hasattr(art.result, "to_dict") else dict(art.result)
        parent = self._training.get(option.entry.start_from or "")
        earlier = self._training.get(option.name) if resume_from is not None else None
        self._training[option.name] = from_json(
            Training,
            {
                **result,
                "cached": bool(getattr(art, "cached", False)),
                "artifact": str(art.path),
                # a continued stage adds to the stages before it (which hold the parent's time already)
                "total_wall_s": float(result["wall_s"]) + (
                    earlier.total_wall_s if earlier is not None else (parent.total_wall_s if parent else 0.0)),
                "start_from": option.entry.start_from,
            },
        )
        self.events.append(
            ("reused training of " if getattr(art, "cached", False) else "trained ") + option.name + stage
        )
        self._artifacts[option.name] = art
        return art

    def replay_data(self, option: Option, data: LoadedData) -> LoadedData:
        """The training rows with the candidate's replay rows mixed in (``ftharness.compare.replay``)."""
        spec = getattr(option.entry, "replay", None)
        if spec is None or data.fit is None:
            return data
        n = replay.replay_count(spec.fraction, len(data.fit))
        if n == 0:
            return data
        seed = option.spec["seed"]
        if spec.source == "self":
            prompts = replay.self_prompts()
            answers = replay.self_answers_cached(
                {"model": self.backend.model_identity(), "generation": distill.generation_key(self.task, None)},
                prompts, self._base_answers)
            rows = replay.self_rows(prompts, answers, n, seed)
        else:
            rows = replay.text_rows(spec.source, self.task.replay_paths.get(option.name), n, seed)
        self.events.append(f"{option.name} trains on {len(rows)} replay rows ({spec.source}) beside "
                           f"{len(data.fit)} task rows")
        return dataclasses.replace(data, fit=replay.with_replay(data.fit, rows))

    def _base_answers(self, prompts: list[str]) -> list[str]:
        b = self.backend
        lm = b.base_model()
        with self.phases("replay: generate", "base model"):
            self._status(f"the base model answers {len(prompts)} general prompts for self-rehearsal")
            outs = b.generate(lm, [b.render(lm, [{"role": "user", "content": p}]) for p in prompts])
        return [_generated(g)["output"] for g in outs]

    # distillation (ftharness.compare.distill) ----------------------------------------------------
    def distill(self, option: Option, by_name: dict[str, Option]) -> Any:
        """A distilled candidate's training rows: its teacher's labels of its inputs, from the label cache
        or generated now, those that fail the task's schema dropped. Records what it did and cost."""
        c = option.entry
        teacher = by_name[c.teacher]
        inputs, excluded = distill.teacher_inputs(self.data, self.task.unlabeled_paths.get(option.name))
        if not inputs.examples:
            raise BadInput("no input left to label: every one also occurs in the eval set or the validation split",
                           file=self.task.file, field=f"candidates.{option.name}.unlabeled")
        constrained = teacher.entry.constrained
        key = distill.labels_key(self.teacher_identity(teacher, by_name), inputs.examples,
                                 distill.generation_key(self.task, constrained))
        labels = distill.read_labels(key, len(inputs.examples))
        cached = labels is not None
        if labels is None:
            with self.phases("label: teacher", option.name):
                # a retrieving teacher reads the chunks each input retrieves, as it does when evaluated
                conversations = self.backend.teacher_messages(teacher, self.retrieval.prompt_data(teacher, self.data),
                                                              self.retrieval.view(teacher, inputs.examples)[0])
                self._status(f"teacher {teacher.name} labelling {len(conversations)} inputs for {option.name}")
                t0 = time.perf_counter()
                outs = self.teacher_generate(teacher, by_name, conversations)
                wall = time.perf_counter() - t0
            release_memory()
            labels = distill.write_labels(key, teacher.name, [_generated(g) for g in outs], wall)
        self.events.append(f"{'reused' if cached else 'made'} teacher labels of {teacher.name} for {option.name}")
        train, dropped, errors = distill.keep_valid(inputs, labels["rows"], self.task.schema)
        # what the artifact's record and model card name as its training data: the labels, not the inputs' file
        labels_file = distill.labels_path(key)
        train = dataclasses.replace(train, file=str(labels_file), sha256=sha256_file(labels_file))
        rows = labels["rows"]
        self._distillation[option.name] = Distillation(
            teacher=teacher.name,
            teacher_kind=distill.teacher_kind(teacher.entry),
            inputs=str(self.task.unlabeled_paths.get(option.name) or "train"),
            excluded=excluded,
            labelled=len(rows),
            kept=len(train.examples),
            dropped=dropped,
            drop_reasons=errors,
            cached=cached,
            key=key,
            wall_s=float(labels["wall_s"]),
            prompt_tokens=sum(int(r["prompt_tokens"]) for r in rows),
            new_tokens=sum(int(r["new_tokens"]) for r in rows),
            **self._labelling_price(teacher, rows),
        )
        if not train.examples:
            raise BadInput(f"teacher {teacher.name} wrote no label valid under the task's schema for the "
                           f"{len(rows)} inputs; choose a stronger teacher or constrain it (constrained: json-schema)",
                           file=self.task.file, field=f"candidates.{option.name}.teacher")
        return train

    def teacher_identity(self, teacher: Option, by_name: dict[str, Option]) -> dict[str, Any]:
        """What a teacher's labels depend on besides the inputs and generation settings: a candidate's
        artifact key (its base model, data, settings) and prompt; a baseline's spec (an endpoint's server and
        model), the local base model's hash, the instruction and the pool its shots are drawn from (and kept
        apart from)."""
        if teacher.kind == "candidate":
            return {"candidate": self.artifact(teacher, by_name).key, "spec": teacher.spec,
                    "instruction": self.task.instruction,
                    **({"knowledge": self.data.hashes.get("knowledge")} if teacher.entry.retrieval else {})}
        shots = None if teacher.entry.prompt_kind == "zero-shot" else [self.data.hashes["train"],
                                                                       self.data.hashes["eval"]]
        identity = {"baseline": teacher.spec, "instruction": self.task.instruction, "shots": shots}
        if teacher.entry.retrieval is not None:  # its prompts hold chunks of the knowledge base
            identity["knowledge"] = self.data.hashes.get("knowledge")
        if not is_endpoint(teacher):
            identity["base_model"] = self.backend.model_identity()
        return identity

    def teacher_generate(self, teacher: Option, by_name: dict[str, Option],
                         conversations: list[list[dict[str, str]]]) -> list[Any]:
        """The teacher's answers, generated as it is evaluated: an endpoint's by its server, a local
        baseline's by the base model, a candidate's by its artifact served as it is evaluated."""
        b = self.backend
        if is_endpoint(teacher):
            return b.generate_endpoint(teacher.entry, conversations)
        if teacher.kind == "candidate":
            lm = b.load_trained(self.artifact(teacher, by_name))
            b.serve(lm)
        else:
            lm = b.base_model()
        return b.generate(lm, [b.render(lm, m) for m in conversations], teacher.entry.constrained)

    @staticmethod
    def _labelling_price(teacher: Option, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """``usd`` and ``price_basis`` of a Distillation record: an endpoint's tokens at its stated prices; a
        local teacher has no token price."""
        if not is_endpoint(teacher):
            return {"usd": None, "price_basis": "a local teacher has no token price: its cost is its time (wall_s)"}
        e = teacher.entry.endpoint
        return {"usd": endpoint_usage(teacher.entry, rows).usd,
                "price_basis": f"{e.model} at ${e.price_per_million_input:g} per million input and "
                               f"${e.price_per_million_output:g} per million output tokens (stated in the task)"}

    def evaluate(self, option: Option, by_name: dict[str, Option], suites: list[Any], key: str) -> OptionRecord:
        b = self.backend
        training = None
        plan = merged = None
        unavailable: dict[str, str] = {}
        endpoint = is_endpoint(option)
        shown, hits = self.retrieval.view(option, self.data.eval.examples)
        messages = b.messages(option, self.retrieval.prompt_data(option, self.data), shown)
        if endpoint:  # the model is behind a server: the messages are the requests, no local weights
            lm = None
            prompts: list[Any] = messages
            generate = functools.partial(b.generate_endpoint, option.entry)
        else:
            if option.kind == "candidate":
                art = self.artifact(option, by_name)
                with self.phases("load model", option.name):
                    lm = b.load_trained(art)
                training = self._training[option.name]
            else:
                with self.phases("load model", "base") if not self._base_loaded else contextlib.nullcontext():
                    lm = b.base_model()
                self._base_loaded = True
            prompts = [b.render(lm, m) for m in messages]
            generate = functools.partial(b.generate, lm, constrained=option.entry.constrained)
        if option.kind == "candidate":
            n = self.task.spec.decision.merged_latency_prompts
            if n:  # attached first, then merged: the model is left as it is served
                with self.phases("merged latency", option.name):
                    merged = attempt(lambda: b.merged_latency(lm, prompts[:n]), MERGED_LATENCY, unavailable)
            b.serve(lm)
        with self.phases("generate", option.name):
            gens, gen_wall = self._generate_streaming(option, prompts, generate, key, hits)
        examples = self.data.eval.examples
        samples = self._samples(examples, gens, self.retrieval.rows_fields(option, hits))
        suite_results: dict[str, SuiteResult] = {}
        for suite in suites:
            name = suite.name
            if endpoint and b.model_only(suite):
                unavailable[f"suite {name}"] = ENDPOINT_MODEL_ONLY
                continue
            if hits is None and b.retrieval_only(suite):
                unavailable[f"suite {name}"] = RETRIEVES_NOTHING
                continue
            shared = option.kind == "baseline" and b.model_only(suite)
            if shared and name in self._shared_suites:
                suite_results[name] = dataclasses.replace(
                    self._shared_suites[name], option=option.name, shared_with_base_model=True
                )
                continue
            self._status(f"scoring {option.name} with suite {name}")
            faults.reached("score")  # test hook (ftharness.faults)
            with self.phases(f"score: {name}", option.name):
                res = b.run_suite(suite, samples, lm, option.name, gen_wall)
            if shared:
                self._shared_suites[name] = res
            suite_results[name] = res
        if option.kind == "candidate":
            plan = attempt(lambda: b.plan(option, self.data, self._seq_len(gens)), PLAN, unavailable)
        return self._record(
            option, suite_results, samples, gens, gen_wall, self.slice_fields(suites),
            training=training, plan=plan, merged_latency=merged, unavailable=unavailable,
            distillation=self._distillation.get(option.name),
            retrieval=self.retrieval.record(option),
            served=("merged" if getattr(lm, "merged", False) else "as trained") if option.kind == "candidate" else None,
        )

    def _samples(self, examples: list[Any], gens: list[dict[str, Any]],
                 retrieved: list[dict[str, Any]] | None = None) -> list[Any]:
        """The suites' samples: each example with its generated row (``_generated`` fields) and, for an option
        that retrieves, what its prompt held (``retrieved``: ``Retrieval.rows_fields``)."""
        return [
            self.backend.sample(
                id=i,
                input=ex.input_text,
                output=g["output"],
                reference=ex.completion,
                meta=dict(ex.meta),
                prompt_tokens=g["prompt_tokens"],
                new_tokens=g["new_tokens"],
                latency_s=g["latency_s"],
                **(retrieved[i] if retrieved is not None else {}),
            )
            for i, (ex, g) in enumerate(zip(examples, gens, strict=True))
        ]

    def _seq_len(self, gens: list[dict]) -> int:
        longest = max((g["prompt_tokens"] + g["new_tokens"] for g in gens), default=256)
        return int(longest)

    def _status(self, message: str) -> None:
        if self.progress:
            ui.status(message)

    def _generate_streaming(
        self, option: Option, prompts: list[Any], generate: Callable[[list[Any]], list[Any]], key: str,
        hits: list[list[Any]] | None = None,
    ) -> tuple[list[dict], float]:
        """Generate in batches of similar length (``generate(batch)``: rendered prompts for a local model,
        message lists for an endpoint), appending each finished batch to the samples file; samples already
        in the file for this key are kept, not generated again. A line a kill cut short is dropped from the
        file first (its row is generated again), so no row is ever glued to it."""
        path = self.run_dir.samples_file(option.name)
        retrieved = self.retrieval.rows_fields(option, hits)
        done = {r["id"]: r for r in repair_jsonl(path) if r.get("key") == key}
        if path.exists() and not done:
            path.unlink()  # samples of an older key: start the file again
        todo = [i for i in range(len(prompts)) if i not in done]
        todo.sort(key=lambda i: len(str(prompts[i])))
        size = max(1, self.task.spec.generation.batch_size)
        examples = self.data.eval.examples
        wall = sum(
            float(r.get("batch_wall_s", 0.0)) / max(1, int(r.get("batch_n", 1))) for r in done.values()
        )
        with ui.progress(f"generating {option.name}", len(prompts), completed=len(done), show=self.progress) as step:
            for start in range(0, len(todo), size):
                batch = todo[start : start + size]
                faults.reached("generate")  # test hook (ftharness.faults)
                t0 = time.perf_counter()
                outs = generate([prompts[i] for i in batch])
                took = time.perf_counter() - t0 + _cached_wall(outs, option)
                wall += took
                rows = []
                for i, g in zip(batch, outs, strict=True):
                    row = {
                        "key": key,
                        "option": option.name,
                        "id": i,
                        "input": examples[i].input_text,
                        "reference": examples[i].completion,
                        "meta": examples[i].meta,
                        **_generated(g),
                        **(retrieved[i] if retrieved is not None else {}),
                        "batch_wall_s": took,
                        "batch_n": len(batch),
                    }
                    done[i] = row
                    rows.append(row)
                append_jsonl(path, rows)
                step.advance(len(batch))
        return [done[i] for i in range(len(prompts))], wall

    def _record(
        self,
        option: Option,
        suites: dict[str, SuiteResult],
        samples: list[Any],
        gens: list[dict],
        gen_wall: float,
        slice_fields: list[str],
        **candidate: Any,
    ) -> OptionRecord:
        """The option's record; ``candidate`` holds the fields only a candidate fills (training, plan, ...)."""
        metrics: dict[str, float | None] = {}
        per_sample: dict[str, list[float | None]] = {}
        gates = []
        for sname, res in suites.items():
            m, ps = _metrics_of(res, len(gens))
            for k, v in m.items():
                metrics.setdefault(k, v)
            for k, v in ps.items():
                per_sample.setdefault(k, v)
            gates.extend(dataclasses.replace(g, suite=sname) for g in res.gates)
        gates.extend(self.task_gates(metrics, list(suites.values())))
        slices = compute_slices(samples, per_sample, slice_fields, file=self.task.file)
        lat = [g["latency_s"] for g in gens]
        new = sum(g["new_tokens"] for g in gens)
        cost = Cost(
            prompt_tokens_mean=statistics.fmean(g["prompt_tokens"] for g in gens) if gens else 0.0,
            new_tokens_mean=statistics.fmean(g["new_tokens"] for g in gens) if gens else 0.0,
            latency_s_mean=statistics.fmean(lat) if lat else None,
            latency_s_p50=statistics.median(lat) if lat else None,
            generation_wall_s=gen_wall,
            tokens_per_s=new / gen_wall if gen_wall > 0 else None,
            hit_max_new_tokens=sum(1 for g in gens if g.get("finish_reason") == "length"),
        )
        return OptionRecord(
            name=option.name,
            kind=option.kind,
            spec=option.spec,
            metrics=metrics,
            per_sample=per_sample,
            gates=gates,
            slices=slices,
            suites=suites,
            cost=cost,
            samples_file=f"samples/{option.name}.jsonl",
            endpoint=endpoint_usage(option.entry, gens) if is_endpoint(option) else None,
            **candidate,
        )


def staged(stop_at_step: int | None, resume_from: Any | None) -> dict[str, Any]:
    """The keyword arguments of one halving stage, none for a whole training (so a backend that trains only
    whole candidates keeps its signature)."""
    return {k: v for k, v in (("stop_at_step", stop_at_step), ("resume_from", resume_from)) if v is not None}


def attempt(fn: Callable[[], Any], what: str, unavailable: dict[str, str]) -> Any:
    """``fn()``, or None with the reason filed under ``unavailable[what]``: an estimate or a provenance
    record that cannot be made is reported, never fatal."""
    try:
        return fn()
    except Exception as e:
        unavailable[what] = f"{type(e).__name__}: {e}"
        ui.warn(f"{what} unavailable: {unavailable[what]}")
        return None


def _generated(g: Any) -> dict[str, Any]:
    """One generation (``ftharness.models.generation.Generation``) as the plain fields a row keeps; an
    endpoint's also whether it came from the cache, how many HTTP attempts it took and whether the server
    reported its token usage."""
    row = {
        "output": g.text,
        "prompt_tokens": int(g.prompt_tokens),
        "new_tokens": int(g.new_tokens),
        "latency_s": float(g.latency_s),
        "finish_reason": g.finish_reason,
    }
    if isinstance(g, EndpointGeneration):
        row.update(cached=g.cached, attempts=g.attempts, usage=g.usage, cut=g.cut)
    return row


def _cached_wall(outs: list[Any], option: Option) -> float:
    """Endpoint rows answered from the cache take no time now: their latency as first measured, spread over
    the endpoint's ``concurrency``, stands in for the wall time they took then (0 for anything else)."""
    cached = [g.latency_s for g in outs if isinstance(g, EndpointGeneration) and g.cached]
    if not cached:
        return 0.0
    return sum(cached) / min(option.entry.endpoint.concurrency, len(outs))


def endpoint_usage(entry: BaselineEntry, gens: list[dict[str, Any]]) -> EndpointUsage:
    """What an endpoint baseline's eval rows cost at its stated prices, from the server's usage counts."""
    e = entry.endpoint
    tokens_in = sum(g["prompt_tokens"] for g in gens)
    tokens_out = sum(g["new_tokens"] for g in gens)
    usd = (tokens_in * e.price_per_million_input + tokens_out * e.price_per_million_output) / 1e6
    return EndpointUsage(
        base_url=e.base_url,
        model=e.model,
        requests=len(gens),
        cached=sum(1 for g in gens if g.get("cached")),
        attempts=sum(int(g.get("attempts", 1)) for g in gens),
        without_usage=sum(1 for g in gens if not g.get("usage", True)),
        cut=sum(1 for g in gens if g.get("cut")),
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        price_per_million_input=e.price_per_million_input,
        price_per_million_output=e.price_per_million_output,
        usd=usd,
        usd_per_1k_requests=usd / len(gens) * 1000 if gens else 0.0,
    )


def _metrics_of(
    result: SuiteResult, n: int
) -> tuple[dict[str, float | None], dict[str, list[float | None]]]:
    """``metric.value -> number`` and the per-sample scores (those covering all ``n`` samples) of one
    suite result."""
    metrics = {f"{mname}.{vname}": v for mname, m in result.metrics.items() for vname, v in m.values.items()}
    per_sample = {name: scores for name, scores in result.per_sample().items() if len(scores) == n}
    return metrics, per_sample

