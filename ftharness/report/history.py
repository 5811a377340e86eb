"""The run history: every finished ``compare`` and ``eval`` run, indexed in one SQLite file.

The run folders are the source of truth. An entry is made from a run's ``results.json`` (:func:`record_run`,
called when a run finishes), and ``ftharness runs import REPORTS`` makes the entries again from the folders,
so a lost or damaged database is rebuilt, never mourned. The database lives beside the run folders
(``REPORTS/history.sqlite``); ``FTHARNESS_HISTORY`` or ``--history`` names another file.

Writes are one transaction per run (``BEGIN IMMEDIATE``, then ``INSERT OR REPLACE``): SQLite commits a
transaction atomically, so a writer killed mid-write leaves the database as it was before it
(sqlite.org/atomiccommit.html), and a second writer waits for the first (``busy_timeout``) instead of
failing. The journal is SQLite's write-ahead log, so readers never block the writer.

A file that is not a run history, or one held locked past the timeout, is bad input naming the file and
what to do (rebuild it with ``runs import``): exit 2, nothing in the run folders touched.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ftharness.errors import BadInput

HISTORY_NAME = "history.sqlite"
HISTORY_ENV = "FTHARNESS_HISTORY"
BUSY_TIMEOUT_S = 30.0  # how long a writer waits for another (SQLite's busy handler)
SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
  run_id TEXT PRIMARY KEY,
  folder TEXT NOT NULL,
  kind TEXT NOT NULL,
  task TEXT NOT NULL,
  task_hash TEXT,
  created TEXT NOT NULL,
  verdict TEXT,
  recommended TEXT,
  passed INTEGER NOT NULL,
  metric TEXT,
  summary TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_task ON runs (task, created);
"""


@dataclass(frozen=True)
class RunEntry:
    """One run as the history keeps it."""

    run_id: str
    folder: str  # the run folder (where results.json is)
    kind: str  # compare | eval
    task: str  # the task's name (an eval run: its suite's)
    task_hash: str | None
    created: str  # when the run finished (UTC, ISO 8601)
    verdict: str | None  # a compare run's decision (prompt, rag, finetune, rag+finetune, none)
    recommended: str | None
    passed: bool  # its gates passed (a compare run: the recommended option's; an eval run: the suite's)
    metric: str | None  # the decision metric
    summary: dict[str, Any]  # each option's key figures: {name: {metric: value, passed: bool}}, the data hashes

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def history_path(reports: str | Path = "reports", explicit: str | Path | None = None) -> Path:
    """The history file: ``explicit``, else ``$FTHARNESS_HISTORY``, else ``REPORTS/history.sqlite``."""
    chosen = explicit or os.environ.get(HISTORY_ENV)
    return Path(chosen) if chosen else Path(reports) / HISTORY_NAME


@contextmanager
def connect(path: Path, *, create: bool = True) -> Iterator[sqlite3.Connection]:
    """The history at ``path``, its tables made if missing. BadInput naming the file for one that is not a
    run history (or damaged), or locked past :data:`BUSY_TIMEOUT_S`."""
    if not create and not path.is_file():
        raise BadInput("no run history here yet: a finished compare or eval run makes it, or build it from "
                       "run folders with `ftharness runs import REPORTS`", file=path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except sqlite3.Error as e:
        raise _bad(path, e) from None
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.executescript(SCHEMA)
        con.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        yield con
    except sqlite3.Error as e:
        raise _bad(path, e) from None
    finally:
        con.close()


def _bad(path: Path, error: sqlite3.Error) -> BadInput:
    text = str(error)
    if "locked" in text or "busy" in text:
        return BadInput(f"the run history is locked by another process past {BUSY_TIMEOUT_S:g} s ({text}); run "
                        "again when it is done", file=path)
    return BadInput(f"not a readable run history ({text}); move it aside and rebuild it from the run folders "
                    "with `ftharness runs import REPORTS` (they are the source of truth)", file=path)


def entry_of(folder: str | Path) -> RunEntry:
    """The history entry of the run in ``folder``, read from its results.json. BadInput naming the file
    when it is missing or is not a results.json of compare or eval."""
    from ftharness.report.results import CompareResults, read_results

    folder = Path(folder)
    path = folder / "results.json"
    if not path.is_file():
        raise BadInput("no results.json: not a finished run folder", file=folder)
    results = read_results(path)
    created = _finished_at(folder) or datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).isoformat(
        timespec="seconds")
    if isinstance(results, CompareResults):
        d = results.decision
        options = {o.name: {**{k: v for k, v in o.metrics.items() if v is not None}, "passed": o.passed}
                   for o in results.options}
        return RunEntry(
            run_id=results.run_id, folder=str(folder.resolve()), kind="compare", task=results.task.name,
            task_hash=results.task.hash, created=created, verdict=d.verdict, recommended=d.recommended,
            passed=d.passes_all_gates, metric=d.metric,
            summary={"options": options, "data": {k: v.sha256 for k, v in results.data.items()}})
    values = {f"{m}.{k}": v for m, r in results.result.metrics.items() for k, v in r.values.items() if v is not None}
    return RunEntry(
        run_id=folder.name, folder=str(folder.resolve()), kind="eval", task=eval_task(results), task_hash=None,
        created=created, verdict=None, recommended=None, passed=results.passed, metric=None,
        summary={"options": {eval_option(results): {**values, "passed": results.passed}}, "data": {}})


def eval_task(results: Any) -> str:
    """An eval run's "task": its suite's name."""
    return str(results.suite.get("name") or "suite")


def eval_option(results: Any) -> str:
    """An eval run is a run of one option: its model, or its predictions file."""
    source = results.source or {}
    return str(source.get("model") or source.get("predictions") or source.get("file") or "outputs")


def _finished_at(folder: Path) -> str | None:
    try:
        run = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return run.get("finished_at") if isinstance(run, dict) else None


def record_run(folder: str | Path, *, reports: str | Path | None = None, history: str | Path | None = None
               ) -> RunEntry:
    """Add (or replace) the entry of the finished run in ``folder``, in one transaction."""
    entry = entry_of(folder)
    path = history_path(reports if reports is not None else Path(folder).parent, history)
    with connect(path) as con:
        _write(con, entry)
    return entry


def remember_run(folder: Path) -> None:
    """Record a finished run (:func:`record_run`); a history that cannot take it is a warning, never an
    error: the run folder, the source of truth, is whole, and ``runs import`` indexes it later."""
    from ftharness import ui
    from ftharness.errors import FtharnessError

    try:
        record_run(folder)
    except (FtharnessError, OSError) as e:
        ui.warn(f"the run is not in the history: {e}; `ftharness runs import {Path(folder).parent}` adds it")


def log_to_trackers(folder: Path, trackers: dict[str, Any]) -> list[str]:
    """Log the finished run in ``folder`` to each of the task's trackers (``Tracker.log_run``); what one
    raises is a warning naming it (the run folder is whole, and can be logged again), never a failed run.
    Returns each tracker's line saying where the run went."""
    from ftharness import ui
    from ftharness.plugins import get_plugins

    if not trackers:
        return []
    results = json.loads((Path(folder) / "results.json").read_text(encoding="utf-8"))
    lines = []
    for name, settings in trackers.items():
        try:
            line = get_plugins().entry("trackers", name).obj.log_run(results, Path(folder), settings)
        except Exception as e:  # a tracker's server, disk or library: reported, the run stands
            ui.warn(f"tracker {name} could not log the run: {type(e).__name__}: {e}")
            continue
        ui.status(f"tracker {name}: {line}")
        lines.append(f"{name}: {line}")
    return lines


def earlier_runs(reports: str | Path, task: str, *, history: str | Path | None = None) -> list[RunEntry]:
    """The task's runs in the history beside ``reports`` (oldest first), for the report's trend; none when
    there is no history or it cannot be read (the report is drawn without the trend, with a warning)."""
    from ftharness import ui
    from ftharness.errors import FtharnessError

    path = history_path(reports, history)
    if not path.is_file():
        return []
    try:
        return list_runs(path, task=task)
    except FtharnessError as e:
        ui.warn(f"the report has no trend: {e}")
        return []


def _write(con: sqlite3.Connection, entry: RunEntry) -> None:
    con.execute("BEGIN IMMEDIATE")
    try:
        con.execute(
            "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (entry.run_id, entry.folder, entry.kind, entry.task, entry.task_hash, entry.created, entry.verdict,
             entry.recommended, int(entry.passed), entry.metric, json.dumps(entry.summary, sort_keys=True)))
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def import_runs(reports: str | Path, *, history: str | Path | None = None) -> tuple[list[RunEntry], dict[str, str]]:
    """Index every finished run folder under ``reports`` (each one transaction): (entries written,
    {folder: why it was skipped})."""
    reports = Path(reports)
    if not reports.is_dir():
        raise BadInput("not a folder of run folders", file=reports)
    done: list[RunEntry] = []
    skipped: dict[str, str] = {}
    with connect(history_path(reports, history)) as con:
        for folder in sorted(p for p in reports.iterdir() if p.is_dir()):
            try:
                entry = entry_of(folder)
            except BadInput as e:
                skipped[folder.name] = e.reason
                continue
            _write(con, entry)
            done.append(entry)
    return done, skipped


def list_runs(path: Path, *, task: str | None = None) -> list[RunEntry]:
    """The history's runs, oldest first (of ``task`` only, when given)."""
    with connect(path, create=False) as con:
        query = "SELECT * FROM runs" + (" WHERE task = ?" if task else "") + " ORDER BY created, run_id"
        rows = con.execute(query, (task,) if task else ()).fetchall()
    return [_entry(r) for r in rows]


def find_run(path: Path, run_id: str) -> RunEntry | None:
    """The run ``run_id`` in the history at ``path`` (None when the file or the run is not there)."""
    if not path.is_file():
        return None
    with connect(path, create=False) as con:
        row = con.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return _entry(row) if row else None


def _entry(row: tuple[Any, ...]) -> RunEntry:
    (run_id, folder, kind, task, task_hash, created, verdict, recommended, passed, metric, summary) = row
    return RunEntry(run_id, folder, kind, task, task_hash, created, verdict, recommended, bool(passed), metric,
                    json.loads(summary))
