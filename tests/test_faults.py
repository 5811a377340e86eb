"""Crash safety, tested with real processes: `compare` killed with SIGKILL at random points resumes to the
same results as a run never interrupted; two processes on one run folder, or training one artifact, never
share the work.

Every run is a process of its own, forked from a "zygote" process that imported torch, transformers, PEFT
and TRL once (so that a run costs its work, not ten seconds of imports) and reports how each child
ended: its exit code, the signal that killed it, or the signal that stopped it. The faults are placed by
the test hook ``FTHARNESS_FAULT=POINT:N[:stop]`` (``ftharness.faults``).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "extraction"

ZYGOTE = r"""
import json, os, sys, traceback
import torch, transformers, peft, trl, datasets, sacrebleu  # noqa: F401  imported once, for every child
from rouge_score import rouge_scorer  # noqa: F401
from transformers.models.llama import modeling_llama  # noqa: F401
from ftharness.cli import main
from ftharness.compare import run  # noqa: F401
from ftharness.plugins import get_plugins
from ftharness.training import sft  # noqa: F401

get_plugins()
torch.set_num_threads(1)
print("ready", flush=True)
for line in sys.stdin:
    req = json.loads(line)
    if req["op"] == "start":
        pid = os.fork()
        if pid == 0:
            code = 99
            try:
                os.environ.update(req["env"])
                os.chdir(req["cwd"])
                for fd, name in ((1, "stdout"), (2, "stderr")):
                    os.dup2(os.open(req[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
                sys.argv = ["ftharness", *req["argv"]]
                code = main(req["argv"])
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        print(json.dumps({"pid": pid}), flush=True)
    else:
        _, status = os.waitpid(req["pid"], os.WUNTRACED if req.get("untraced") else 0)
        if os.WIFSTOPPED(status):
            out = {"stopped": os.WSTOPSIG(status)}
        elif os.WIFSIGNALED(status):
            out = {"signal": os.WTERMSIG(status)}
        else:
            out = {"exit": os.WEXITSTATUS(status)}
        print(json.dumps(out), flush=True)
"""


class Zygote:
    """Starts ``ftharness`` runs as forked processes and reports how each ended."""

    def __init__(self, tmp: Path) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        self.tmp = tmp
        self.proc = subprocess.Popen([sys.executable, "-c", ZYGOTE], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)
        assert self._read() == "ready"
        self.n = 0

    def _read(self) -> str:
        line = self.proc.stdout.readline()
        assert line, "the zygote process died"
        return line.strip()

    def _ask(self, request: dict) -> dict:
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return json.loads(self._read())

    def start(self, argv: list[str], *, cache: Path, fault: str | None = None, env: dict | None = None) -> dict:
        self.n += 1
        logs = {name: str(self.tmp / f"run{self.n}.{name}") for name in ("stdout", "stderr")}
        env = {"FTHARNESS_CACHE": str(cache), "FTHARNESS_FAULT": fault or "", **(env or {})}
        pid = self._ask({"op": "start", "argv": argv, "env": env, "cwd": str(self.tmp), **logs})["pid"]
        return {"pid": pid, **logs}

    def wait(self, run: dict, *, untraced: bool = False) -> dict:
        return self._ask({"op": "wait", "pid": run["pid"], "untraced": untraced})

    def run(self, argv: list[str], **kw) -> tuple[dict, str]:
        run = self.start(argv, **kw)
        return self.wait(run), Path(run["stderr"]).read_text()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def zygote(tmp_path_factory):
    z = Zygote(tmp_path_factory.mktemp("zygote"))
    yield z
    z.close()


@pytest.fixture(scope="module")
def task(tmp_path_factory, varied_tiny_model_dir):
    """A tiny task on the varied tiny model: 12 training rows (4 carved off for validation), 4 eval rows,
    one zero-shot baseline, one LoRA trained for 4 steps with a checkpoint every 2; generation in batches
    of 2, so each option has 2 batches and 2 samples appends, and 2 suites score it."""
    root = tmp_path_factory.mktemp("task")
    for name, n in (("train", 12), ("eval", 4)):
        lines = (EXAMPLE / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()[:n]
        (root / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    path = root / "task.yaml"
    path.write_text(f"""
name: tiny-faults
base_model: {varied_tiny_model_dir}
instruction_file: {EXAMPLE / "instruction.txt"}
schema: {EXAMPLE / "schema.json"}
data: {{train: train.jsonl, eval: eval.jsonl}}
generation: {{max_new_tokens: 6, batch_size: 2}}
validation: {{fraction: 0.25, min: 4}}
baselines:
  - {{name: zero-shot, kind: zero-shot}}
candidates:
  - name: lora
    method: lora
    hyperparameters: {{r: 4, lora_alpha: 8, target_modules: [q_proj, v_proj], max_steps: 4, batch_size: 4,
                      checkpoint_steps: 2, learning_rate: 0.05, early_stopping_patience: null}}
suites: [format, task]
decision: {{bootstrap_samples: 200, merged_latency_prompts: 0}}
""", encoding="utf-8")
    return path


def compare_argv(task: Path, out: Path) -> list[str]:
    return ["compare", str(task), "--out", str(out), "--no-progress"]


@pytest.fixture(scope="module")
def reference(zygote, task, tmp_path_factory):
    """The uninterrupted run: its exit, its results and the cache holding its trained artifact."""
    root = tmp_path_factory.mktemp("reference")
    ended, err = zygote.run(compare_argv(task, root / "reports"), cache=root / "cache")
    assert "exit" in ended and ended["exit"] in (0, 1), err
    (run_dir,) = run_dirs(root / "reports")
    return {"ended": ended, "results": json.loads((run_dir / "results.json").read_text()), "cache": root / "cache"}


def run_dirs(reports: Path) -> list[Path]:
    """The run folders of a reports folder (beside them: the run history, history.sqlite)."""
    return [p for p in reports.iterdir() if p.is_dir()]


def verdict(results: dict) -> dict:
    """What a rerun must reproduce: the decision, every option's metrics, every sample's output (not the
    timings: wall times, latencies and throughput change from run to run)."""
    d = results["decision"]
    return {
        "decision": {k: d[k] for k in ("verdict", "recommended", "recommended_kind", "passes_all_gates", "metric",
                                       "best_baseline", "comparison")},
        "metrics": {o["name"]: {k: v for k, v in o["metrics"].items() if not k.startswith("throughput.")}
                    for o in results["options"]},
        "gates": {o["name"]: [(g["name"], g["value"], g["passed"]) for g in o["gates"]
                              if not g["name"].startswith("throughput.")] for o in results["options"]},
        "samples": [{name: out["text"] for name, out in row["outputs"].items()} for row in results["samples"]],
    }


# Where the kill lands, and how many times each point is reached in an uninterrupted run of the task.
POINTS = {"generate": 4, "jsonl-append": 4, "train-step": 4, "score": 4, "report": 1}


@pytest.mark.slow
def test_a_run_killed_anywhere_resumes_to_the_same_results(zygote, task, reference, tmp_path):
    seed = int(os.environ.get("FTHARNESS_FAULT_SEED", random.randrange(1 << 16)))
    rng = random.Random(seed)
    expected = verdict(reference["results"])
    assert len({tuple(s.values()) for s in expected["samples"]}) > 1  # outputs that differ prove something
    for point, hits in POINTS.items():
        fault = f"{point}:{rng.randint(1, hits)}"
        where = f"{fault} (FTHARNESS_FAULT_SEED={seed})"
        out = tmp_path / point / "reports"
        # Training is killed in a cache of its own; the other points reuse the reference's trained artifact.
        cache = tmp_path / point / "cache" if point == "train-step" else reference["cache"]
        ended, err = zygote.run(compare_argv(task, out), cache=cache, fault=fault)
        assert ended == {"signal": signal.SIGKILL}, f"{where}: not killed: {ended} {err}"
        (run_dir,) = run_dirs(out)
        assert json.loads((run_dir / "run.json").read_text())["status"] == "running"  # as a kill leaves it
        if point == "jsonl-append":
            torn = [p for p in (run_dir / "samples").iterdir() if not p.read_text().endswith("\n")]
            assert len(torn) == 1, f"{where}: the kill should leave a line cut short"
        ended, err = zygote.run(compare_argv(task, out), cache=cache)
        assert ended == reference["ended"], f"{where}: rerun {ended}: {err}"
        assert [p.name for p in run_dirs(out)] == [run_dir.name], f"{where}: the rerun resumes the same run"
        results = json.loads((run_dir / "results.json").read_text())
        assert results["settings"]["resumed"], where
        assert verdict(results) == expected, where
        for samples in (run_dir / "samples").iterdir():
            ids = [json.loads(line)["id"] for line in samples.read_text().splitlines()]
            assert sorted(ids) == list(range(4)), f"{where}: {samples.name} holds {ids}"
        assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"


@pytest.mark.slow
def test_a_second_process_on_a_busy_run_exits_2_naming_the_holder(zygote, task, reference, tmp_path):
    out = tmp_path / "reports"
    first = zygote.start(compare_argv(task, out), cache=reference["cache"], fault="generate:1:stop")
    assert zygote.wait(first, untraced=True) == {"stopped": signal.SIGSTOP}  # holds the run, mid-generation
    try:
        ended, err = zygote.run(compare_argv(task, out), cache=reference["cache"])
    finally:
        os.kill(first["pid"], signal.SIGCONT)
    assert ended == {"exit": 2}, err
    (run_dir,) = run_dirs(out)
    assert err.strip() == (
        f"ftharness compare: {run_dir}: run {run_dir.name} is in use by pid {first['pid']} "
        f"(since {json.loads((run_dir / 'run.lock').read_text())['since']}): ftharness "
        f"{' '.join(compare_argv(task, out))}; wait for it to end (one process works in a run at a time), "
        "or give another --run-id"
    )
    assert zygote.wait(first) == reference["ended"]  # the first run was not disturbed
    assert verdict(json.loads((run_dir / "results.json").read_text())) == verdict(reference["results"])
    for samples in (run_dir / "samples").iterdir():
        assert len(samples.read_text().splitlines()) == 4  # no row written twice
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"


@pytest.mark.slow
def test_two_processes_training_one_artifact_train_it_once(zygote, task, varied_tiny_model_dir, tmp_path):
    candidate = tmp_path / "lora.yaml"
    candidate.write_text(f"""
name: lora
method: lora
base_model: {varied_tiny_model_dir}
hyperparameters: {{r: 4, lora_alpha: 8, target_modules: [q_proj, v_proj], max_steps: 4, batch_size: 4}}
data: {{train: {task.parent / "train.jsonl"}}}
""")
    cache = tmp_path / "cache"
    first = zygote.start(["train", str(candidate), "--json"], cache=cache, fault="train-step:2:stop")
    assert zygote.wait(first, untraced=True) == {"stopped": signal.SIGSTOP}  # holds the artifact, mid-training
    second = zygote.start(["train", str(candidate)], cache=cache, env={"COLUMNS": "500"})
    deadline = time.monotonic() + 60
    while f"waiting for pid {first['pid']} " not in _text(second["stderr"]):
        assert time.monotonic() < deadline, _text(second["stderr"])
        time.sleep(0.2)
    os.kill(first["pid"], signal.SIGCONT)
    assert zygote.wait(first) == {"exit": 0}, Path(first["stderr"]).read_text()
    assert zygote.wait(second) == {"exit": 0}, Path(second["stderr"]).read_text()
    trained = json.loads(Path(first["stdout"]).read_text())
    assert not trained["cached"] and trained["result"]["extra"]["global_step"] == 4  # trained by the first
    assert f"{trained['path']} (cached)" in Path(second["stdout"]).read_text()  # reused by the second
    assert [p.name for p in (cache / "artifacts").iterdir()] == [Path(trained["path"]).name]


def _text(path: str) -> str:
    """The file's text so far ('' before the process has opened it)."""
    try:
        return Path(path).read_text()
    except FileNotFoundError:
        return ""
