"""Scaling out: the same `ftharness train` launched on two processes with torchrun (CPU, gloo backend), as a
user with several GPUs or nodes runs it; both processes must end with identical weights and losses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.mark.slow
def test_two_process_training_agrees(tiny_model_dir, isolated_cache, tmp_path):
    cand = tmp_path / "ddp.yaml"
    cand.write_text(f"""
name: ddp-lora
base_model: {tiny_model_dir}
hyperparameters: {{max_steps: 3, batch_size: 2, learning_rate: 0.02, early_stopping_patience: null}}
data: {{train: {DATA / 'train_tiny.jsonl'}}}
system_prompt: Extract the order as JSON.
""")
    logs = tmp_path / "logs"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FTHARNESS_CACHE": str(isolated_cache)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "--log-dir", str(logs), "--redirects", "3",
           "-m", "ftharness", "train", str(cand), "--json", "--no-progress"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=170)
    outs = sorted(logs.rglob("stdout.log"))
    errs = "\n".join(p.read_text()[-2000:] for p in sorted(logs.rglob("stderr.log")))
    assert proc.returncode == 0, proc.stderr[-2000:] + errs
    assert len(outs) == 2
    docs = [json.loads(p.read_text()) for p in outs]
    a, b = (d["result"] for d in docs)
    assert a["extra"]["world_size"] == b["extra"]["world_size"] == 2
    assert a["extra"]["trainable_sha256"] == b["extra"]["trainable_sha256"]  # gradients were all-reduced
    assert [p["loss"] for p in a["loss_curve"]] == [p["loss"] for p in b["loss_curve"]]
    assert docs[0]["path"] == docs[1]["path"]
    record = json.loads((Path(docs[0]["path"]) / "candidate.json").read_text())
    assert record["result"]["extra"]["trainable_sha256"] == a["extra"]["trainable_sha256"]
    # 3 steps x 2 processes x batch 2: every process trained its own shard of each batch
    assert a["extra"]["global_step"] == 3
