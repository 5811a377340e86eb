"""``reports/<run-id>/``: one folder per run, never reused by another run, written atomically.

Layout::

    reports/<run-id>/
      run.json          what the run is (task file, task hash, status: running | finished)
      state/            finished trainings and evaluations, one JSON each (what a resumed run reuses)
      samples/NAME.jsonl  per-sample outputs of each option, appended as they are produced
      run.log           the libraries' warnings, log records and progress bars (kept off the terminal)
      results.json  junit.xml  report.html   written at the end

A new run gets a fresh id (``YYYYmmdd-HHMMSS-TASK``, suffixed when taken). Running the same command again
after an interruption picks up the newest *unfinished* run of the same task (same task hash) instead
of starting over; ``--resume`` insists on that, ``--run-id`` names the folder. A finished run's folder
is never written again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ftharness.errors import BadInput
from ftharness.io import atomic_write_json, atomic_write_text

RUNNING, FINISHED = "running", "finished"


@dataclass
class RunDir:
    root: Path
    run_id: str
    resumed: bool = False

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def samples(self) -> Path:
        return self.root / "samples"

    def samples_file(self, option: str) -> Path:
        return self.samples / f"{option}.jsonl"

    def state_file(self, kind: str, name: str) -> Path:
        return self.state / f"{kind}-{name}.json"

    def read_state(self, kind: str, name: str) -> dict[str, Any] | None:
        p = self.state_file(kind, name)
        if not p.exists():
            return None
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None  # written atomically, so this is a foreign file: treat as not done

    def write_state(self, kind: str, name: str, data: dict[str, Any]) -> None:
        atomic_write_json(self.state_file(kind, name), data)

    def manifest(self) -> dict[str, Any]:
        p = self.root / "run.json"
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return {}

    def write(self, name: str, text: str) -> Path:
        if self.manifest().get("status") == FINISHED:
            raise BadInput(f"run {self.run_id} is finished; its report is never overwritten", file=self.root)
        atomic_write_text(self.root / name, text)
        return self.root / name

    def finish(self) -> None:
        m = self.manifest()
        m.update(status=FINISHED, finished_at=_now())
        atomic_write_json(self.root / "run.json", m)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_run_id(task_name: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in task_name)[:40] or "run"
    return time.strftime("%Y%m%d-%H%M%S") + f"-{safe}"


def _create(out: Path, run_id: str, manifest: dict[str, Any]) -> RunDir:
    out.mkdir(parents=True, exist_ok=True)
    candidate, n = run_id, 1
    while True:
        root = out / candidate
        try:
            root.mkdir()  # exist_ok=False: two runs never share a folder
            break
        except FileExistsError:
            n += 1
            candidate = f"{run_id}-{n}"
    atomic_write_json(
        root / "run.json", {**manifest, "run_id": candidate, "status": RUNNING, "created_at": _now()}
    )
    return RunDir(root=root, run_id=candidate)


def unfinished_runs(out: Path, task_hash: str) -> list[RunDir]:
    """Unfinished runs of the same task, newest first."""
    if not out.is_dir():
        return []
    found = []
    for root in out.iterdir():
        run = RunDir(root=root, run_id=root.name)
        m = run.manifest() if root.is_dir() else {}
        if m.get("task_hash") == task_hash and m.get("status") == RUNNING:
            found.append((m.get("created_at", ""), root.name, run))
    return [r for *_, r in sorted(found, key=lambda t: (t[0], t[1]), reverse=True)]


def open_run(
    out: str | Path,
    *,
    task_name: str,
    task_hash: str,
    task_file: str,
    run_id: str | None = None,
    resume: bool = False,
) -> RunDir:
    """The run folder to work in: named, resumed, or new (see the module docstring)."""
    out = Path(out)
    manifest = {"task": task_name, "task_file": task_file, "task_hash": task_hash}
    if run_id is not None:
        if resume:
            raise BadInput("give --run-id or --resume, not both", field="--resume")
        if not run_id or "/" in run_id or run_id.startswith("."):
            raise BadInput(f"not a usable run id: {run_id!r}", field="--run-id")
        root = out / run_id
        if not root.exists():
            out.mkdir(parents=True, exist_ok=True)
            root.mkdir()
            atomic_write_json(
                root / "run.json", {**manifest, "run_id": run_id, "status": RUNNING, "created_at": _now()}
            )
            return RunDir(root=root, run_id=run_id)
        run = RunDir(root=root, run_id=run_id, resumed=True)
        m = run.manifest()
        if m.get("status") == FINISHED:
            raise BadInput(
                f"run {run_id} already finished; its report is kept. Pick another --run-id", file=root
            )
        if m.get("task_hash") != task_hash:
            raise BadInput(
                f"run {run_id} belongs to another task or an edited task file; pick another --run-id",
                file=root,
            )
        return run
    runs = unfinished_runs(out, task_hash)
    if runs:
        runs[0].resumed = True
        return runs[0]
    if resume:
        raise BadInput(f"no unfinished run of this task under {out} to resume", field="--resume")
    return _create(out, new_run_id(task_name), manifest)
