"""``ftharness compare`` end to end: task -> run folder -> experiment -> statistics -> decision -> reports."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ftharness import faults
from ftharness.compare.backend import Backend, task_hash
from ftharness.compare.decision import decide
from ftharness.compare.experiment import Experiment, attempt
from ftharness.compare.stats import bootstrap_ci, paired_compare
from ftharness.compare.task import Task, load_task
from ftharness.errors import INTERNAL_ERROR, exit_code
from ftharness.io import read_jsonl
from ftharness.jsonrecord import from_json, to_json
from ftharness.report.history import earlier_runs, log_to_trackers, remember_run
from ftharness.report.records import Decision, Interval, OptionRecord, PairedComparison
from ftharness.report.results import CompareResults, Constraints, Settings, Timing, side_by_side, task_record
from ftharness.report.run_dir import RunDir, open_run
from ftharness.runlog import log_traceback, third_party_to_log

LOG_NAME = "run.log"


@dataclasses.dataclass
class CompareOutcome:
    results: CompareResults
    run: RunDir

    @property
    def exit_code(self) -> int:
        """0 when the recommended option passes every gate, 1 when nothing passes."""
        return 0 if self.results.decision.passes_all_gates else 1

    @property
    def report_path(self) -> Path:
        return self.run.root / "report.html"


def comparisons(
    options: list[OptionRecord], decision: Decision, spec: Any, seed: int
) -> tuple[list[PairedComparison], dict[str, Interval]]:
    """Each option against the best prompting baseline, paired, on the decision metric; and each option's
    own bootstrap interval of it (for the charts)."""
    metric = decision.metric
    ref = next((o for o in options if o.name == decision.best_baseline), None)
    if ref is None or metric not in ref.per_sample:
        return [], {}
    reference = ref.per_sample[metric]
    out, intervals = [], {}
    for o in options:
        scores = o.per_sample.get(metric)
        if not scores or len(scores) != len(reference):
            continue
        lo, hi = bootstrap_ci(scores, confidence=spec.confidence, n_resamples=spec.bootstrap_samples, seed=seed)
        intervals[o.name] = Interval(metric=metric, low=lo, high=hi, confidence=spec.confidence)
        if o is ref:
            continue
        out.append(
            paired_compare(
                scores,
                reference,
                option=o.name,
                reference=ref.name,
                metric=metric,
                higher_is_better=spec.higher_is_better,
                confidence=spec.confidence,
                n_resamples=spec.bootstrap_samples,
                seed=seed,
            )
        )
    return out, intervals


def run_compare(
    task_path: str | Path | None = None,
    *,
    out: str | Path = "reports",
    run_id: str | None = None,
    resume: bool = False,
    progress: bool = True,
    backend_factory: Callable[[Task], Any] | None = None,
) -> CompareOutcome:
    """Run the task in its run folder (``ftharness.report.run_dir``: new, or the unfinished one resumed),
    which this process holds locked until it returns. A run that ends in an exception (bad input found
    after the start, a crash, Ctrl-C) is marked failed in run.json with the reason and the exit code; the
    traceback of an internal error (``ftharness.errors.INTERNAL_ERROR``) is appended to its run.log."""
    started = time.time()
    task = load_task(task_path)
    thash = task_hash(task)
    run = open_run(
        out, task_name=task.name, task_hash=thash, task_file=str(task.file), run_id=run_id, resume=resume
    )
    try:
        outcome = _run(task, thash, run, started, progress, backend_factory)
    except BaseException as e:  # marked failed, with the reason; a rerun resumes or starts over
        log = None
        if exit_code(e) == INTERNAL_ERROR:
            log = str(log_traceback(run.root / LOG_NAME, e))
        run.fail(e, exit_code(e), log=log)
        raise
    finally:
        run.close()
    return outcome


def _run(
    task: Task,
    thash: str,
    run: RunDir,
    started: float,
    progress: bool,
    backend_factory: Callable[[Task], Any] | None,
) -> CompareOutcome:
    """The comparison in its (locked) run folder: experiment, statistics, decision, reports."""
    from ftharness.report.html import render_html
    from ftharness.report.junit import junit_xml

    backend = (backend_factory or Backend)(task)
    exp = Experiment(task, run, backend, progress=progress)
    with third_party_to_log(run.root / LOG_NAME):  # library warnings and bars: the log, not the terminal
        measured = exp.run()
    spec = task.spec.decision
    decision = decide(measured.options, spec, seed=task.spec.seed)
    comps, intervals = comparisons(measured.options, decision, spec, task.spec.seed)
    samples = {
        o.name: [r for r in read_jsonl(run.samples_file(o.name)) if r.get("key") == measured.keys[o.name]]
        for o in measured.options
    }
    unavailable: dict[str, str] = {}  # provenance that could not be read
    base_model = attempt(backend.base_model_record, "base model", unavailable)
    environment = attempt(backend.environment, "environment", unavailable) or {}
    constraints = _constraints(task, backend, unavailable)
    g = task.spec.generation
    settings = Settings(
        base_model=base_model,
        generation=dataclasses.asdict(g),
        seed=task.spec.seed,
        dtype="float32",
        batch_size=g.batch_size,
        prompt_template=attempt(backend.template_record, "prompt template", unavailable)
        if any(o.endpoint is None for o in measured.options) else None,  # every option answered by an endpoint
        baselines=[dataclasses.asdict(b) for b in task.spec.baselines],
        candidates=[o.spec for o in measured.options if o.kind == "candidate"],
        suites=list(task.spec.suites),
        resumed=run.resumed,
        validation=dataclasses.asdict(task.spec.validation),
        constrained_decoding=from_json(Constraints, constraints) if constraints else None,
        unavailable=unavailable,
    )
    timing = Timing(
        run_wall_s=time.time() - started,
        experiment_wall_s=measured.wall_s,
        events=measured.events,
        training_s={o.name: o.training.wall_s for o in measured.options if o.training is not None},
        generation_s={o.name: o.cost.generation_wall_s for o in measured.options},
        phases=measured.phases,
    )
    results = CompareResults(
        run_id=run.run_id,
        task=task_record(task, thash, base_model),
        settings=settings,
        environment=environment,
        data=measured.data,
        suites=measured.suites,
        options=measured.options,
        selection=measured.selection,
        comparisons=comps,
        intervals=intervals,
        decision=decision,
        samples=side_by_side([o.name for o in measured.options], samples, task.schema),
        timing=timing,
    )
    run.write_json("results.json", to_json(results))
    faults.reached("report")  # test hook (ftharness.faults)
    run.write("junit.xml", junit_xml(results))
    run.write("report.html", render_html(results, earlier_runs(run.root.parent, task.name)))
    run.finish()
    remember_run(run.root)
    log_to_trackers(run.root, task.trackers)
    return CompareOutcome(results=results, run=run)



def _constraints(task: Task, backend: Any, unavailable: dict[str, str]) -> dict[str, Any] | None:
    """What the schema-constrained options could and could not enforce (None when none is constrained)."""
    entries = [*task.spec.baselines, *task.candidates]
    if not any(getattr(e, "constrained", None) for e in entries) or not hasattr(backend, "constraint_record"):
        return None
    return attempt(backend.constraint_record, "constrained decoding", unavailable)
