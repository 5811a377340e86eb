"""``ftharness compare`` end to end: task -> run folder -> experiment -> statistics -> decision -> reports."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ftharness.compare.decision import decide
from ftharness.compare.experiment import Backend, Experiment, task_hash
from ftharness.compare.stats import bootstrap_ci, paired_compare
from ftharness.compare.task import Task, load_task
from ftharness.io import atomic_write_json, read_jsonl
from ftharness.report.run_dir import RunDir, open_run
from ftharness.runlog import third_party_to_log

LOG_NAME = "run.log"


@dataclasses.dataclass
class CompareOutcome:
    results: dict[str, Any]
    run: RunDir

    @property
    def exit_code(self) -> int:
        """0 when the recommended option passes every gate, 1 when nothing passes."""
        return 0 if (self.results.get("decision") or {}).get("passes_all_gates") else 1

    @property
    def report_path(self) -> Path:
        return self.run.root / "report.html"


def comparisons(options: list[dict[str, Any]], decision: dict[str, Any], spec: Any, seed: int) -> list[dict]:
    """Each option against the best prompting baseline, paired, on the decision metric; each row also
    carries the option's own bootstrap interval for the charts."""
    metric, best = decision["metric"], decision.get("best_baseline")
    ref = next((o for o in options if o["name"] == best), None)
    out = []
    if ref is None or metric not in (ref.get("per_sample") or {}):
        return out
    for o in options:
        scores = (o.get("per_sample") or {}).get(metric)
        if o is ref or not scores or len(scores) != len(ref["per_sample"][metric]):
            continue
        c = paired_compare(
            scores,
            ref["per_sample"][metric],
            option=o["name"],
            reference=ref["name"],
            metric=metric,
            higher_is_better=spec.higher_is_better,
            confidence=spec.confidence,
            n_resamples=spec.bootstrap_samples,
            seed=seed,
        ).to_dict()
        c["option_ci_low"], c["option_ci_high"] = bootstrap_ci(
            scores, confidence=spec.confidence, n_resamples=spec.bootstrap_samples, seed=seed
        )
        out.append(c)
    lo, hi = bootstrap_ci(
        ref["per_sample"][metric], confidence=spec.confidence, n_resamples=spec.bootstrap_samples, seed=seed
    )
    out.append(
        {
            "option": ref["name"],
            "reference": ref["name"],
            "metric": metric,
            "n": len(ref["per_sample"][metric]),
            "diff": 0.0,
            "ci_low": 0.0,
            "ci_high": 0.0,
            "p_value": 1.0,
            "verdict": "reference",
            "confidence": spec.confidence,
            "method": "reference",
            "option_ci_low": lo,
            "option_ci_high": hi,
        }
    )
    return out


def run_compare(
    task_path: str | Path | None = None,
    *,
    out: str | Path = "reports",
    run_id: str | None = None,
    resume: bool = False,
    progress: bool = True,
    backend_factory: Callable[[Task], Any] | None = None,
) -> CompareOutcome:
    from ftharness.report.html import render_html
    from ftharness.report.junit import junit_xml
    from ftharness.report.results import assemble

    started = time.time()
    task = load_task(task_path)
    thash = task_hash(task)
    run = open_run(
        out, task_name=task.name, task_hash=thash, task_file=str(task.file), run_id=run_id, resume=resume
    )
    backend = (backend_factory or Backend)(task)
    exp = Experiment(task, run, backend, progress=progress)
    with third_party_to_log(run.root / LOG_NAME):  # library warnings and bars: the log, not the terminal
        measured = exp.run()
    spec = task.spec.decision
    decision = decide(measured["options"], spec, seed=task.spec.seed)
    comps = comparisons(measured["options"], decision, spec, task.spec.seed)
    samples = {
        o["name"]: [
            r for r in read_jsonl(run.samples_file(o["name"])) if r.get("key") == measured["keys"][o["name"]]
        ]
        for o in measured["options"]
    }
    g = task.spec.generation
    settings = {
        "base_model": _safe(backend.base_model_record) if hasattr(backend, "base_model_record") else None,
        "generation": dataclasses.asdict(g),
        "seed": task.spec.seed,
        "dtype": "float32",
        "batch_size": g.batch_size,
        "prompt_template": _safe(backend.template_record),
        "baselines": [dataclasses.asdict(b) for b in task.spec.baselines],
        "candidates": [o["spec"] for o in measured["options"] if o["kind"] == "candidate"],
        "suites": list(task.spec.suites),
        "resumed": run.resumed,
        "validation": dataclasses.asdict(task.spec.validation),
        "constrained_decoding": _constraints(task, backend),
    }
    timing = {
        "run_wall_s": time.time() - started,
        "experiment_wall_s": measured["wall_s"],
        "events": measured["events"],
        "training_s": {
            o["name"]: (o.get("training") or {}).get("wall_s")
            for o in measured["options"]
            if o.get("training")
        },
        "generation_s": {
            o["name"]: (o.get("cost") or {}).get("generation_wall_s") for o in measured["options"]
        },
        "phases": measured.get("phases", []),
    }
    results = assemble(
        run_id=run.run_id,
        task=task,
        experiment=measured,
        comparisons=comps,
        decision=decision,
        samples=samples,
        settings=settings,
        environment=_safe(backend.environment) or {},
        timing=timing,
        task_hash=thash,
    )
    atomic_write_json(run.root / "results.json", results)
    run.write("junit.xml", junit_xml(results))
    run.write("report.html", render_html(results))
    run.finish()
    return CompareOutcome(results=results, run=run)


def _constraints(task: Task, backend: Any) -> dict[str, Any] | None:
    """What the schema-constrained options could and could not enforce (None when none is constrained)."""
    entries = [*task.spec.baselines, *task.candidates]
    if not any(getattr(e, "constrained", None) for e in entries) or not hasattr(backend, "constraint_record"):
        return None
    return _safe(backend.constraint_record)


def _safe(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as e:  # provenance that cannot be read is recorded as such
        return {"error": f"{type(e).__name__}: {e}"}
