"""GPU check: what the CPU machine cannot measure, run on a CUDA machine, each figure against what it should be.

    python benchmarks/gpu_check.py [--only NAME[,NAME]] [--list] [--json] [--out FILE] [--steps N] [--budget S]
    scripts/gpu_check.sh [the same flags]   # installs what the checks need first (`make gpu-check`)

The checks (``--list``), in this order; each returns one row {check, status: pass|fail|skip, figure,
expected, detail}:

- qlora-cuda: a QLoRA candidate (trainer peft, method qlora: bitsandbytes NF4) trains ``--steps`` optimizer
  steps through ``train_candidate``; pass when it finishes with finite losses. Figure: tokens/s, peak GiB.
- unsloth-vs-peft: the same LoRA on the same rows with trainer unsloth and trainer peft; pass when both
  train. Figure: tokens/s of each (median optimizer step: the first step's warm-up left out) and the ratio.
- vram-vs-plan: the peft LoRA run's measured peak (``TrainResult.peak_memory_bytes``, memory_kind
  cuda_max_allocated) against ``estimate(PlanRequest(...))`` of the same config.json, method, rank, targets,
  batch, sequence length (the longest tokenized row) and precision; pass within ``VRAM_TOLERANCE``.
- vllm-vs-local: ``ftharness compare`` on examples/served/task.yaml with the served candidate's engine
  ``{kind: server, launcher: vllm}``; pass when every greedy output equals the local engine's.
- fsdp-2gpu: ``ftharness train`` of a LoRA candidate with ``launch: {processes: 2, strategy: fsdp}`` against
  the same candidate in one process; pass when the loss curves agree within ``FSDP_LOSS_TOLERANCE``.
- zero3-2gpu: the same with ``strategy: deepspeed-zero3`` (DeepSpeed installed: scripts/gpu_check.sh tries).

Contract:

- ``torch.cuda.is_available()`` False: one line on stderr (``NO_CUDA``), exit 3, before any check;
  an unknown ``--only`` name or a bad number: one line (naming the known checks), exit 2; ``--list``: exit 0.
- A check that raises is a ``fail`` row with the exception's first line (never a traceback), and the other
  checks still run. Each check has a time budget (``Check.budget_s``, and what is left of ``--budget`` for
  the whole run): past it, it stops (SIGALRM; its subprocesses are killed) and fails; one that cannot start
  with ``MIN_START_S`` left is skipped. A check whose requirement is missing (unsloth, vLLM, a second GPU)
  is skipped with the reason.
- stdout: the table (check | status | figure | expected | detail), then "N passed, M failed, K skipped";
  with ``--json``, one JSON line {"rows": [...], "summary": ...} instead (the summary also on stderr).
  ``--out FILE``: the table as Markdown (committed as benchmarks/results/gpu_check.md).
- Exit 1 when a row failed, else 0.

Every training runs in a fresh, temporary FTHARNESS_CACHE (a cached artifact would carry an earlier run's
figures), on the embedded model's folder: base_model "embedded", resolved (converted once) in the usual
cache and passed on as its folder, which GPU_CHECK_MODEL_DIR names for the subprocesses. Unsloth and vLLM
pin other torch / transformers / trl versions than .venv holds: scripts/gpu_check.sh installs each in an
environment of its own under .venv/gpu-check/; unsloth-vs-peft runs itself there (both sides, so they share
the libraries), and vllm-vs-local puts that ``vllm`` command on the compare's PATH.

Nothing heavy is imported at module level (torch and ftharness are imported inside the checks): the CPU
tests (tests/test_gpu_check.py) import this file.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TASK = REPO / "examples" / "extraction"
SERVED_TASK = REPO / "examples" / "served" / "task.yaml"
SIDE_VENVS = REPO / ".venv" / "gpu-check"  # scripts/gpu_check.sh: unsloth/ and vllm/, apart from .venv's stack

NO_CUDA = "gpu_check: no CUDA device here (torch.cuda.is_available() is False); run it on a CUDA machine"
STATUSES = ("pass", "fail", "skip")
COLUMNS = ("check", "status", "figure", "expected", "detail")

ROWS = 8  # training rows (the first of examples/extraction/train.jsonl), one batch: every step trains them all
DEFAULT_STEPS = 10
RUN_BUDGET_S = 450.0  # default --budget: the checks' share of the 8 minutes scripts/gpu_check.sh may take
MIN_START_S = 20.0  # a check that would get less time than this is skipped, not started
# |measured - planned| / planned. The planner's error on published A100 runs is a median 2.1 %, worst 18.5 %
# (README, benchmarks/plan_accuracy.py); 25 % leaves room for another GPU's allocator and kernel choices on
# a 135M model, where fixed buffers weigh more than on the 7B runs it was fitted to.
VRAM_TOLERANCE = 0.25
# Largest relative difference between the 2-process FSDP loss and the 1-process loss at any logged step. Both
# train the same 8 rows every step (8 in one process, 4 + 4 in two), dropout off, same seed; what differs is
# bf16 reduction order, sharded all-gathers and how the loss is averaged across processes.
FSDP_LOSS_TOLERANCE = 0.05
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# vLLM for the served candidate: eager mode starts in seconds instead of capturing CUDA graphs, and half the
# GPU's memory leaves the harness's own process (the local engine's copy) room on the same GPU.
VLLM_ENGINE = {"kind": "server", "launcher": "vllm", "concurrency": 4,
               "args": ["--enforce-eager", "--gpu-memory-utilization", "0.5"]}

Row = dict[str, str]


class Skip(Exception):
    """A check's requirement is missing here: a ``skip`` row with this reason."""


class CheckTimeout(BaseException):
    """A check ran past its time budget. A BaseException, so that libraries' ``except Exception`` let it through."""


class UsageError(Exception):
    """Bad flags: one line on stderr, exit 2."""


@dataclass(frozen=True)
class Check:
    name: str
    fn: Callable[[Context], Row]
    budget_s: float
    expected: str
    about: str


@dataclass
class Context:
    """What a check is given: the optimizer steps to train and the moment its budget runs out."""

    steps: int
    deadline: float = math.inf  # time.monotonic()

    def remaining(self) -> float:
        return max(1.0, self.deadline - time.monotonic())


def row(check: str, status: str, figure: str = "", expected: str = "", detail: str = "") -> Row:
    return {"check": check, "status": status, "figure": figure, "expected": expected, "detail": detail}


# -- the machine, the run's cache, subprocesses ----------------------------------------------------------------


def cuda_available() -> bool:
    """``torch.cuda.is_available()``; False without torch. The one CUDA probe (the tests replace it)."""
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def machine_description() -> str:
    """GPU, torch and CUDA versions and the date, for the Markdown table's heading."""
    import torch

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    names = ", ".join(sorted({f"{gpus.count(g)}x {g}" for g in gpus})) or "no CUDA device"
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    return f"{names}; torch {torch.__version__} (CUDA {torch.version.cuda}); {date}"


@contextlib.contextmanager
def env_var(name: str, value: str | None) -> Iterator[None]:
    """``os.environ[name]`` set to ``value`` (None: unset) while inside."""
    previous = os.environ.get(name)
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


_USER_CACHE: list[str | None] = [os.environ.get("FTHARNESS_CACHE")]  # the cache in use before run_cache


@contextlib.contextmanager
def run_cache() -> Iterator[Path]:
    """A fresh FTHARNESS_CACHE for this run's trainings, removed afterwards."""
    _USER_CACHE[0] = os.environ.get("FTHARNESS_CACHE")
    with tempfile.TemporaryDirectory(prefix="gpu-check-cache-") as cache, env_var("FTHARNESS_CACHE", cache), \
            env_var("GPU_CHECK_MODEL_DIR", os.environ.get("GPU_CHECK_MODEL_DIR")):
        yield Path(cache)


def model_folder() -> Path:
    """The embedded model's folder, converted once in the user's cache (not the run's, which is thrown away);
    GPU_CHECK_MODEL_DIR when the process that started this one resolved it already."""
    if given := os.environ.get("GPU_CHECK_MODEL_DIR"):
        return Path(given)
    from ftharness.models.loading import local_model_dir

    with env_var("FTHARNESS_CACHE", _USER_CACHE[0]):
        folder = Path(local_model_dir("embedded"))
    os.environ["GPU_CHECK_MODEL_DIR"] = str(folder)
    return folder


def run_cmd(cmd: list[str], ctx: Context, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` in a session of its own within the check's time; its process group is ended on a timeout
    or any other way out (a SIGALRM included)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=ctx.remaining())
    except subprocess.TimeoutExpired:
        raise CheckTimeout from None
    finally:
        if proc.poll() is None:
            end_group(proc)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def end_group(proc: subprocess.Popen[str]) -> None:
    """SIGTERM to ``proc``'s process group (it stops the servers and workers it started), SIGKILL after 10 s."""
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no output)"


def one_line(error: BaseException) -> str:
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(error).__name__}: {first}"[:300] if first else type(error).__name__


def side_python(name: str) -> Path | None:
    """The python of scripts/gpu_check.sh's environment ``name`` (unsloth, vllm), if it was made."""
    python = SIDE_VENVS / name / "bin" / "python"
    return python if python.exists() else None


# -- training through the project's own API ---------------------------------------------------------------------


@dataclass
class Trained:
    result: Any  # ftharness.training.trainer.TrainResult
    hyperparameters: dict[str, Any]  # as resolved (candidate.json)
    step_s: list[float]  # wall time of each optimizer step


_TRAINED: dict[tuple[str, str, int], Trained] = {}  # one training per (trainer, method, steps) in a run


def training_rows() -> tuple[Any, str]:
    """The first ``ROWS`` rows of the bundled training file, and the task's instruction."""
    from ftharness.data.loading import load_dataset
    from ftharness.data.records import Dataset

    full = load_dataset(TASK / "train.jsonl")
    rows = Dataset(examples=full.examples[:ROWS], format=full.format, file=full.file, sha256=full.sha256)
    return rows, (TASK / "instruction.txt").read_text(encoding="utf-8").strip()


def lora_hyperparameters(steps: int, batch_size: int = ROWS) -> dict[str, Any]:
    """One LoRA setting for every check: r 16 on every projection, dropout off (Unsloth's fast path needs it;
    FSDP's loss is compared step by step), ``steps`` optimizer steps, no early stopping, one checkpoint."""
    return {"r": 16, "lora_alpha": 32, "lora_dropout": 0.0, "target_modules": LORA_TARGETS,
            "batch_size": batch_size, "max_steps": steps, "checkpoint_steps": steps,
            "early_stopping_patience": None, "learning_rate": 2.0e-4}


def step_clock() -> Any:
    """A TrainerCallback that times each optimizer step (forward, backward, update)."""
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        def __init__(self) -> None:
            self.step_s: list[float] = []
            self.started = 0.0

        def on_step_begin(self, args, state, control, **kw):
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            self.step_s.append(time.perf_counter() - self.started)

    return StepClock()


def train(trainer: str, method: str, steps: int) -> Trained:
    """``train_candidate`` on the bundled rows, with the LoRA settings above; once per run."""
    key = (trainer, method, steps)
    if key not in _TRAINED:
        from ftharness.training.run import train_candidate
        from ftharness.training.trainer import CandidateSpec

        rows, instruction = training_rows()
        spec = CandidateSpec(name=f"gpu-check-{trainer}-{method}", trainer=trainer, method=method,
                             base_model=str(model_folder()), hyperparameters=lora_hyperparameters(steps))
        clock = step_clock()
        artifact = train_candidate(spec, rows, None, system_prompt=instruction, progress=False, callbacks=[clock])
        _TRAINED[key] = Trained(artifact.result, dict(artifact.record.get("hyperparameters", {})), clock.step_s)
    return _TRAINED[key]


def train_losses(result: Any) -> list[float]:
    return [float(p["loss"]) for p in result.loss_curve if "loss" in p]


def losses_ok(result: Any) -> tuple[bool, str]:
    """Whether training logged losses and all are finite, and what they were."""
    losses = train_losses(result)
    if not losses:
        return False, "no training loss logged"
    bad = sum(not math.isfinite(x) for x in losses)
    return bad == 0, f"{len(losses)} steps, loss {losses[0]:.3f} -> {losses[-1]:.3f}" + (f", {bad} not finite" if bad else "")


def steady_tokens_per_s(trained: Trained) -> float:
    """Tokens per second of the median optimizer step (every step trains the same rows)."""
    if not trained.step_s:
        return float(trained.result.tokens_per_s)
    per_step = trained.result.train_tokens / len(trained.step_s)
    return per_step / statistics.median(trained.step_s)


# -- the checks --------------------------------------------------------------------------------------------------


def check_qlora(ctx: Context) -> Row:
    r = train("peft", "qlora", ctx.steps).result
    ok, losses = losses_ok(r)
    figure = f"{r.tokens_per_s:.0f} tokens/s, peak {r.peak_memory_bytes / 2**30:.2f} GiB"
    return row("qlora-cuda", "pass" if ok else "fail", figure, EXPECTED["qlora-cuda"],
               f"{losses}; memory {r.memory_kind}")


def check_unsloth(ctx: Context) -> Row:
    if importlib.util.find_spec("unsloth") is None:
        python = side_python("unsloth")
        if python is None:
            raise Skip("unsloth is not importable here and .venv/gpu-check/unsloth does not exist "
                       "(scripts/gpu_check.sh makes it: unsloth pins older transformers/trl)")
        return delegated(python, "unsloth-vs-peft", ctx)
    peft = train("peft", "lora", ctx.steps)  # first: importing unsloth patches transformers for what follows
    fast = train("unsloth", "lora", ctx.steps)
    (ok_p, loss_p), (ok_u, loss_u) = losses_ok(peft.result), losses_ok(fast.result)
    a, b = steady_tokens_per_s(peft), steady_tokens_per_s(fast)
    figure = f"unsloth {b:.0f} vs peft {a:.0f} tokens/s ({b / a:.2f}x)"
    return row("unsloth-vs-peft", "pass" if ok_p and ok_u else "fail", figure, EXPECTED["unsloth-vs-peft"],
               f"median step; peft {loss_p}; unsloth {loss_u}")


def delegated(python: Path, name: str, ctx: Context) -> Row:
    """Run check ``name`` with another environment's python (this file, ``--only name --json``) and take its row."""
    model_folder()  # resolved here once, handed on through GPU_CHECK_MODEL_DIR
    budget = max(1, int(ctx.remaining()) - 15)  # it ends before this check's own budget does
    cmd = [str(python), str(Path(__file__).resolve()), "--only", name, "--json", "--steps", str(ctx.steps),
           "--budget", str(budget)]
    done = run_cmd(cmd, ctx)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    try:
        child = json.loads(lines[-1])["rows"][0]
    except (IndexError, KeyError, ValueError):
        raise RuntimeError(f"{python} exited {done.returncode}: {last_line(done.stderr)}") from None
    env = python.parent.parent.relative_to(REPO) if python.is_relative_to(REPO) else python.parent.parent
    return {**child, "detail": f"{child.get('detail', '')} (ran in {env})".strip()}


def check_vram(ctx: Context) -> Row:
    trained = train("peft", "lora", ctx.steps)
    r = trained.result
    if r.memory_kind != "cuda_max_allocated":
        return row("vram-vs-plan", "fail", "", EXPECTED["vram-vs-plan"],
                   f"memory_kind is {r.memory_kind!r}, not cuda_max_allocated: the training did not run on CUDA")
    plan = planned(trained.hyperparameters)
    error = (r.peak_memory_bytes - plan.peak_bytes) / plan.peak_bytes
    q = plan.request
    figure = f"measured {r.peak_memory_bytes / 1e9:.3f} GB vs planned {plan.peak_gb:.3f} GB ({error:+.1%})"
    detail = (f"plan: {q.method} r{q.rank}, {q.precision}, batch {q.batch_size} x {q.seq_len} tokens, "
              f"peak at {plan.peak_phase}")
    return row("vram-vs-plan", "pass" if abs(error) <= VRAM_TOLERANCE else "fail", figure,
               EXPECTED["vram-vs-plan"], detail)


def planned(hp: dict[str, Any]) -> Any:
    """The planner's estimate of the peft LoRA training as it ran: same config.json, rank, targets, batch,
    longest row, the precision ``dtype: auto`` trains in on this GPU, SDPA attention (the peft trainer loads
    the model with it) and AdamW (the default ``adamw_torch``)."""
    import torch

    from ftharness.planner import PlanRequest, estimate

    targets = hp["target_modules"]
    return estimate(PlanRequest(
        model=str(model_folder() / "config.json"), method="lora", rank=hp["r"],
        targets=",".join(targets) if isinstance(targets, list) else targets,
        precision="bf16" if torch.cuda.is_bf16_supported() else "fp16", optimizer="adamw",
        batch_size=hp["batch_size"], seq_len=longest_row(hp["max_length"]), grad_accum=hp["grad_accum"],
        gradient_checkpointing=hp["gradient_checkpointing"], attention="sdpa", lora_dropout=hp["lora_dropout"]))


def longest_row(max_length: int) -> int:
    """Tokens of the longest training row as the SFT loop tokenizes it (cut at ``max_length``)."""
    from transformers import AutoTokenizer

    from ftharness.training.sequences import sft_rows
    from ftharness.training.sft import prepare_tokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_folder()))
    prepare_tokenizer(tokenizer)
    rows, instruction = training_rows()
    tokenized, _ = sft_rows(tokenizer, rows.examples, instruction, max_length=max_length)
    return max(len(r["input_ids"]) for r in tokenized)


def vllm_path() -> str | None:
    """"" when vLLM imports here or ``vllm`` is on PATH, the side environment's bin folder when it has one,
    else None."""
    if importlib.util.find_spec("vllm") is not None or shutil.which("vllm"):
        return ""
    side = SIDE_VENVS / "vllm" / "bin"
    return str(side) if (side / "vllm").exists() else None


def check_vllm(ctx: Context) -> Row:
    extra = vllm_path()
    if extra is None:
        raise Skip("vllm is not importable here, no `vllm` on PATH, and .venv/gpu-check/vllm does not exist "
                   "(scripts/gpu_check.sh makes it)")
    out = Path(os.environ["FTHARNESS_CACHE"]) / "served-reports"
    env = {**os.environ, "PATH": os.environ.get("PATH", "") + (os.pathsep + extra if extra else "")}
    done = run_cmd([sys.executable, "-m", "ftharness", "compare", str(served_task(out.parent)), "--out", str(out),
                    "--run-id", "gpu-check", "--no-progress"], ctx, env)
    if done.returncode not in (0, 1):  # 1 is a verdict (a gate), not a failure of the run
        raise RuntimeError(f"ftharness compare exited {done.returncode}: {last_line(done.stderr)}")
    local, served = (samples(out / "gpu-check", name) for name in ("lora-bare", "lora-bare-served"))
    same = sum(a == b for a, b in zip(local, served, strict=False))
    ok = len(local) == len(served) > 0 and same == len(local)
    first = next((i for i, (a, b) in enumerate(zip(local, served, strict=False)) if a != b), None)
    detail = "greedy: local engine vs vllm serve of the same LoRA" + (f"; first difference at row {first}"
                                                                       if first is not None else "")
    return row("vllm-vs-local", "pass" if ok else "fail", f"{same} of {len(local)} rows alike",
               EXPECTED["vllm-vs-local"], detail)


def served_task(folder: Path) -> Path:
    """examples/served/task.yaml with absolute paths, the model folder, the served candidate on vLLM and the
    baseline on the local engine (the check is about the trained candidate)."""
    import yaml

    base = SERVED_TASK.parent
    task = yaml.safe_load(SERVED_TASK.read_text(encoding="utf-8"))
    task["base_model"] = str(model_folder())
    for key in ("instruction_file", "schema"):
        task[key] = str((base / task[key]).resolve())
    task["data"] = {k: str((base / v).resolve()) for k, v in task["data"].items()}
    task["baselines"] = [{"name": "zero-shot", "kind": "zero-shot"}]
    for candidate in task["candidates"]:
        if "engine" in candidate:
            candidate["engine"] = dict(VLLM_ENGINE)
    path = folder / "served-task.yaml"
    path.write_text(yaml.safe_dump(task, sort_keys=False), encoding="utf-8")
    return path


def samples(run: Path, option: str) -> list[str]:
    lines = (run / "samples" / f"{option}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["output"] for line in lines if line.strip()]


def check_fsdp(ctx: Context) -> Row:
    return two_processes("fsdp-2gpu", "fsdp", ctx)


def check_zero3(ctx: Context) -> Row:
    import importlib.util

    if importlib.util.find_spec("deepspeed") is None:
        raise Skip("DeepSpeed is not installed here (scripts/gpu_check.sh installs it where pip can)")
    return two_processes("zero3-2gpu", "deepspeed-zero3", ctx)


def two_processes(check: str, strategy: str, ctx: Context) -> Row:
    """A LoRA launched on 2 GPUs with ``strategy`` against the same candidate in one process: loss curves."""
    import torch

    count = torch.cuda.device_count()
    if count < 2:
        raise Skip(f"{count} CUDA device here; {strategy} over 2 processes needs 2")
    folder = Path(os.environ["FTHARNESS_CACHE"]) / strategy
    one = train_file(folder, "one-process", ctx, batch_size=ROWS, launch=None)
    two = train_file(folder, strategy, ctx, batch_size=ROWS // 2, launch={"processes": 2, "strategy": strategy})
    steps = sorted(set(one) & set(two))
    if not steps:
        raise RuntimeError("the two runs logged no loss at the same step")
    worst = max(abs(two[s] - one[s]) / abs(one[s]) for s in steps)
    figure = f"largest loss difference {worst:.2%} over {len(steps)} steps"
    detail = f"final loss {strategy} {two[steps[-1]]:.4f} vs one process {one[steps[-1]]:.4f}"
    return row(check, "pass" if worst <= FSDP_LOSS_TOLERANCE else "fail", figure, EXPECTED[check], detail)


def train_file(folder: Path, label: str, ctx: Context, *, batch_size: int,
               launch: dict[str, Any] | None) -> dict[int, float]:
    """``ftharness train FILE --json`` of a LoRA candidate file on the bundled rows; its loss per step."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "train.jsonl"
    lines = [line for line in (TASK / "train.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    data.write_text("\n".join(lines[:ROWS]) + "\n", encoding="utf-8")
    candidate = {"name": f"gpu-check-{label}", "trainer": "peft", "method": "lora", "base_model": str(model_folder()),
                 "seed": 0, "hyperparameters": lora_hyperparameters(ctx.steps, batch_size),
                 "data": {"train": str(data)}, "system_prompt_file": str(TASK / "instruction.txt"),
                 **({"launch": launch} if launch else {})}
    path = folder / f"{label}.yaml"
    path.write_text(yaml.safe_dump(candidate, sort_keys=False), encoding="utf-8")
    done = run_cmd([sys.executable, "-m", "ftharness", "train", str(path), "--json", "--no-progress"], ctx)
    if done.returncode != 0:
        raise RuntimeError(f"ftharness train ({label}) exited {done.returncode}: {last_line(done.stderr)}")
    curve = json.loads(done.stdout)["result"]["loss_curve"]
    return {int(p["step"]): float(p["loss"]) for p in curve if "loss" in p}


EXPECTED: dict[str, str] = {
    "qlora-cuda": "trains, losses finite",
    "unsloth-vs-peft": "both train (ratio reported)",
    "vram-vs-plan": f"|error| <= {VRAM_TOLERANCE:.0%}",
    "vllm-vs-local": "all rows alike",
    "fsdp-2gpu": f"loss within {FSDP_LOSS_TOLERANCE:.0%} of 1 process",
    "zero3-2gpu": f"loss within {FSDP_LOSS_TOLERANCE:.0%} of 1 process",
}

CHECKS: dict[str, Check] = {c.name: c for c in (
    Check("qlora-cuda", check_qlora, 150.0, EXPECTED["qlora-cuda"],
          "QLoRA (peft, bitsandbytes NF4) trains on CUDA: tokens/s, peak GiB"),
    Check("unsloth-vs-peft", check_unsloth, 240.0, EXPECTED["unsloth-vs-peft"],
          "the same LoRA with trainer unsloth and trainer peft: tokens/s each"),
    Check("vram-vs-plan", check_vram, 120.0, EXPECTED["vram-vs-plan"],
          "measured CUDA peak of the peft LoRA run against `ftharness plan`'s estimate"),
    Check("vllm-vs-local", check_vllm, 300.0, EXPECTED["vllm-vs-local"],
          "greedy outputs of a LoRA served by vLLM against the local engine"),
    Check("fsdp-2gpu", check_fsdp, 180.0, EXPECTED["fsdp-2gpu"],
          "launch {processes: 2, strategy: fsdp} against one process: loss curves"),
    Check("zero3-2gpu", check_zero3, 180.0, EXPECTED["zero3-2gpu"],
          "launch {processes: 2, strategy: deepspeed-zero3} against one process: loss curves"),
)}


# -- running and reporting ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """CheckTimeout raised in this thread after ``seconds`` (SIGALRM; no limit off the main thread)."""
    if not math.isfinite(seconds) or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise CheckTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_one(check: Check, ctx: Context) -> Row:
    """One check's row: what it returned, a skip, or a fail with one line (its exception, its budget)."""
    budget = ctx.deadline - time.monotonic()
    try:
        with time_limit(budget), contextlib.redirect_stdout(sys.stderr):  # training logs stay off the table
            out = check.fn(ctx)
    except Skip as skip:
        return row(check.name, "skip", "", check.expected, str(skip))
    except CheckTimeout:
        return row(check.name, "fail", "", check.expected, f"stopped: over its time budget of {budget:.0f} s")
    except Exception as error:  # a check that raises is a row, never a traceback
        return row(check.name, "fail", "", check.expected, one_line(error))
    if not isinstance(out, dict):
        return row(check.name, "fail", "", check.expected, f"the check returned {type(out).__name__}, not a row")
    result = {**row(check.name, "fail", "", check.expected), **{k: str(v) for k, v in out.items()}}
    if result["status"] not in STATUSES:
        return row(check.name, "fail", "", check.expected, f"the check returned status {result['status']!r}")
    return {k: result[k] for k in COLUMNS}


def run_checks(names: list[str], steps: int, budget_s: float) -> list[Row]:
    """The rows of ``names`` in order; each check gets its own budget or what is left of the run's."""
    run_deadline = time.monotonic() + budget_s
    rows = []
    for name in names:
        check = CHECKS[name]
        left = run_deadline - time.monotonic()
        if left < min(MIN_START_S, check.budget_s):
            rows.append(row(name, "skip", "", check.expected, f"no time left of the run's budget of {budget_s:.0f} s"))
            continue
        print(f"gpu_check: {name} ...", file=sys.stderr, flush=True)
        rows.append(run_one(check, Context(steps, time.monotonic() + min(check.budget_s, left))))
    return rows


def summary_line(rows: list[Row]) -> str:
    counts = {s: sum(r["status"] == s for r in rows) for s in STATUSES}
    return f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped"


def exit_code(rows: list[Row]) -> int:
    return 1 if any(r["status"] == "fail" for r in rows) else 0


def render_table(rows: list[Row]) -> str:
    """The rows as an aligned text table, then the summary line."""
    cells = [list(COLUMNS), *([r[c] for c in COLUMNS] for r in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    text = [" | ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in cells]
    text.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join([*text, summary_line(rows)])


def render_markdown(rows: list[Row], machine: str = "", command: str = "") -> str:
    """The rows as a Markdown table under a heading naming the machine and the command."""
    def cell(value: str) -> str:
        return value.replace("|", "\\|").replace("\n", " ")

    lines = ["# GPU check", ""]
    if command or machine:
        lines += [" on ".join(x for x in (f"`{command}`" if command else "", machine) if x), ""]
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(r[c]) for c in COLUMNS) + " |" for r in rows]
    return "\n".join([*lines, "", summary_line(rows), ""])


def select(only: str | None) -> list[str]:
    """The checks ``--only`` names, in the registry's order; UsageError on a name it does not know."""
    if only is None:
        return list(CHECKS)
    wanted = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in CHECKS]
    if unknown or not wanted:
        what = f"unknown check {', '.join(map(repr, unknown))}" if unknown else "--only names no check"
        raise UsageError(f"gpu_check: {what}; known checks: {', '.join(CHECKS)}")
    return [n for n in CHECKS if n in wanted]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gpu_check.py", description=__doc__.splitlines()[0])
    parser.add_argument("--only", metavar="NAME[,NAME]", help="run these checks only (--list names them)")
    parser.add_argument("--list", action="store_true", help="print the checks and exit")
    parser.add_argument("--json", action="store_true", help="print the rows as one JSON line instead of the table")
    parser.add_argument("--out", metavar="FILE", help="also write the table as Markdown to FILE")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="optimizer steps per training")
    parser.add_argument("--budget", type=float, default=RUN_BUDGET_S, help="seconds for all the checks together")
    return parser.parse_args(argv)


def report(rows: list[Row], args: argparse.Namespace, argv: list[str]) -> int:
    summary = summary_line(rows)
    if args.json:
        print(json.dumps({"rows": rows, "summary": summary}))
        print(summary, file=sys.stderr)
    else:
        print(render_table(rows))
    if args.out:
        command = " ".join(["benchmarks/gpu_check.py", *argv])
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(render_markdown(rows, machine_description(), command), encoding="utf-8")
    return exit_code(rows)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    try:
        names = select(args.only)
        if args.steps < 1 or not args.budget > 0:
            raise UsageError("gpu_check: --steps must be at least 1 and --budget above 0")
    except UsageError as error:
        print(error, file=sys.stderr)
        return 2
    if args.list:
        for check in CHECKS.values():
            print(f"{check.name:<16} {check.about}")
        return 0
    if not cuda_available():
        print(NO_CUDA, file=sys.stderr)
        return 3
    try:
        with run_cache():
            rows = run_checks(names, args.steps, args.budget)
    except KeyboardInterrupt:
        print("gpu_check: interrupted", file=sys.stderr)
        return 130
    return report(rows, args, argv)


if __name__ == "__main__":
    sys.exit(main())
