"""The heavy pieces of a comparison behind one object: data, the base model, training, suites, plans.

:class:`Backend` loads the task's data (and carves the validation split), holds the base model, trains a
candidate (``ftharness.training.run.train_candidate``), builds each option's prompts and what an engine is
given to serve it (:meth:`Backend.engine_target`; generation is the engines', ``ftharness.models.engines``),
runs the suites and asks the planner. :class:`~ftharness.compare.experiment.Experiment` orchestrates it;
tests substitute a backend whose models are rules and whose engine is a registered fake.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftharness.compare.task import BaselineEntry, CandidateEntry, Task, data_kind
from ftharness.io import sha256_file, sha256_json
from ftharness.models.endpoint import EndpointGeneration
from ftharness.suites.runner import SuiteResult


@dataclass
class Option:
    name: str
    kind: str  # "baseline" | "candidate"
    entry: BaselineEntry | CandidateEntry
    spec: dict[str, Any] = field(default_factory=dict)


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
    """Every baseline and candidate with its spec: what it is, as written, with its seed, a candidate's data
    kind and the engine it is served by (``engine``: left out for the local engine, so the spec and the
    evaluation key of an option on it are as before engines)."""
    out = []
    for b in task.spec.baselines:
        spec = dataclasses.asdict(b)
        if b.kind != "endpoint":  # a local baseline's spec (and its evaluation key) stays as it was
            spec.pop("shots")
            spec.pop("endpoint")
        spec["seed"] = task.spec.seed if b.seed is None else b.seed
        _engine(spec, task, b.name)
        out.append(Option(b.name, "baseline", b, spec))
    for c in task.candidates:
        spec = dataclasses.asdict(c)
        spec.pop("sweep", None)
        for name, default in (("replay", None), ("sweep_strategy", "grid"), ("halving", None)):
            if spec.get(name) == default:  # the spec (and evaluation key) of a candidate without them is unchanged
                spec.pop(name)
        spec["seed"] = task.spec.seed if c.seed is None else c.seed
        spec["data"] = data_kind(c)
        _engine(spec, task, c.name)
        out.append(Option(c.name, "candidate", c, spec))
    return out


def _engine(spec: dict[str, Any], task: Task, name: str) -> None:
    choice = task.engines.get(name)
    spec.pop("engine", None)
    if choice is not None and choice.written is not None:
        spec["engine"] = choice.written


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
            launch=c.launch,
            **staged(stop_at_step, resume_from),
        )

    def load_trained(self, artifact: Any) -> Any:
        """A trained candidate in this process, as trained (its adapter attached)."""
        from ftharness.models.loading import load_model

        return load_model(**artifact.model_args())

    def engine_target(self, name: str, settings: Any, artifact: Any | None, work_dir: Path) -> Any:
        """What an engine is given to serve option ``name`` (``ftharness.models.engines.EngineTarget``):
        the base model (``artifact`` None) or a trained candidate, with loaders it calls only if it needs
        the weights here or a folder of them."""
        from ftharness.models.engines import EngineTarget

        def base() -> Path:
            from ftharness.models.loading import local_model_dir

            return local_model_dir(self._base_spec())

        return EngineTarget(
            option=name,
            settings=settings,
            load=self.base_model if artifact is None else (lambda: self.load_trained(artifact)),
            folder=base if artifact is None else (lambda: Path(artifact.path)),
            artifact=artifact,
            base_folder=base,
            work_dir=work_dir,
            file=self.task.file,
            field=f"{name}.engine",
        )

    # prompts ---------------------------------------------------------------------------------
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

    def reads_model(self, suite: Any) -> bool:
        """True when some metric of the suite reads the model's weights (it is given them; others are not)."""
        from ftharness.suites.evaluate import suite_needs_model

        return suite_needs_model(suite)[0]

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
        """The planner's estimate for the candidate as trained here (fp32 on CPU), from the inputs its trainer
        supplies for its method and typed hyperparameters (the trainer's ``plan_inputs``); None when the
        trainer supplies none (no memory model for the method)."""
        from ftharness.models.loading import local_model_dir
        from ftharness.planner import PlanRequest, estimate
        from ftharness.plugins import get_plugins

        c = option.entry
        supply = getattr(get_plugins().trainer(c.trainer).obj, "plan_inputs", None)
        inputs = supply(c.method, self.task.hyperparameters[c.name]) if callable(supply) else None
        if inputs is None:
            return None
        block_size = inputs.pop("block_size", None)
        config = local_model_dir(self._base_spec()) / "config.json"
        amount: dict[str, Any] = {"seq_len": seq_len}
        if option.spec["data"] == "corpus":  # packed blocks of the corpus's tokens, counted as training packs them
            from ftharness.data.corpus import document_ids
            from ftharness.training.sequences import max_positions, resolve_block_size

            positions = max_positions(json.loads(config.read_text(encoding="utf-8")))
            tokenizer = self.base_model().tokenizer
            amount = {"seq_len": resolve_block_size(block_size, positions),
                      "corpus_tokens": sum(len(document_ids(tokenizer, d.completion)) for d in data.corpus.examples)}
        else:
            amount["examples"] = len(data.preference if option.spec["data"] == "preference" else data.fit)
        req = PlanRequest(model=str(config), precision="fp32", gpu=self.task.spec.decision.gpu, **amount, **inputs)
        return estimate(req).to_dict()

    def environment(self) -> dict[str, Any]:
        return environment_record()


def staged(stop_at_step: int | None, resume_from: Any | None) -> dict[str, Any]:
    """The keyword arguments of one halving stage, none for a whole training (so a backend that trains only
    whole candidates keeps its signature)."""
    return {k: v for k, v in (("stop_at_step", stop_at_step), ("resume_from", resume_from)) if v is not None}


def generated_row(g: Any) -> dict[str, Any]:
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
