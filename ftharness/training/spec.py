"""Candidate specs: checking one against its trainer's hyperparameter contract, and candidate files.

:func:`validate_candidate` is the one hyperparameter check: compare's task check (every sweep point),
``ftharness train`` (candidate files) and ``train_candidate`` call it, so the same values are accepted or
refused everywhere. It checks the hyperparameters against the class the candidate's *own* trainer declares
for its method (``trainer.hyperparameters(method)``), never against another trainer's.

A candidate file is what ``ftharness train CANDIDATE.yaml`` reads: a :class:`CandidateSpec` plus the data
to train on and the task instruction.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ftharness.errors import BadInput
from ftharness.hyperparameters import NoHyperparameters
from ftharness.planner.strategies import LaunchSettings
from ftharness.training.launch import check_launch
from ftharness.training.trainer import CandidateSpec
from ftharness.typed import from_mapping, load_mapping, resolve_path, spec, text_or_file

COMBINE_METHOD = "combine"  # an adapter combination (merging.combine_adapters), not a training method


def hyperparameter_class(trainer: Any, method: str) -> type:
    """The dataclass of what ``trainer`` accepts for ``method`` (nothing, when it declares no classes)."""
    declared = getattr(trainer, "hyperparameters", None)
    return NoHyperparameters if declared is None else declared(method)


def validate_candidate(spec: CandidateSpec, *, source: str | Path | None = None, prefix: str = "") -> Any:
    """``spec``'s hyperparameters typed by the class its trainer declares for its method, defaults filled in.

    BadInput (file ``source``, field ``{prefix}trainer``, ``{prefix}method``, ``{prefix}start_from`` or
    ``{prefix}hyperparameters.NAME``) when the trainer is unknown or does not train the method (from
    ``start_from``, when the spec has one), or a hyperparameter is unknown, mistyped or out of range.
    """
    from ftharness.plugins import get_plugins

    plugins = get_plugins()
    plugins.training_method(spec.trainer, spec.method, start_from=bool(spec.start_from), file=source,
                            field_prefix=prefix)
    return from_mapping(hyperparameter_class(plugins.trainer(spec.trainer).obj, spec.method), spec.hyperparameters,
                        source=source, prefix=f"{prefix}hyperparameters.",
                        kind=f"hyperparameter for {spec.trainer}/{spec.method}")


MODULE_FIELDS = ("target_modules", "feedforward_modules")  # hyperparameters that name layers of the model


def check_layers(
    hyperparameters: Any, base_model: str | Path | None, *, source: str | Path | None = None, prefix: str = "",
    lines: dict[str, int] | None = None,
) -> None:
    """What the hyperparameters ask of the base model's layers, checked before any training loads weights.

    Each name listed in ``target_modules`` / ``feedforward_modules`` matches a layer of the base model as
    PEFT matches it (the layer's dotted name, or its end after a dot). PEFT itself refuses only a list that
    matches nothing, and only once the model is loaded for training; a typo among several names would
    otherwise train fewer layers than asked. A pattern (text other than ``all-linear``) is PEFT's to match.
    A LoRA rank ``r`` is at most the model's hidden size: a low-rank update of a layer has rank at most its
    smaller side, so a larger ``r`` holds more parameters than a full update (the planner's rule), and would
    allocate them before failing for memory. ``lines`` gives each field's line in ``source``."""
    lines = lines or {}
    r = getattr(hyperparameters, "r", None)
    if isinstance(r, int) and not isinstance(r, bool):
        _check_rank(r, base_model, source=source, field=f"{prefix}hyperparameters.r", line=lines.get("r"))
    lists = {f: getattr(hyperparameters, f) for f in MODULE_FIELDS if isinstance(getattr(hyperparameters, f, None), list)}
    if not lists:
        return
    from ftharness.models.loading import layer_names

    layers = layer_names(base_model)
    for name, targets in lists.items():
        for i, target in enumerate(targets):
            if not any(n == target or n.endswith(f".{target}") for n in layers):
                linear = sorted({n.rsplit(".", 1)[-1] for n, kind in layers.items() if kind == "Linear"})
                raise BadInput(f"{target!r} names no layer of the base model; its linear layers are: "
                               f"{', '.join(linear)}", file=source, line=lines.get(name),
                               field=f"{prefix}hyperparameters.{name}[{i}]")


HIDDEN_SIZE_KEYS = ("hidden_size", "n_embd", "d_model")  # what configs call the model width (Llama, GPT-2, T5)


def _check_rank(r: int, base_model: str | Path | None, *, source: str | Path | None, field: str,
                line: int | None) -> None:
    from ftharness.models.loading import is_embedded

    if is_embedded(base_model):  # its shape is the planner's preset: no need to convert the GGUF file to read it
        from ftharness.models.embedded import EMBEDDED_NAME
        from ftharness.planner.catalogue import resolve_model

        hidden = resolve_model(EMBEDDED_NAME).hidden
    else:
        from ftharness.io import read_json_file
        from ftharness.models.loading import resolve

        base, _ = resolve(base_model)
        config = read_json_file(base / "config.json") if (base / "config.json").is_file() else {}
        hidden = next((config[k] for k in HIDDEN_SIZE_KEYS if isinstance(config.get(k), int)), None)
    if hidden is not None and r > hidden:
        raise BadInput(f"rank {r} is above the base model's hidden size {hidden}: more trainable parameters than "
                       f"a full update; use at most {hidden}", file=source, line=line, field=field)


def hyperparameter_values(hyperparameters: Any) -> dict[str, Any]:
    """The typed hyperparameters as a plain mapping (artifact keys and records, reports)."""
    return dataclasses.asdict(hyperparameters)


# -- candidate files ----------------------------------------------------------------------------------


@dataclass
class CandidateData:
    train: str | None = None  # JSONL, relative to the candidate file
    eval: str | None = None
    format: str = "auto"
    corpus: str | None = None  # raw text (ftharness.data.corpus) for a method that trains on a corpus


@dataclass
class CandidateFileFields:
    """The fields of a candidate file (YAML or JSON)."""

    name: str
    trainer: str = "peft"
    method: str = "lora"
    base_model: str | None = None
    start_from: str | None = None  # another candidate file: train on top of its artifact
    combine: list[str] = field(default_factory=list)  # candidate files whose adapters `method: combine` merges
    hyperparameters: dict[str, Any] = field(default_factory=dict)  # checked against the trainer's class
    seed: int = 0
    data: CandidateData = field(default_factory=CandidateData)
    system_prompt: str | None = None  # the task instruction, exactly as the baselines get it
    system_prompt_file: str | None = None  # ... or read from this text file (relative to the candidate file)
    launch: LaunchSettings | None = spec(None, help="train on several processes: {processes, strategy, config} "
                                                    "(ftharness.training.launch)")


@dataclass
class CandidateFile:
    spec: CandidateSpec
    path: Path
    train_path: Path | None
    eval_path: Path | None
    data_format: str
    system_prompt: str | None
    start_from: CandidateFile | None = None
    combine: list[CandidateFile] = field(default_factory=list)
    corpus_path: Path | None = None
    hyperparameters: Any = None  # typed by the trainer's class, checked once here (None for `method: combine`)
    launch: LaunchSettings | None = None  # None: one process


def load_candidate_file(path: str | Path, *, _seen: tuple[Path, ...] = ()) -> CandidateFile:
    """Read and check a candidate file, and the candidate files it starts from or combines."""
    path = Path(path)
    fields = from_mapping(CandidateFileFields, load_mapping(path), source=path)
    spec = CandidateSpec(
        name=fields.name, trainer=fields.trainer, method=fields.method, base_model=fields.base_model,
        start_from=fields.start_from, hyperparameters=fields.hyperparameters, seed=fields.seed,
    )
    here = path.resolve()
    if here in _seen:
        raise BadInput("candidate files refer to each other in a loop", file=path, field="start_from")
    seen = (*_seen, here)

    def _other(ref: str, name: str) -> CandidateFile:
        other = resolve_path(ref, path)
        if other is None or not other.is_file():
            raise BadInput(f"{ref!r} is not a candidate file (path relative to this file)", file=path, field=name)
        return load_candidate_file(other, _seen=seen)

    start = _other(fields.start_from, "start_from") if fields.start_from else None
    combine = [_other(ref, f"combine[{i}]") for i, ref in enumerate(fields.combine)]
    typed = None
    launch = check_launch(fields.launch, source=path, field="launch")
    if spec.method == COMBINE_METHOD:
        if launch is not None:
            raise BadInput("`method: combine` merges adapters without training; it has nothing to launch",
                           file=path, field="launch")
        if len(combine) < 2:
            raise BadInput("`method: combine` needs at least two candidate files under `combine`", file=path,
                           field="combine")
        combine_settings(spec, source=path)
    else:
        if combine:
            raise BadInput("`combine` is only for `method: combine`", file=path, field="combine")
        typed = validate_candidate(spec, source=path)
        check_layers(typed, fields.base_model, source=path, lines=getattr(fields.hyperparameters, "lines", {}))
        from ftharness.plugins import get_plugins

        if get_plugins().training_method(spec.trainer, spec.method).data == "teacher":
            raise BadInput(f"{spec.method} trains on a teacher's labels, and a candidate file has no teacher to "
                           "run: add it to a task file with `teacher:` and run `ftharness compare`", file=path,
                           field="method")
        corpus = corpus_method(spec)
        if corpus and not fields.data.corpus:
            raise BadInput(f"required: {spec.method} trains on a raw-text corpus", file=path, field="data.corpus")
        for name in ("train", "eval") if corpus else ("corpus",):
            if getattr(fields.data, name):
                raise BadInput(f"{spec.method} does not read data.{name}; it trains on "
                               f"{'data.corpus' if corpus else 'data.train'}", file=path, field=f"data.{name}")
        if not corpus and not fields.data.train:
            raise BadInput("required: the training data file", file=path, field="data.train")
    system_prompt = text_or_file(fields.system_prompt, fields.system_prompt_file,
                                 names=("system_prompt", "system_prompt_file"), source=path)
    train_path = resolve_path(fields.data.train, path)
    eval_path = resolve_path(fields.data.eval, path)
    corpus_path = resolve_path(fields.data.corpus, path)
    if corpus_path is not None:
        from ftharness.data.corpus import check_corpus

        check_corpus(corpus_path, source=path, field="data.corpus")
    for value, p, name in ((fields.data.train, train_path, "data.train"), (fields.data.eval, eval_path, "data.eval")):
        if value and (p is None or not p.is_file()):
            raise BadInput(f"data file not found: {p}", file=path, field=name)
    return CandidateFile(
        spec=spec, path=path, train_path=train_path, eval_path=eval_path, data_format=fields.data.format,
        system_prompt=system_prompt, start_from=start, combine=combine, corpus_path=corpus_path,
        hyperparameters=typed, launch=launch,
    )


def corpus_method(spec: CandidateSpec) -> bool:
    """Whether the candidate's method is declared to train on a raw-text corpus."""
    from ftharness.plugins import get_plugins

    return get_plugins().training_method(spec.trainer, spec.method).data == "corpus"


CombinationType = Literal["linear", "ties", "dare_ties", "dare_linear", "cat", "svd", "ties_svd", "magnitude_prune"]


@dataclass
class CombineSettings:
    """The ``hyperparameters`` of a ``method: combine`` candidate (PEFT's ``add_weighted_adapter``)."""

    weights: list[float] | None = spec(None, help="one weight per combined adapter; null: equal weights")
    combination_type: CombinationType = spec("linear", source="PEFT add_weighted_adapter's default")
    density: float | None = spec(None, gt=0, le=1, help="share of each adapter's weights kept (ties, dare, "
                                 "magnitude_prune); null: 0.5 (ftharness.training.merging)")


def combine_settings(spec: CandidateSpec, *, source: str | Path | None = None) -> CombineSettings:
    return from_mapping(CombineSettings, spec.hyperparameters, source=source, prefix="hyperparameters.",
                        kind="setting for combine")
