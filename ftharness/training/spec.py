"""Candidate specs: hyperparameter defaults (``defaults.yaml``), their checking, and candidate files.

A candidate file is what ``ftharness train CANDIDATE.yaml`` reads: a :class:`CandidateSpec` plus the data
to train on and the task instruction. ``compare`` builds :class:`CandidateSpec` objects from its task file
instead and calls :func:`resolve_hyperparameters` the same way, so both reject the same mistakes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from ftharness.config import from_mapping, load_mapping, resolve_path
from ftharness.errors import BadInput
from ftharness.training.trainer import CandidateSpec

COMBINE_METHOD = "combine"  # an adapter combination (merging.combine_adapters), not a training method


@lru_cache(maxsize=1)
def _defaults() -> dict[str, Any]:
    import yaml

    return yaml.safe_load(Path(__file__).with_name("defaults.yaml").read_text(encoding="utf-8"))


def hyperparameter_table(method: str) -> dict[str, dict[str, Any]]:
    """Every hyperparameter ``method`` accepts: ``{name: {value, type, source}}`` (common ones first)."""
    data = _defaults()
    own = dict(data["methods"].get(method) or {})
    drop = set(own.pop("drop", []) or [])
    table = {k: dict(v) for k, v in data["common"].items() if k not in drop}
    for name, entry in own.items():
        table[name] = dict(entry)
    for entry in table.values():
        entry["source_text"] = data["sources"].get(entry.get("source"), entry.get("source"))
    return table


def resolve_hyperparameters(spec: CandidateSpec, *, source: str | Path | None = None) -> dict[str, Any]:
    """The spec's hyperparameters on top of the method's defaults, each checked for name and type."""
    table = hyperparameter_table(spec.method)
    values = {name: entry["value"] for name, entry in table.items()}
    for name, value in (spec.hyperparameters or {}).items():
        if name not in table:
            known = ", ".join(sorted(table))
            raise BadInput(
                f"unknown hyperparameter for method {spec.method!r}; known: {known}",
                file=source,
                field=f"hyperparameters.{name}",
            )
        values[name] = _check_type(value, table[name]["type"], source, f"hyperparameters.{name}")
    for name in ("epochs", "learning_rate"):
        if name in values and values[name] <= 0:
            raise BadInput(f"must be > 0, got {values[name]}", file=source, field=f"hyperparameters.{name}")
    for name in ("batch_size", "grad_accum", "eval_batch_size", "max_length", "logging_steps", "r"):
        if name in values and values[name] < 1:
            raise BadInput(f"must be >= 1, got {values[name]}", file=source, field=f"hyperparameters.{name}")
    for name in ("eval_steps", "max_steps", "checkpoint_steps"):
        if values.get(name) is not None and values[name] < 1:
            raise BadInput(f"must be >= 1 (or null), got {values[name]}", file=source, field=f"hyperparameters.{name}")
    w = values.get("prompt_loss_weight")
    if w is not None and not 0.0 <= w <= 1.0:
        raise BadInput(f"must be between 0 and 1, got {w}", file=source, field="hyperparameters.prompt_loss_weight")
    return values


def _check_type(value: Any, kind: str, source: Any, name: str) -> Any:
    kinds = kind.split("|")
    if value is None:
        if "null" in kinds:
            return None
        raise BadInput(f"expected {kinds[0]}, got nothing (null)", file=source, field=name)
    for k in kinds:
        if k == "int" and isinstance(value, int) and not isinstance(value, bool):
            return value
        if k == "float" and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if k == "bool" and isinstance(value, bool):
            return value
        if k == "str" and isinstance(value, str):
            return value
        if k == "targets" and (
            isinstance(value, str) or (isinstance(value, list) and value and all(isinstance(v, str) for v in value))
        ):
            return value
    wanted = {"int": "a whole number", "float": "a number", "bool": "true or false", "str": "text",
              "targets": "a module name, a list of them, or all-linear"}
    said = " or ".join(wanted.get(k, k) for k in kinds if k != "null")
    raise BadInput(f"expected {said}, got {type(value).__name__} ({value!r})", file=source, field=name)


def check_spec(spec: CandidateSpec, *, source: str | Path | None = None) -> Any:
    """Check that the spec's trainer exists and trains its method (from ``start_from`` too, when it has
    one); returns the trainer object."""
    from ftharness.plugins import get_plugins

    if spec.method == COMBINE_METHOD:
        return None
    plugins = get_plugins()
    plugins.training_method(spec.trainer, spec.method, start_from=bool(spec.start_from), file=source)
    resolve_hyperparameters(spec, source=source)
    return plugins.trainer(spec.trainer).obj


# -- candidate files ----------------------------------------------------------------------------------


@dataclass
class CandidateData:
    train: str | None = None  # JSONL, relative to the candidate file
    eval: str | None = None
    format: str = "auto"


@dataclass
class CandidateFileFields:
    """The fields of a candidate file (YAML or JSON)."""

    name: str
    trainer: str = "peft"
    method: str = "lora"
    base_model: str | None = None
    start_from: str | None = None  # another candidate file: train on top of its artifact
    combine: list[str] = field(default_factory=list)  # candidate files whose adapters `method: combine` merges
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    data: CandidateData = field(default_factory=CandidateData)
    system_prompt: str | None = None  # the task instruction, exactly as the baselines get it
    system_prompt_file: str | None = None  # ... or read from this text file (relative to the candidate file)


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


def load_candidate_file(path: str | Path, *, _seen: tuple[Path, ...] = ()) -> CandidateFile:
    """Read and check a candidate file, and the candidate files it starts from or combines."""
    path = Path(path)
    fields = from_mapping(CandidateFileFields, load_mapping(path), source=path)
    spec = CandidateSpec(
        name=fields.name, trainer=fields.trainer, method=fields.method, base_model=fields.base_model,
        start_from=fields.start_from, hyperparameters=dict(fields.hyperparameters), seed=fields.seed,
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
    if spec.method == COMBINE_METHOD:
        if len(combine) < 2:
            raise BadInput("`method: combine` needs at least two candidate files under `combine`", file=path,
                           field="combine")
        _check_combination(spec, path)
    else:
        if combine:
            raise BadInput("`combine` is only for `method: combine`", file=path, field="combine")
        check_spec(spec, source=path)
        if not fields.data.train:
            raise BadInput("required: the training data file", file=path, field="data.train")
    system_prompt = fields.system_prompt
    if fields.system_prompt_file:
        if system_prompt is not None:
            raise BadInput("give system_prompt or system_prompt_file, not both", file=path, field="system_prompt_file")
        prompt_path = resolve_path(fields.system_prompt_file, path)
        if prompt_path is None or not prompt_path.is_file():
            raise BadInput(f"file not found: {prompt_path}", file=path, field="system_prompt_file")
        system_prompt = prompt_path.read_text(encoding="utf-8").strip()
    train_path = resolve_path(fields.data.train, path)
    eval_path = resolve_path(fields.data.eval, path)
    for value, p, name in ((fields.data.train, train_path, "data.train"), (fields.data.eval, eval_path, "data.eval")):
        if value and (p is None or not p.is_file()):
            raise BadInput(f"data file not found: {p}", file=path, field=name)
    return CandidateFile(
        spec=spec, path=path, train_path=train_path, eval_path=eval_path, data_format=fields.data.format,
        system_prompt=system_prompt, start_from=start, combine=combine,
    )


COMBINATION_TYPES = ("linear", "ties", "dare_ties", "dare_linear", "cat", "svd", "ties_svd", "magnitude_prune")


def _check_combination(spec: CandidateSpec, source: Any) -> None:
    allowed = {"weights", "combination_type", "density"}
    for name in spec.hyperparameters:
        if name not in allowed:
            raise BadInput(f"unknown setting for combine; known: {', '.join(sorted(allowed))}", file=source,
                           field=f"hyperparameters.{name}")
    ctype = spec.hyperparameters.get("combination_type", "linear")
    if ctype not in COMBINATION_TYPES:
        raise BadInput(f"{ctype!r} is not one of: {', '.join(COMBINATION_TYPES)}", file=source,
                       field="hyperparameters.combination_type")
