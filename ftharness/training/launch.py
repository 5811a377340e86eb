"""Training on several processes: one candidate under ``accelerate launch``, with DDP, FSDP or DeepSpeed ZeRO.

``train_candidate`` (:mod:`ftharness.training.run`) calls :func:`train_launched` for a candidate whose
``launch:`` asks for it (:class:`~ftharness.planner.strategies.LaunchSettings`). The contract:

- The harness process holds the artifact's lock and starts ``accelerate launch`` with a config it writes
  (``<artifact>/launch/accelerate.yaml``) or the user's ``config:``. Every worker runs
  ``python -m ftharness.training.worker JOB`` and calls ``train_candidate`` with the same request, read from
  ``<artifact>/launch/job.json`` (rows in ``train.jsonl`` / ``eval.jsonl``); rank 0 writes the artifact.
- The artifact and its model card record the launch: strategy, processes, the accelerate config's text and
  the world size the workers saw. The cache key holds the launch (a launched training is a different
  computation, equal to one process only within floating-point tolerance), so the single-process artifact
  of the same candidate is never taken for it, nor it for that one.
- A failed worker ends the launch with that worker's error: it writes ``launch/error-RANK.json`` (its exit
  code and one line) before it exits, and the harness raises the same kind (2 bad input, 3 environment,
  4 a crash). torchrun's agent stops the other workers when one fails, so a launch never hangs on a peer
  that is gone. A worker that dies without a word (killed, out of memory) is a crash with the log's tail.
- The launcher runs in its own process group, which the harness stops on any exception; if the harness is
  killed (even by SIGKILL) the kernel signals the launcher (``PR_SET_PDEATHSIG``), and each worker watches
  its own parent the same way, so no worker outlives the harness.

FSDP on CPU: accelerate runs FSDP only on accelerators (its ``MULTI_CPU`` type is always DDP), while
PyTorch's FSDP2 ``fully_shard`` runs on CPU with gloo. A worker on a machine without CUDA therefore tells
accelerate that its processes are data-parallel devices (:func:`fsdp_on_cpu`) and checks that accelerate
then prepares FSDP; this is what lets the 2-core test machine run the same FSDP path a GPU cluster does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from ftharness import ui
from ftharness.data.records import Dataset, Example
from ftharness.errors import INTERNAL_ERROR, BadInput, EnvironmentProblem, FtharnessError
from ftharness.io import atomic_write_json, sha256_file
from ftharness.planner.strategies import STRATEGIES, LaunchSettings

LAUNCH_DIR = "launch"
WORKER_ENV = "FTHARNESS_LAUNCH_WORKER"  # set in every worker: the launcher holds the artifact lock
STRATEGY_ENV = "FTHARNESS_LAUNCH_STRATEGY"  # set by a worker: the strategy its trainer prepares and checks


class WorkerCrashed(FtharnessError):
    """A worker of a launched training ended with an internal error (or died without saying why)."""

    exit_code = INTERNAL_ERROR


def in_worker() -> bool:
    """Whether this process is a worker the harness launched (it trains; it does not launch again)."""
    return os.environ.get(WORKER_ENV) == "1"


def in_distributed_launch() -> bool:
    """Whether this process is one of several a launcher started (the harness's or the user's torchrun)."""
    return in_worker() or int(os.environ.get("WORLD_SIZE", "1")) > 1


def identity(launch: LaunchSettings | None) -> dict[str, Any] | None:
    """What of the launch goes into the artifact key: None for one plain process (the key it always had)."""
    if launch is None or not launch.launched():
        return None
    config = sha256_file(Path(launch.config)) if launch.config else None
    return {"processes": launch.processes, "strategy": launch.strategy, "config_sha256": config}


def check_launch(launch: LaunchSettings | None, *, source: str | Path | None, field: str,
                 folder: Path | None = None) -> LaunchSettings | None:
    """``launch:`` as read from a task or candidate file (``source``), its ``config`` resolved against that
    file's folder (or ``folder``) and required to exist; None when it asks for one plain process."""
    if launch is None:
        return None
    if launch.config is not None:
        config = Path(launch.config).expanduser()
        if not config.is_absolute():
            config = (folder if folder is not None else Path(source).parent) / config
        if config is None or not config.is_file():
            raise BadInput(f"accelerate config not found: {config} (a path relative to this file)", file=source,
                           field=f"{field}.config")
        launch = dataclasses.replace(launch, config=str(config))
    return launch if launch.launched() else None


def unavailable_reason(launch: LaunchSettings) -> str | None:
    """Why this machine cannot run ``launch`` (before any work), else None."""
    import importlib.util

    if importlib.util.find_spec("accelerate") is None:
        return "a launched training needs accelerate: pip install 'accelerate>=1.6'"
    if STRATEGIES[launch.strategy].engine == "deepspeed" and importlib.util.find_spec("deepspeed") is None:
        return (f"strategy {launch.strategy} needs DeepSpeed, which is not installed here: pip install deepspeed "
                "(ZeRO runs on CUDA devices; on this machine use strategy fsdp, the same sharding as ZeRO-3)")
    return None


def accelerate_config(launch: LaunchSettings, *, cuda: bool, port: int) -> dict[str, Any]:
    """The accelerate config (``accelerate launch --config_file``) for ``launch`` on this machine.

    ddp: accelerate's multi-device type (gloo on CPU). fsdp: FSDP2 (``fully_shard``) with each decoder layer
    a unit (accelerate's TRANSFORMER_BASED_WRAP takes the model's ``_no_split_modules``), full state dicts
    for saving. deepspeed-zero2/3: DeepSpeed with that ZeRO stage, nothing offloaded. Mixed precision is
    left to the trainer (its ``dtype``), as in one process.
    """
    strategy = STRATEGIES[launch.strategy]
    config: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": {"ddp": "MULTI_GPU", "fsdp": "FSDP", "deepspeed": "DEEPSPEED"}[strategy.engine],
        "num_machines": 1,
        "machine_rank": 0,
        "num_processes": launch.processes,
        "mixed_precision": "no",
        "use_cpu": not cuda,
        "main_process_ip": "127.0.0.1",
        "main_process_port": port,
        "rdzv_backend": "static",
        "same_network": True,
    }
    if strategy.engine == "fsdp":
        config["fsdp_config"] = {
            "fsdp_version": 2,
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_state_dict_type": "FULL_STATE_DICT",
            "fsdp_reshard_after_forward": True,
            "fsdp_cpu_ram_efficient_loading": False,
        }
    if strategy.engine == "deepspeed":
        config["deepspeed_config"] = {"zero_stage": strategy.zero_stage, "offload_optimizer_device": "none",
                                      "offload_param_device": "none", "zero3_init_flag": False}
    return config


# -- the harness side ---------------------------------------------------------------------------------


def train_launched(request: dict[str, Any], train: Dataset, eval: Dataset | None, launch: LaunchSettings,
                   out_dir: Path, *, progress: bool) -> None:
    """Train the request (``train_candidate``'s arguments, as JSON) in workers under ``accelerate launch``;
    returns when rank 0 has written the artifact into ``out_dir``, raises the failed worker's error otherwise.
    The caller has checked :func:`unavailable_reason` before any work."""
    from ftharness.models.local_server import free_port, start_process, stop_process
    from ftharness.plugins import cuda_available

    folder = out_dir / LAUNCH_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("error-*.json"):
        old.unlink()
    _write_rows(folder / "train.jsonl", train)
    if eval is not None:
        _write_rows(folder / "eval.jsonl", eval)
    config_path = Path(launch.config) if launch.config else folder / "accelerate.yaml"
    if not launch.config:
        config_path.write_text(yaml.safe_dump(accelerate_config(launch, cuda=cuda_available(), port=free_port()),
                                              sort_keys=False), encoding="utf-8")
    job = {**request, "launch": dataclasses.asdict(launch),
           "train": {"format": train.format, "file": train.file, "sha256": train.sha256},
           "eval": None if eval is None else {"format": eval.format, "file": eval.file, "sha256": eval.sha256},
           "accelerate_config": config_path.read_text(encoding="utf-8")}
    atomic_write_json(folder / "job.json", job)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config_path),
           "-m", "ftharness.training.worker", str(folder / "job.json")]
    env = {**os.environ, WORKER_ENV: "1"}
    log = folder / "launch.log"
    ui.status(f"training {request['spec']['name']} on {launch.processes} processes ({launch.strategy}); "
              f"log: {log}")
    proc = start_process(cmd, cwd=os.getcwd(), log=log, env=env)
    try:
        code = proc.wait()
    except BaseException:
        stop_process(proc)
        raise
    if code != 0:
        raise _worker_error(folder, code, log)
    if not (out_dir / "candidate.json").is_file():
        raise WorkerCrashed(f"the launched training of {request['spec']['name']} ended without writing its "
                            f"artifact; log: {log}")


def _write_rows(path: Path, data: Dataset) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for e in data.examples:
            f.write(json.dumps(dataclasses.asdict(e), ensure_ascii=False) + "\n")


def read_rows(path: Path, info: dict[str, Any]) -> Dataset:
    """A dataset :func:`train_launched` wrote for the workers."""
    with open(path, encoding="utf-8") as f:
        examples = [Example(**json.loads(line)) for line in f if line.strip()]
    return Dataset(examples=examples, format=info["format"], file=info["file"], sha256=info["sha256"])


def _worker_error(folder: Path, code: int, log: Path) -> FtharnessError:
    """The error of the first worker that said one (lowest rank), as the harness's own kind of error."""
    said_by = {int(p.stem.removeprefix("error-")): p for p in folder.glob("error-*.json")}
    for rank, path in sorted(said_by.items()):
        with contextlib.suppress(OSError, ValueError, KeyError):
            said = json.loads(path.read_text(encoding="utf-8"))
            kind = {2: BadInput, 3: EnvironmentProblem}.get(int(said["exit_code"]), WorkerCrashed)
            return kind(f"worker {rank}: {said['message']}")
    tail = log.read_text(errors="replace")[-1500:] if log.is_file() else ""
    return WorkerCrashed(f"the launched training exited with {code} and no worker said why; log {log}: {tail}")


# -- the worker side ----------------------------------------------------------------------------------


def write_worker_error(folder: Path, rank: int, error: BaseException) -> int:
    """Record a worker's error for the harness (:func:`_worker_error`); returns the worker's exit code."""
    from ftharness.errors import exit_code

    code = exit_code(error)
    message = str(error) if isinstance(error, FtharnessError) else f"{type(error).__name__}: {error}"
    with contextlib.suppress(OSError):
        atomic_write_json(folder / f"error-{rank}.json", {"exit_code": code, "message": message.splitlines()[0]
                                                           if message else type(error).__name__})
    return code


def fsdp_on_cpu() -> None:
    """Let accelerate prepare FSDP on CPU workers (the module docstring says why); raises when it would not."""
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType

    PartialState(cpu=True)
    if PartialState._shared_state.get("distributed_type") == DistributedType.MULTI_CPU:
        PartialState._shared_state["distributed_type"] = DistributedType.MULTI_GPU


def check_prepared(accelerator: Any, strategy: str) -> None:
    """The trainer's accelerator runs the strategy asked for (not a silent fall-back to DDP)."""
    from accelerate.utils import DistributedType

    want = {"ddp": (DistributedType.MULTI_GPU, DistributedType.MULTI_CPU), "fsdp": (DistributedType.FSDP,),
            "deepspeed": (DistributedType.DEEPSPEED,)}[STRATEGIES[strategy].engine]
    if accelerator.distributed_type not in want:
        raise EnvironmentProblem(f"accelerate prepared {accelerator.distributed_type.value}, not "
                                 f"{strategy}, on this machine (accelerate "
                                 f"{_version('accelerate')}); run the launch on CUDA devices")


def _version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"
