"""Advice from evidence: a run's results.json read as the advisor's measured facts.

``ftharness advise --from-run`` and the end of every ``ftharness compare`` call :func:`advice_for_run`: the
run's figures (:class:`~ftharness.advisor.measured.Measured`) replace the scenario's assumptions where they
exist, and the advice names the run and separates measured from assumed facts. This module only translates
the report's records into those plain figures; what they mean for the advice is decided in
:mod:`ftharness.advisor`.

A candidate's task-file entry (:attr:`~ftharness.advisor.measured.MeasuredOption.entry`, what the advice's
candidate blocks derive from) is its option spec as results.json records it, less what the run added to it
(its data kind, which its method implies, and the task's seed) and less every field left at its default, so
the entry reads as the task file would write it.
"""

from __future__ import annotations

from pathlib import Path
from statistics import stdev

from ftharness.advisor import Advice, Scenario, advise
from ftharness.advisor.measured import Measured, MeasuredComparison, MeasuredOption
from ftharness.errors import BadInput
from ftharness.report.records import OptionRecord
from ftharness.report.results import CompareResults, read_results


def results_path(source: str | Path) -> Path:
    """The results.json a ``--from-run`` value names: the file itself, or a run folder holding it."""
    path = Path(source)
    if path.is_dir():
        path = path / "results.json"
        if not path.exists():
            raise BadInput("no results.json in this folder; pass a run folder under reports/ or its "
                           "results.json", file=source)
    return path


def load_run(source: str | Path) -> tuple[CompareResults, Path]:
    """The comparison results a ``--from-run`` value names (BadInput for anything else)."""
    path = results_path(source)
    results = read_results(path)
    if not isinstance(results, CompareResults):
        raise BadInput("this results.json was written by `ftharness eval`; advice reads a `ftharness compare` "
                       "run", file=path)
    return results, path


def measured_from_results(results: CompareResults, source: str | Path) -> Measured:
    """The figures of one run that the advice reads."""
    d = results.decision
    metric = d.metric
    higher = bool(results.task.decision_settings.get("higher_is_better", True))
    c = d.comparison
    comparison = None
    if c is not None:
        comparison = MeasuredComparison(
            option=c.option, reference=c.reference, n=c.n, diff=c.diff, ci_low=c.ci_low, ci_high=c.ci_high,
            confidence=c.confidence, verdict=c.verdict,
            sd=_paired_sd(results, c.option, c.reference, metric))
    data = results.data
    train = data.get("train")
    validation = data.get("validation")
    trained_on = validation.trained_on if validation is not None and validation.trained_on else None
    preference = data.get("preference")
    return Measured(
        run_id=results.run_id,
        source=str(source),
        metric=metric,
        higher_is_better=higher,
        target=_target(results.task.gates, metric),
        verdict=d.verdict,
        recommended=d.recommended,
        best_baseline=d.best_baseline,
        options=tuple(_option(o, results) for o in results.options),
        comparison=comparison,
        train_examples=trained_on or (train.n if train is not None else None),
        preference_pairs=preference.n if preference is not None else None,
        has_schema=results.task.schema is not None,
        requests_per_month=int(results.task.decision_settings.get("requests_per_month") or 0),
        usd_per_prompt_token=next(iter(d.costs.values())).usd_per_prompt_token if d.costs else 0.0,
        model=_planner_model(results.task.base_model),
        task_file=results.task.file or None,
    )


def advice_for_run(source: str | Path, scenario: Scenario | None = None) -> Advice:
    """``advise --from-run``: the advice for ``scenario`` (empty by default) with the run's measurements."""
    results, path = load_run(source)
    return advise(scenario or Scenario(), measured_from_results(results, path))


def advice_for_results(results: CompareResults, path: str | Path) -> Advice:
    """The advice a finished comparison reports: its measurements and nothing assumed beyond them."""
    return advise(Scenario(), measured_from_results(results, path))


def _option(o: OptionRecord, results: CompareResults) -> MeasuredOption:
    cost = results.decision.costs.get(o.name)
    failed = [g for g in o.gates if not g.passed]
    spec = o.spec
    return MeasuredOption(
        name=o.name,
        kind=o.kind,
        score=o.metrics.get(results.decision.metric),
        passed=o.passed,
        failed=tuple(g.message for g in failed),
        failed_suites=tuple(g.suite or "task" for g in failed),
        prompt_tokens_mean=cost.prompt_tokens_mean if cost is not None else o.cost.prompt_tokens_mean,
        usd_per_request=(cost.usd_per_1k_requests / 1000
                         if cost is not None and cost.usd_per_1k_requests is not None else None),
        training_s=cost.training_s if cost is not None else 0.0,
        training_usd=cost.training_usd if cost is not None else 0.0,
        # an endpoint baseline prompts as its `shots:` kind says (few-shot, retrieved...)
        prompting=(spec.get("shots") if spec.get("kind") == "endpoint" else spec.get("kind"))
        if o.kind == "baseline" else None,
        method=spec.get("method") if o.kind == "candidate" else None,
        hyperparameters=dict(spec.get("hyperparameters") or {}),
        still_improving=_still_improving(o),
        answer=o.answer,
        entry=_entry(spec, results.settings.seed) if o.kind == "candidate" else {},
        data=spec.get("data") if o.kind == "candidate" else None,
    )


# Candidate fields at their task-file default: an entry leaves them out.
ENTRY_DEFAULTS: dict[str, object] = {"prompt": "instruction", "sweep_strategy": "grid"}


def _entry(spec: dict, task_seed: int) -> dict:
    """A candidate's option spec as the task file writes the candidate (see the module's docstring)."""
    out: dict = {}
    for key, value in spec.items():
        if key == "data" and value == _method_data(spec):
            continue
        if key == "seed" and value == task_seed:
            continue
        if isinstance(value, dict) and key != "hyperparameters":  # retrieval, replay: their unset fields
            value = {k: v for k, v in value.items() if v is not None and v != {} and v != []}
        if value is None or value == {} or value == [] or ENTRY_DEFAULTS.get(key, ...) == value:
            continue
        out[key] = value
    return out


def _method_data(spec: dict) -> str | None:
    """The data kind the candidate's method trains on unless ``data:`` says otherwise (None: its trainer is not
    installed here, so ``data`` stays in the entry as recorded)."""
    from ftharness.plugins import get_plugins

    try:
        declared = get_plugins().training_method(str(spec.get("trainer")), str(spec.get("method"))).data
    except BadInput:
        return None
    return {"preference": "preference", "corpus": "corpus"}.get(declared, "train")


def _still_improving(o: OptionRecord) -> bool | None:
    """The validation loss was lowest at the last evaluation (None: not evaluated twice)."""
    if o.training is None:
        return None
    losses = [row["eval_loss"] for row in o.training.loss_curve if row.get("eval_loss") is not None]
    if len(losses) < 2:
        return None
    return losses[-1] <= min(losses)


def _paired_sd(results: CompareResults, option: str, reference: str, metric: str) -> float | None:
    by_name = {o.name: o for o in results.options}
    a = by_name[option].per_sample.get(metric) if option in by_name else None
    b = by_name[reference].per_sample.get(metric) if reference in by_name else None
    if not a or not b or len(a) != len(b):
        return None
    diffs = [x - y for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    return stdev(diffs) if len(diffs) >= 2 else None


def _target(gates: list[str], metric: str) -> float | None:
    """The threshold of the task's own gate on the decision metric (gates are written METRIC.VALUE OP X)."""
    from ftharness.suites.gates import parse_gate

    for text in gates:
        name, _, expr = text.partition(" ")
        try:
            gate = parse_gate(name, expr)
        except BadInput:
            continue
        if gate.name == metric and gate.op in (">=", ">", "<=", "<"):
            return gate.threshold
    return None


def _planner_model(base_model: dict | None) -> str | None:
    """The run's base model as the planner can read it: the config.json of the folder it was loaded from
    (when it is still there), else a planner preset of the same name."""
    if not base_model:
        return None
    folder = base_model.get("path")
    if folder and (Path(folder) / "config.json").exists():
        return str(Path(folder) / "config.json")
    from ftharness.advisor import planning

    name = str(base_model.get("spec") or "")
    try:
        return planning.check_model(name)
    except BadInput:
        return None
