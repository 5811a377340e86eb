"""Training on several processes (`launch:`): the accelerate config per strategy, the checks before any work,
a failed or killed launch, and `compare` training one candidate on 1 process, 2 under DDP and 2 under FSDP.

Tolerance of the launched adapters against the one-process one: 1e-4 absolute on every adapter weight and
1e-5 relative on every logged loss. Two processes see the same rows per optimizer step as one process (half
the batch each, accelerate's sharding of one seeded order) and average their gradients; what differs is the
order in which fp32 sums are reduced (two partial sums all-reduced instead of one sum), which moves the
weights by a few ulps per step: measured 3e-6 at most after 4 steps of a learning rate of 0.02, where the
weights are up to 0.14. That holds when the rows fill every step: where the last step of an epoch is short,
accelerate fills each process's part with rows from the start of the epoch (``even_batches``), so that step
sees other rows than one process's short last batch.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import example_rows

from ftharness.cli import main
from ftharness.errors import BadInput, EnvironmentProblem
from ftharness.planner.strategies import STRATEGIES, LaunchSettings
from ftharness.training import launch as L

DATA = Path(__file__).parent / "data"
WEIGHT_TOLERANCE = 1e-4
LOSS_TOLERANCE = 1e-5


# --- settings and config, no process started --------------------------------------------------------------


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_the_accelerate_config_asks_for_the_strategy(strategy):
    config = L.accelerate_config(LaunchSettings(processes=4, strategy=strategy), cuda=False, port=1234)
    assert config["num_processes"] == 4 and config["use_cpu"] is True and config["main_process_port"] == 1234
    kind = STRATEGIES[strategy].engine
    assert config["distributed_type"] == {"ddp": "MULTI_GPU", "fsdp": "FSDP", "deepspeed": "DEEPSPEED"}[kind]
    assert ("fsdp_config" in config) == (kind == "fsdp")
    if kind == "deepspeed":
        assert config["deepspeed_config"]["zero_stage"] == STRATEGIES[strategy].zero_stage
    assert L.accelerate_config(LaunchSettings(processes=2, strategy=strategy), cuda=True, port=1)["use_cpu"] is False


def test_one_plain_process_keeps_the_key_it_always_had_and_a_launch_changes_it(tmp_path):
    assert L.identity(None) is None and L.identity(LaunchSettings()) is None
    two = L.identity(LaunchSettings(processes=2))
    assert two == {"processes": 2, "strategy": "ddp", "config_sha256": None}
    assert L.identity(LaunchSettings(processes=2, strategy="fsdp")) != two
    config = tmp_path / "acc.yaml"
    config.write_text("num_processes: 2\n")
    assert L.identity(LaunchSettings(processes=2, config=str(config)))["config_sha256"]


def test_a_config_path_is_resolved_against_its_file_and_must_exist(tmp_path):
    (tmp_path / "acc.yaml").write_text("num_processes: 2\n")
    launch = L.check_launch(LaunchSettings(processes=2, config="acc.yaml"), source=tmp_path / "c.yaml", field="launch")
    assert launch.config == str(tmp_path / "acc.yaml")
    with pytest.raises(BadInput, match="accelerate config not found") as e:
        L.check_launch(LaunchSettings(processes=2, config="nope.yaml"), source=tmp_path / "c.yaml", field="launch")
    assert e.value.field == "launch.config"
    assert L.check_launch(LaunchSettings(processes=1), source=tmp_path / "c.yaml", field="launch") is None


def test_a_worker_s_error_comes_back_as_its_kind(tmp_path):
    for rank, error in ((1, EnvironmentProblem("no GPU")), (0, BadInput("bad row", field="x"))):
        L.write_worker_error(tmp_path, rank, error)
    said = L._worker_error(tmp_path, 1, tmp_path / "launch.log")
    assert isinstance(said, BadInput) and str(said).startswith("worker 0: ")  # the lowest rank speaks
    (tmp_path / "error-0.json").unlink()
    assert isinstance(L._worker_error(tmp_path, 1, tmp_path / "launch.log"), EnvironmentProblem)
    (tmp_path / "error-1.json").unlink()
    (tmp_path / "launch.log").write_text("Traceback ...\nSIGKILL\n")
    silent = L._worker_error(tmp_path, -9, tmp_path / "launch.log")
    assert isinstance(silent, L.WorkerCrashed) and silent.exit_code == 4 and "SIGKILL" in str(silent)


def _candidate(tmp_path: Path, model: Path, name: str, launch: str = "", batch: int = 4, steps: int = 4) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"""
name: {name}
base_model: {model}
hyperparameters: {{max_steps: {steps}, batch_size: {batch}, learning_rate: 0.02, early_stopping_patience: null,
                   lora_dropout: 0.0}}
data: {{train: {DATA / 'train_tiny.jsonl'}}}
system_prompt: Extract the order as JSON.
{launch}
""")
    return path


@pytest.mark.parametrize("flag, expected", [
    ("{processes: 2, strategy: fsd}", "--launch.strategy: 'fsd' is not one of: ddp, fsdp, deepspeed-zero2"),
    ("{processes: 0}", "--launch.processes"),
    ("[2]", "--launch: give a mapping"),
    ("{processes: 2, config: missing.yaml}", "accelerate config not found"),
])
def test_a_bad_launch_is_one_line_and_exit_2(flag, expected, tmp_path, tiny_model_dir, isolated_cache, capsys):
    code = main(["train", str(_candidate(tmp_path, tiny_model_dir, "c")), "--launch", flag, "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and expected in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(L.unavailable_reason(LaunchSettings(processes=2, strategy="deepspeed-zero3")) is None,
                    reason="DeepSpeed is installed here: the launch is tried, not refused")
def test_deepspeed_where_it_is_not_installed_is_exit_3_before_any_work(tmp_path, tiny_model_dir, isolated_cache,
                                                                        capsys):
    code = main(["train", str(_candidate(tmp_path, tiny_model_dir, "c")), "--launch",
                 "{processes: 2, strategy: deepspeed-zero3}", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 3 and "needs DeepSpeed" in err and "strategy fsdp" in err
    assert not list(isolated_cache.glob("artifacts/*/launch"))


# --- real launches ----------------------------------------------------------------------------------------


def _env(cache: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "FTHARNESS_CACHE": str(cache), **extra}


def _workers(job_folder: str) -> list[int]:
    import psutil

    lines = {p.pid: " ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"])}
    return [pid for pid, line in lines.items()  # the workers, not the accelerate launcher that names them
            if "ftharness.training.worker" in line and job_folder in line and "accelerate" not in line]


@pytest.mark.slow
def test_a_crashed_worker_ends_the_launch_with_exit_4_and_a_killed_harness_leaves_no_worker(
        tmp_path, tiny_model_dir, isolated_cache):
    cand = _candidate(tmp_path, tiny_model_dir, "c", "launch: {processes: 2, strategy: ddp}", batch=2, steps=3)
    crashed = subprocess.run([sys.executable, "-m", "ftharness", "train", str(cand), "--no-progress"],
                             env=_env(isolated_cache, FTHARNESS_FAULT="train-step:1"), capture_output=True,
                             text=True, timeout=240)
    assert crashed.returncode == 4, crashed.stderr[-1500:]
    assert "no worker said why" in crashed.stderr and "Traceback" not in crashed.stderr

    harness = subprocess.Popen([sys.executable, "-m", "ftharness", "train", str(cand), "--no-progress"],
                               env=_env(isolated_cache, FTHARNESS_FAULT="train-step:1:stop"),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    jobs: list[str] = []
    try:
        deadline = time.monotonic() + 180
        workers: list[int] = []
        while time.monotonic() < deadline and len(workers) < 2:  # both workers stopped at their first step
            jobs = [str(p) for p in isolated_cache.glob("artifacts/*/launch/job.json")]
            workers = _workers(jobs[0]) if jobs else []
            time.sleep(0.5)
        assert len(workers) == 2, "the workers never started"
        harness.send_signal(signal.SIGKILL)
        harness.wait()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _workers(jobs[0]):
            for pid in _workers(jobs[0]):  # a stopped process acts on SIGTERM only once it runs again
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
            time.sleep(0.5)
        assert not _workers(jobs[0]), "a worker outlived the harness"
    finally:  # nothing of this test outlives it, whatever failed
        harness.kill()
        for pid in _workers(jobs[0]) if jobs else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_compare_trains_a_candidate_on_two_processes_under_ddp_and_fsdp_as_one_process_does(
        tmp_path, tiny_model_dir, isolated_cache, one_torch_thread, monkeypatch):
    """One process with batches of 4 against two processes with batches of 2 each (the same rows per step):
    the adapters agree within the tolerance the module docstring states; the report records each launch."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the workers: two processes on two cores
    example_rows(tmp_path, train=10, eval=2)  # 8 rows to train on after validation: two full steps of 4
    hp = "r: 4, max_steps: 3, learning_rate: 0.02, early_stopping_patience: null, lora_dropout: 0.0"
    path = tmp_path / "task.yaml"
    path.write_text(f"""
name: launched
base_model: {tiny_model_dir}
instruction: Extract the order as JSON.
data: {{train: train.jsonl, eval: eval.jsonl}}
validation: {{fraction: 0.2, min: 2}}
generation: {{max_new_tokens: 4, batch_size: 2}}
candidates:
  - {{name: one, method: lora, hyperparameters: {{{hp}, batch_size: 4}}}}
  - {{name: ddp, method: lora, hyperparameters: {{{hp}, batch_size: 2}}, launch: {{processes: 2}}}}
  - {{name: fsdp, method: lora, hyperparameters: {{{hp}, batch_size: 2}}, launch: {{processes: 2, strategy: fsdp}}}}
suites: [task]
decision: {{metric: task.exact_match, bootstrap_samples: 100, merged_latency_prompts: 0}}
""")
    code = main(["compare", str(path), "--out", str(tmp_path / "r"), "--run-id", "x", "--no-progress"])
    assert code in (0, 1)
    run = tmp_path / "r" / "x"
    by = {o["name"]: o for o in json.loads((run / "results.json").read_text())["options"]}
    assert by["one"]["training"]["launch"] is None
    from safetensors.torch import load_file

    weights = {n: load_file(Path(by[n]["training"]["artifact"]) / "adapter_model.safetensors") for n in by}
    losses = {n: [p["loss"] for p in by[n]["training"]["loss_curve"] if "loss" in p] for n in by}
    for name in ("ddp", "fsdp"):
        launch = by[name]["training"]["launch"]
        assert launch["world_size"] == 2 and launch["strategy"] == name and "num_processes: 2" in launch[
            "accelerate_config"]
        assert by[name]["training"]["artifact"] != by["one"]["training"]["artifact"]
        assert sorted(weights[name]) == sorted(weights["one"])
        assert max(float((weights[name][k] - weights["one"][k]).abs().max()) for k in weights["one"]) <= WEIGHT_TOLERANCE
        assert len(losses[name]) == len(losses["one"]) == 3
        assert by[name]["training"]["train_tokens"] == by["one"]["training"]["train_tokens"]  # every process's rows
        assert all(abs(a - b) <= LOSS_TOLERANCE * abs(b) for a, b in zip(losses[name], losses["one"], strict=True))
        card = (Path(by[name]["training"]["artifact"]) / "README.md").read_text()
        assert f"2 processes under `accelerate launch`, strategy `{name}`" in card
        record = yaml.safe_load(json.loads((Path(by[name]["training"]["artifact"]) / "candidate.json").read_text())
                                ["launch"]["accelerate_config"])
        assert record["distributed_type"] == {"ddp": "MULTI_GPU", "fsdp": "FSDP"}[name]
    assert max(float(weights["one"][k].abs().max()) for k in weights["one"]) > 100 * WEIGHT_TOLERANCE  # it trained
    html = (run / "report.html").read_text()
    assert "2 processes, fsdp" in html and "2 processes, ddp" in html
