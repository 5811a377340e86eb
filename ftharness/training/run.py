"""Training one candidate into a cached artifact: ``train_candidate``.

The artifact folder is ``artifacts_dir()/<key>`` where the key is a hash of everything that decides the
result: the base model's identity (folder content hash), the spec (trainer, method, resolved
hyperparameters, seed), the train and eval data, the task instruction, and the key of the artifact it
starts from. Asking for the same candidate again returns the artifact (``cached=True``) without training.

A folder is complete when ``candidate.json`` exists: it is written last and atomically. A folder without it
is an interrupted training: the next call resumes from its last checkpoint under ``work/``. The
checkpoints are removed once ``candidate.json`` is written.

Successive halving trains in stages: ``stop_at_step`` stops a training after that many optimizer steps
(its key says so) and keeps its last checkpoint under ``resume/``; a later call with ``resume_from`` that
artifact continues from that checkpoint (same schedule, optimizer and data order) to ``stop_at_step`` or to
the end. The key of a continued artifact names what it continued from: its validation history holds the
evaluation at each stop, which early stopping counts, so it is not assumed equal to an uninterrupted one.

A candidate with a ``launch:`` that asks for several processes or a sharding strategy trains under
``accelerate launch`` (:mod:`ftharness.training.launch`): the harness holds the lock and waits, the workers
train, rank 0 writes the folder; the launch is part of the key and of ``candidate.json``.

One process trains an artifact at a time: the training holds an exclusive lock on
``<cache>/locks/artifact-<key>.lock``. A second process asking for the same artifact waits for the lock (saying which process it
waits for), then finds the finished artifact and reuses it. The operating system drops the lock of a
process that dies, even by ``kill -9``; the next process then resumes the interrupted training. In a
distributed launch only the main process takes the lock (the others train with it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftharness import ui
from ftharness.data.records import Dataset, Example
from ftharness.errors import BadInput, EnvironmentProblem
from ftharness.io import atomic_write_json, describe_holder, sha256_file, sha256_json, wait_lock
from ftharness.paths import artifacts_dir, cache_dir
from ftharness.planner.strategies import LaunchSettings
from ftharness.training.card import write_card
from ftharness.training.trainer import CandidateSpec, TrainJob, TrainResult

FORMAT = "ftharness-candidate/1"
KEY_LENGTH = 20  # hex characters of the sha256 used as the folder name
RESUME_DIR = "resume"  # a stopped stage's checkpoints, what the next stage continues from


@dataclass
class Artifact:
    path: Path
    spec: CandidateSpec
    result: TrainResult
    cached: bool = False
    key: str = ""
    kind: str = "adapter"  # "adapter" (PEFT folder) or "model" (standalone HF model folder)
    base_model_path: Path | None = None
    record: dict[str, Any] = field(default_factory=dict)  # the content of candidate.json

    def model_args(self) -> dict[str, Any]:
        """Keyword arguments of ``ftharness.models.loading.load_model`` that load this candidate."""
        if self.kind == "adapter":
            return {"spec": str(self.base_model_path), "adapter": str(self.path)}
        return {"spec": str(self.path)}

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "key": self.key, "kind": self.kind, "cached": self.cached,
                "spec": dataclasses.asdict(self.spec), "result": self.result.to_dict(),
                "model_args": self.model_args()}


# -- identities --------------------------------------------------------------------------------------


def base_model_dir(spec_model: str | None) -> Path:
    """The local folder of a base model named in a spec (None/"embedded": the embedded default)."""
    from ftharness.models.loading import local_model_dir

    return Path(local_model_dir(spec_model))


def model_fingerprint(folder: Path) -> str:
    """sha256 over the folder's config and weight files. File hashes are cached by (path, size, mtime) so a
    500 MB model is read once, not on every request."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and (
        p.suffix in (".safetensors", ".bin", ".gguf") or p.name in ("config.json", "generation_config.json")))
    memo_path = cache_dir() / "file_hashes.json"
    try:
        memo = json.loads(memo_path.read_text()) if memo_path.exists() else {}
    except (OSError, json.JSONDecodeError):
        memo = {}
    parts, changed = [], False
    for p in files:
        st = p.stat()
        ident = f"{p.resolve()}:{st.st_size}:{st.st_mtime_ns}"
        if ident not in memo:
            memo[ident] = sha256_file(p)
            changed = True
        parts.append([p.name, memo[ident]])
    if changed:
        with contextlib.suppress(OSError):
            atomic_write_json(memo_path, memo)
    return sha256_json(parts)


def examples_hash(examples: list[Example]) -> str:
    """Hash of what training reads from the examples (not their file positions): a retrieved context too,
    where a row has one."""
    return sha256_json([[e.messages, e.completion, e.chosen, e.rejected, *([e.context] if e.context else [])]
                        for e in examples])


def artifact_key(spec: CandidateSpec, hyperparameters: dict[str, Any], base_hash: str, train_hash: str,
                 eval_hash: str | None, system_prompt: str | None, start_key: str | None,
                 stop_at_step: int | None = None, resumed_key: str | None = None,
                 launch: dict[str, Any] | None = None) -> str:
    """The cache key. The candidate's *name* is left out: two names for the same settings share a result.
    ``launch``: :func:`ftharness.training.launch.identity` (None for one plain process)."""
    staged = {k: v for k, v in (("stop_at_step", stop_at_step), ("resumed_from", resumed_key),
                                ("launch", launch)) if v is not None}
    return sha256_json({
        "format": FORMAT, "base_model": base_hash, "trainer": spec.trainer, "method": spec.method,
        "hyperparameters": hyperparameters, "seed": spec.seed, "train": train_hash, "eval": eval_hash,
        "system_prompt": system_prompt, "start_from": start_key, **staged,
    })[:KEY_LENGTH]


def library_versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("ftharness", "torch", "transformers", "peft", "trl", "accelerate", "datasets", "bitsandbytes",
                 "unsloth"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


# -- the cache ----------------------------------------------------------------------------------------


def load_artifact(path: str | Path, spec: CandidateSpec | None = None) -> Artifact:
    """A finished artifact from its folder (reads candidate.json)."""
    path = Path(path)
    record_path = path / "candidate.json"
    if not record_path.is_file():
        raise BadInput("not a finished candidate artifact (no candidate.json)", file=path)
    record = json.loads(record_path.read_text(encoding="utf-8"))
    result = TrainResult(**record["result"])
    stored = CandidateSpec(**record["spec"])
    base = record.get("base_model", {}).get("path")
    return Artifact(path=path, spec=spec or stored, result=result, cached=True, key=record.get("key", path.name),
                    kind=record.get("kind", "adapter"), base_model_path=Path(base) if base else None, record=record)


def _seed(seed: int) -> None:
    """Seed every random generator a trainer draws from (Python, NumPy, torch) with the spec's seed, so that
    the same request trains the same weights in any process."""
    from transformers import set_seed

    set_seed(seed)


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _barrier() -> None:
    try:
        import torch.distributed as dist
    except ImportError:
        return
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def train_candidate(
    spec: CandidateSpec,
    train: Dataset,
    eval: Dataset | None,
    *,
    system_prompt: str | None = None,
    start_from: Artifact | None = None,
    progress: bool = True,
    callbacks: list[Any] | None = None,
    stop_at_step: int | None = None,
    resume_from: Artifact | None = None,
    typed_hyperparameters: Any | None = None,
    launch: LaunchSettings | None = None,
    launch_config: str | None = None,
) -> Artifact:
    """Train ``spec`` on ``train`` (eval loss on ``eval``) or return the cached artifact of the same request.
    ``typed_hyperparameters``: ``spec``'s, as :func:`ftharness.training.spec.validate_candidate` returned
    them when its caller checked them (a task at load); None: checked here.

    Raises BadInput for an unknown trainer/method/hyperparameter, EnvironmentProblem (before any work) when
    the trainer cannot run here. ``callbacks`` are extra transformers TrainerCallbacks (tests, tools).
    ``stop_at_step`` and ``resume_from`` train in stages (the module docstring). ``launch``: train on several
    processes (:mod:`ftharness.training.launch`; ``callbacks`` do not cross into its workers);
    ``launch_config``: the accelerate config's text, given by a launched worker for the record.
    """
    from ftharness.plugins import get_plugins
    from ftharness.training import launch as launching
    from ftharness.training.spec import COMBINE_METHOD, hyperparameter_values, validate_candidate

    if spec.method == COMBINE_METHOD:
        raise BadInput("`method: combine` candidates are built by ftharness.training.merging.combine_adapters",
                       field="method")
    if typed_hyperparameters is None:
        typed_hyperparameters = validate_candidate(spec)
    method = get_plugins().training_method(spec.trainer, spec.method, start_from=bool(spec.start_from))
    trainer = get_plugins().trainer(spec.trainer).obj
    hyperparameters = hyperparameter_values(typed_hyperparameters)
    if not train.examples:
        raise BadInput("the training data has no examples", file=train.file or None)
    base_path = Path(start_from.path) if start_from is not None and start_from.kind == "model" else None
    if base_path is None:
        base_path = (start_from.base_model_path if start_from is not None and start_from.base_model_path
                     else base_model_dir(spec.base_model))
    base_hash = model_fingerprint(base_path)
    train_hash = examples_hash(train.examples)
    eval_hash = examples_hash(eval.examples) if eval is not None and eval.examples else None
    if resume_from is not None and not (Path(resume_from.path) / RESUME_DIR).is_dir():
        raise BadInput("this artifact was not stopped at a step, so nothing continues from it",
                       file=resume_from.path)
    key = artifact_key(spec, hyperparameters, base_hash, train_hash, eval_hash, system_prompt,
                       start_from.key if start_from is not None else None, stop_at_step,
                       resume_from.key if resume_from is not None else None, launching.identity(launch))
    out_dir = artifacts_dir() / key
    launch = launch if launch is not None and launch.launched() else None
    launch_here = launch is not None and not launching.in_distributed_launch()
    if (out_dir / "candidate.json").is_file():
        return load_artifact(out_dir, spec)

    reason = get_plugins().unavailable_reason("trainers", spec.trainer, spec.method)
    if reason:
        raise EnvironmentProblem(f"trainer {spec.trainer!r} cannot train {spec.method} here: {reason}")
    reason = launching.unavailable_reason(launch) if launch_here else None
    if reason:
        raise EnvironmentProblem(reason)

    with _artifact_lock(out_dir, spec.name):
        if (out_dir / "candidate.json").is_file():  # trained by the process we waited for
            return load_artifact(out_dir, spec)
        out_dir.mkdir(parents=True, exist_ok=True)
        if resume_from is not None and not (out_dir / "work").exists():
            shutil.copytree(Path(resume_from.path) / RESUME_DIR, out_dir / "work")
        if launch_here:
            request = {"spec": dataclasses.asdict(spec), "system_prompt": system_prompt, "stop_at_step": stop_at_step,
                       "start_from": None if start_from is None else str(start_from.path),
                       "resume_from": None if resume_from is None else str(resume_from.path), "progress": progress}
            launching.train_launched(request, train, eval, launch, out_dir, progress=progress)
            return dataclasses.replace(load_artifact(out_dir, spec), cached=False)
        if stop_at_step is not None:
            from ftharness.training.callbacks import stop_at_step_callback

            callbacks = [*(callbacks or []), stop_at_step_callback(stop_at_step)]
        start_adapter = Path(start_from.path) if start_from is not None and start_from.kind == "adapter" else None
        job = TrainJob(
            spec=spec, base_model_path=base_path, train=list(train.examples),
            eval=list(eval.examples) if eval is not None else [], out_dir=out_dir,
            hyperparameters=typed_hyperparameters, system_prompt=system_prompt,
            start_adapter=start_adapter, resume=True, progress=progress, callbacks=list(callbacks or []),
        )
        started = time.time()
        libraries = library_versions()
        _seed(spec.seed)  # before the trainer builds anything: the adapter's initial weights come from it
        result = trainer.train(job)
        kind = "adapter" if (out_dir / "adapter_config.json").is_file() else "model"
        record = {
            "format": FORMAT,
            "key": key,
            "kind": kind,
            "spec": dataclasses.asdict(spec),
            "hyperparameters": hyperparameters,
            "seed": spec.seed,
            "base_model": {"name": spec.base_model or "embedded", "path": str(base_path), "sha256": base_hash},
            "data": {
                "train": {"file": train.file, "sha256": train_hash, "file_sha256": train.sha256,
                          "examples": len(train.examples)},
                "eval": None if eval is None else {"file": eval.file, "sha256": eval_hash, "file_sha256": eval.sha256,
                                                   "examples": len(eval.examples)},
            },
            "system_prompt": system_prompt,
            "start_from": None if start_from is None else {"key": start_from.key, "path": str(start_from.path),
                                                           "name": start_from.spec.name},
            "stop_at_step": stop_at_step,
            "resumed_from": None if resume_from is None else {"key": resume_from.key, "path": str(resume_from.path)},
            "launch": None if launch is None else {
                **dataclasses.asdict(launch), "world_size": int(os.environ.get("WORLD_SIZE", "1")),
                "accelerate_config": launch_config},
            "libraries": libraries,
            "started_at": started,
            "finished_at": time.time(),
            "result": result.to_dict(),
        }
        if _is_main_process():
            write_card(out_dir, spec=spec, method=method, kind=kind, hyperparameters=typed_hyperparameters,
                       result=result, base_sha256=base_hash, train=train, validation=eval,
                       system_prompt=system_prompt, libraries=libraries, launch=record["launch"])
            atomic_write_json(out_dir / "loss_curve.json", result.loss_curve)
            if stop_at_step is not None and (out_dir / "work").is_dir():  # kept: a later stage continues from it
                shutil.rmtree(out_dir / RESUME_DIR, ignore_errors=True)
                (out_dir / "work").rename(out_dir / RESUME_DIR)
            atomic_write_json(out_dir / "candidate.json", record)  # last: marks the folder complete
            shutil.rmtree(out_dir / "work", ignore_errors=True)
        _barrier()
        return Artifact(path=out_dir, spec=spec, result=result, cached=False, key=key, kind=kind,
                        base_model_path=base_path if kind == "adapter" else None, record=record)


@contextlib.contextmanager
def _artifact_lock(out_dir: Path, name: str) -> Iterator[None]:
    """Hold ``<cache>/locks/artifact-<key>.lock`` while inside, waiting (and saying so) while another
    process trains the same artifact. Only the main process of a distributed launch takes it, and none of
    the workers of a launch the harness started (the harness holds it for them)."""
    from ftharness.training.launch import in_worker

    if not _is_main_process() or in_worker():
        yield
        return
    with wait_lock(cache_dir() / "locks" / f"artifact-{out_dir.name}.lock", on_wait=lambda holder: ui.status(
        f"waiting for {describe_holder(holder)}, which trains the same candidate as {name}; its artifact "
        "will be reused"
    )):
        yield
