"""What the benchmarks that run ``ftharness compare`` share: run a task into a reports folder and read back
its options (imported by benchmarks/served_engine.py and benchmarks/launch.py, run from this folder)."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any


def compare(task: Path, out: str | None, run_id: str) -> tuple[Path, dict[str, Any]] | None:
    """``ftharness compare TASK`` into ``out`` (None: a temporary folder) as run ``run_id``: the run folder and
    its results.json; None (having said why on stderr) when compare did not finish."""
    from ftharness.cli import main as ftharness

    reports = Path(out or tempfile.mkdtemp(prefix=f"{run_id}-"))
    code = ftharness(["compare", str(task), "--out", str(reports), "--run-id", run_id, "--no-progress"])
    run = reports / run_id
    if code not in (0, 1) or not (run / "results.json").is_file():
        print(f"compare exited {code}; see {run}", file=sys.stderr)
        return None
    return run, json.loads((run / "results.json").read_text(encoding="utf-8"))


def options(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A run's options by name."""
    return {o["name"]: o for o in results["options"]}
