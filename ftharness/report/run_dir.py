"""``reports/<run-id>/``: one folder per run, never reused by another run, written atomically.

Layout::

    reports/<run-id>/
      run.json          what the run is (task file, task hash, status: running | failed | finished; a
                        failed run says why under ``failure``)
      run.lock          held by the process working in the run (``flock``; names its pid and command)
      state/            finished trainings and evaluations, one JSON each (what a resumed run reuses)
      samples/NAME.jsonl  per-sample outputs of each option, appended as they are produced
      run.log           the libraries' warnings, log records and progress bars (kept off the terminal)
      results.json  junit.xml  report.html   written at the end
      diff.json  diff.xml  diff.html   ``compare --against RUN``: the diff with that earlier run, written once this
                        run has finished (``ftharness.compare.diff``)

A new run gets a fresh id (``YYYYmmdd-HHMMSS-TASK``, suffixed when taken). Running the same command again
after an interruption picks up the newest *unfinished* run (running or failed) of the same task (same task
hash) instead of starting over; ``--resume`` insists on that, ``--run-id`` names the folder. A finished
run's folder is never written again.

One process at a time works in a run folder: :func:`open_run` takes an exclusive lock on ``run.lock``
and the run keeps it until :meth:`RunDir.close`. A second process that would open the same run gets a
BadInput naming the holder (pid, since when, command) instead of waiting. The operating system drops the
lock of a process that dies, even by ``kill -9``, so a lock is never left stale; a run such a process
leaves "running" is resumed like a failed one.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ftharness.errors import BadInput
from ftharness.io import (
    FileLock,
    atomic_write_json,
    atomic_write_text,
    check_folder,
    describe_holder,
    json_text,
    lock_holder,
    try_lock,
    wait_lock,
)

RUNNING, FAILED, FINISHED = "running", "failed", "finished"
LOCK_NAME = "run.lock"


@dataclass
class RunDir:
    root: Path
    run_id: str
    resumed: bool = False
    lock: FileLock | None = None

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
        """Write a report file of the run (atomically); a finished run's reports are never overwritten."""
        if self.manifest().get("status") == FINISHED:
            raise BadInput(f"run {self.run_id} is finished; its report is never overwritten", file=self.root)
        atomic_write_text(self.root / name, text)
        return self.root / name

    def write_json(self, name: str, data: Any) -> Path:
        """:meth:`write` for a JSON document."""
        return self.write(name, json_text(data))

    def finish(self) -> None:
        m = self.manifest()
        m.update(status=FINISHED, finished_at=_now())
        atomic_write_json(self.root / "run.json", m)

    def fail(self, error: BaseException, exit_code: int, log: str | None = None) -> None:
        """Mark the run failed, saying why: the error's type and message, the exit code the command ends
        with, and the log file that holds a traceback (if any). A finished run is left as it is."""
        m = self.manifest()
        if m.get("status") == FINISHED:
            return
        m.update(
            status=FAILED,
            failed_at=_now(),
            failure={"error": type(error).__name__, "message": str(error), "exit_code": exit_code, "log": log},
        )
        atomic_write_json(self.root / "run.json", m)

    def close(self) -> None:
        """Release the run's lock: another process may open the run from now on."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None


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
    return _start(RunDir(root=root, run_id=candidate), manifest)


def _start(run: RunDir, manifest: dict[str, Any]) -> RunDir:
    """A new run in the folder this process just created: locked first, then described by run.json (so a
    run that others can see is always locked by its process). The wait is for a process that tried the
    new folder's lock in the same moment, and lets go at once."""
    run.lock = wait_lock(run.root / LOCK_NAME)
    atomic_write_json(
        run.root / "run.json", {**manifest, "run_id": run.run_id, "status": RUNNING, "created_at": _now()}
    )
    return run


def _take(run: RunDir) -> RunDir:
    """``run`` locked by this process, or a BadInput naming the process that works in it."""
    run.lock = try_lock(run.root / LOCK_NAME)
    if run.lock is None:
        holder = describe_holder(lock_holder(run.root / LOCK_NAME))
        raise BadInput(
            f"run {run.run_id} is in use by {holder}; wait for it to end (one process works in a run "
            "at a time), or give another --run-id",
            file=run.root,
        )
    return run


def _resumed(run: RunDir) -> RunDir:
    """A locked, unfinished run marked running again."""
    m = run.manifest()
    m.pop("failure", None)
    m.update(status=RUNNING, resumed_at=_now())
    atomic_write_json(run.root / "run.json", m)
    run.resumed = True
    return run


def unfinished_runs(out: Path, task_hash: str) -> list[RunDir]:
    """Unfinished runs (running or failed) of the same task, newest first."""
    if not out.is_dir():
        return []
    found = []
    for root in out.iterdir():
        run = RunDir(root=root, run_id=root.name)
        m = run.manifest() if root.is_dir() else {}
        if m.get("task_hash") == task_hash and m.get("status") in (RUNNING, FAILED):
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
    """The run folder to work in, locked for this process until :meth:`RunDir.close`: named, resumed, or
    new (see the module docstring). Every check of an existing run is made under its lock."""
    out = check_folder(out, field="--out")
    manifest = {"task": task_name, "task_file": task_file, "task_hash": task_hash}
    if run_id is None:
        for run in unfinished_runs(out, task_hash)[:1]:
            if _take(run).manifest().get("status") != FINISHED:
                return _resumed(run)
            run.close()  # it finished while we looked: start a new run
        if resume:
            raise BadInput(f"no unfinished run of this task under {out} to resume", field="--resume")
        return _create(out, new_run_id(task_name), manifest)
    if resume:
        raise BadInput("give --run-id or --resume, not both", field="--resume")
    if not run_id or "/" in run_id or run_id.startswith("."):
        raise BadInput(f"not a usable run id: {run_id!r}", field="--run-id")
    root = out / run_id
    out.mkdir(parents=True, exist_ok=True)
    try:
        root.mkdir()
        return _start(RunDir(root=root, run_id=run_id), manifest)
    except FileExistsError:
        pass
    run = _take(RunDir(root=root, run_id=run_id))
    m = run.manifest()
    if m.get("status") == FINISHED or m.get("task_hash") != task_hash:
        run.close()
        if m.get("status") == FINISHED:
            raise BadInput(f"run {run_id} already finished; its report is kept. Pick another --run-id", file=root)
        raise BadInput(
            f"run {run_id} belongs to another task or an edited task file; pick another --run-id", file=root
        )
    return _resumed(run)
