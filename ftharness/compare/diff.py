"""Two runs side by side: is run B worse than run A, outside the noise?

``ftharness diff A B`` (run ids from the history, or run folders). Each option of A is matched with the
option of B of the same name (or the one ``--map a=b`` names); an ``eval`` run is a run of one option. Rows
are matched by content (the hash of each eval row's input and reference, :func:`row_keys`), so only the
rows both runs scored are paired, and the diff says how many rows were added and dropped. For every
per-example metric both options measured, the paired difference B - A comes with its 95 % bootstrap
interval and sign-flip p-value (:func:`ftharness.compare.stats.paired_compare`, the same statistics as the
in-run comparison); gates that changed state, a changed decision and changed settings (the option's spec,
the base model, the data's hashes, library versions) are listed beside it.

A regression is judged on the interval, never on the point estimate: ``--fail-on-regression
task.field_accuracy:0.02`` fails when the whole interval lies below -0.02 (above +0.02 for a metric whose
gate asks for low values); a difference whose interval reaches past the threshold is within the noise and
reported as such.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftharness.errors import BadInput
from ftharness.io import read_jsonl, sha256_json
from ftharness.jsonrecord import doc
from ftharness.report.records import PairedComparison


@dataclass(kw_only=True)
class OptionView:
    """One option of a run as a diff reads it."""

    name: str
    rows: list[str]  # each eval row's content key, in per_sample order
    per_sample: dict[str, list[float | None]]
    gates: dict[str, bool]  # "METRIC.VALUE OP THRESHOLD" -> passed
    lower_is_better: set[str]  # metrics a gate asks to keep low
    spec: dict[str, Any]


@dataclass(kw_only=True)
class RunView:
    """A run (compare or eval) as a diff reads it."""

    run_id: str
    folder: str
    kind: str
    task: str
    options: dict[str, OptionView]
    verdict: str | None
    recommended: str | None
    settings: dict[str, Any]  # what changed settings are read from: base model, data hashes, libraries
    # how its own comparisons were computed (a compare run's decision settings and seed): a diff pairs with
    # the same confidence, resamples and seed, so on identical rows it gives the in-run interval
    stats: dict[str, Any] = dataclasses.field(default_factory=lambda: {"confidence": 0.95, "n_resamples": 10_000,
                                                                         "seed": 0})


@dataclass(kw_only=True)
class MetricDiff:
    """One metric of one matched option pair, B against A on their shared rows."""

    option_a: str = doc("the option in run A")
    option_b: str = doc("the option in run B")
    comparison: PairedComparison = doc("B (option) against A (reference), paired on the shared rows")
    higher_is_better: bool = doc("the direction the metric improves in (low when its metric declares lower_is_better or a "
                                  "gate asks for low values)")
    regression: bool | None = doc(
        "checked metrics only: true when the whole interval lies past the threshold on the bad side; false when "
        "it does not (a difference inside the noise is never a regression); null: not checked",
        default=None)
    threshold: float | None = doc("the regression threshold it was checked against (null: not checked)",
                                  default=None)


@dataclass(kw_only=True)
class RunDiff:
    """``ftharness diff``'s result."""

    kind: str = doc("what wrote the document", default="ftharness-diff")
    run_a: str = doc("the earlier (reference) run: its id and folder")
    run_b: str = doc("the run compared with it")
    pairs: dict[str, str] = doc("option of A -> option of B")
    rows: dict[str, int] = doc("eval rows: shared (paired), only_a (dropped in B), only_b (added in B)")
    metrics: list[MetricDiff] = doc("every metric both options measured per example, paired")
    gates_changed: list[str] = doc("gates that passed in one run and not in the other, one line each")
    decision_changed: str | None = doc("the decision's change (verdict or recommended option), or null")
    settings_changed: list[str] = doc("settings that differ: option spec fields, base model, data hashes, "
                                      "library versions (one line each)")
    regressions: list[str] = doc("checked metrics that regressed past their threshold, one line each")


def row_keys(rows: list[dict[str, Any]]) -> list[str]:
    """Each eval row's content key (its input and reference); a repeated row gets its occurrence number."""
    seen: dict[str, int] = {}
    out = []
    for r in rows:
        base = sha256_json([r.get("input"), r.get("reference")])
        seen[base] = seen.get(base, 0) + 1
        out.append(f"{base}:{seen[base]}")
    return out


def load_run(folder: str | Path) -> RunView:
    """A run folder's results.json (and each option's samples, for its rows) as a :class:`RunView`."""
    from ftharness.report.history import eval_option, eval_task
    from ftharness.report.results import CompareResults, read_results

    folder = Path(folder)
    path = folder / "results.json"
    if not path.is_file():
        raise BadInput("no results.json: not a finished run folder", file=folder)
    results = read_results(path)
    if isinstance(results, CompareResults):
        options = {}
        for o in results.options:
            samples = folder / o.samples_file
            if not samples.is_file():
                raise BadInput("the option's samples are missing: its rows cannot be paired", file=samples)
            by_id = {int(r["id"]): r for r in read_jsonl(samples)}
            rows = [by_id.get(i, {"input": f"missing row {i}"}) for i in range(len(by_id))]
            options[o.name] = OptionView(name=o.name, rows=row_keys(rows), per_sample=o.per_sample,
                                         gates=_gates(o.gates), lower_is_better=_lower(o.gates), spec=o.spec)
        settings = {"base_model": (results.settings.base_model or {}).get("spec"),
                    "data": {k: v.sha256 for k, v in results.data.items()},
                    "libraries": results.environment.get("libraries", {})}
        decision = results.task.decision_settings
        stats = {"confidence": float(decision.get("confidence", 0.95)),
                 "n_resamples": int(decision.get("bootstrap_samples", 10_000)), "seed": int(results.settings.seed)}
        return RunView(run_id=results.run_id, folder=str(folder), kind="compare", task=results.task.name,
                       options=options, verdict=results.decision.verdict, recommended=results.decision.recommended,
                       settings=settings, stats=stats)
    name = eval_option(results)
    rows = [{"input": s.input, "reference": s.reference} for s in results.samples]
    option = OptionView(name=name, rows=row_keys(rows), per_sample=results.result.per_sample(),
                        gates=_gates(results.result.gates), lower_is_better=_lower(results.result.gates),
                        spec={"source": results.source, "generation": results.generation})
    return RunView(run_id=folder.name, folder=str(folder), kind="eval", task=eval_task(results),
                   options={name: option}, verdict=None, recommended=None,
                   settings={"source": results.source})


def _gates(gates: list[Any]) -> dict[str, bool]:
    return {f"{g.name} {g.op} {g.threshold:g}": g.passed for g in gates}


def _lower(gates: list[Any]) -> set[str]:
    return {g.name for g in gates if g.op in ("<", "<=")}


def declared_lower(value: str) -> bool:
    """Whether the metric plugin behind ``value`` (``METRIC.VALUE``) declares that it improves as it falls
    (``lower_is_better``; ``ftharness.hookspecs.Metric``). A metric not installed here declares nothing."""
    from ftharness.plugins import metrics

    name, _, rest = value.partition(".")
    metric = metrics().get(name)
    return rest in getattr(metric, "lower_is_better", ())


def parse_map(pairs: list[str]) -> dict[str, str]:
    """``--map a=b`` values as {a: b}; BadInput for one without ``=``."""
    out = {}
    for p in pairs:
        a, sep, b = p.partition("=")
        if not sep or not a or not b:
            raise BadInput(f"--map takes OPTION_A=OPTION_B, not {p!r}", field="--map")
        out[a] = b
    return out


def parse_thresholds(values: list[str]) -> dict[str, float]:
    """``--fail-on-regression METRIC.VALUE:THRESHOLD`` values as {metric: threshold}."""
    out = {}
    for v in values:
        metric, sep, number = v.rpartition(":")
        try:
            threshold = float(number)
        except ValueError:
            threshold = -1.0
        if not sep or not metric or not threshold >= 0:
            raise BadInput(f"--fail-on-regression takes METRIC.VALUE:THRESHOLD (a number >= 0), not {v!r}",
                           field="--fail-on-regression")
        out[metric] = threshold
    return out


def check_thresholds(run: RunView, thresholds: dict[str, float]) -> None:
    """BadInput when a metric ``--fail-on-regression`` names is measured per example by no option of ``run``."""
    measured = sorted({m for o in run.options.values() for m in o.per_sample})
    missing = sorted(set(thresholds) - set(measured))
    if missing:
        raise BadInput(f"--fail-on-regression names {', '.join(missing)}, which no option of run {run.run_id} "
                       f"measures per example; measured: {', '.join(measured) or 'nothing'}",
                       field="--fail-on-regression")


def match_options(a: RunView, b: RunView, mapping: dict[str, str]) -> dict[str, str]:
    """Option of A -> option of B: by name, or as ``mapping`` says. BadInput for runs of different tasks
    with no mapping, a mapping naming an option a run lacks, or no option in common."""
    if mapping:
        for x, y in mapping.items():
            if x not in a.options:
                raise BadInput(f"run {a.run_id} has no option {x!r} (options: {', '.join(a.options)})", field="--map")
            if y not in b.options:
                raise BadInput(f"run {b.run_id} has no option {y!r} (options: {', '.join(b.options)})", field="--map")
        return dict(mapping)
    if a.task != b.task and not (len(a.options) == 1 and len(b.options) == 1 and a.kind == b.kind == "eval"):
        raise BadInput(f"runs of different tasks ({a.task!r} and {b.task!r}): say which options correspond with "
                       "--map OPTION_A=OPTION_B", field="--map")
    if a.kind == b.kind == "eval":
        return {next(iter(a.options)): next(iter(b.options))}
    pairs = {n: n for n in a.options if n in b.options}
    if not pairs:
        raise BadInput(f"runs {a.run_id} and {b.run_id} share no option name: map them with --map OPTION_A=OPTION_B",
                       field="--map")
    return pairs


def diff_runs(a: RunView, b: RunView, *, mapping: dict[str, str] | None = None,
              thresholds: dict[str, float] | None = None) -> RunDiff:
    """Run B against run A (see the module's contract), with run A's confidence, resamples and seed."""
    from ftharness.compare.stats import paired_compare

    thresholds = thresholds or {}
    pairs = match_options(a, b, mapping or {})
    metrics: list[MetricDiff] = []
    shared_total: set[str] = set()
    only_a: set[str] = set()
    only_b: set[str] = set()
    checked: set[str] = set()
    for name_a, name_b in pairs.items():
        oa, ob = a.options[name_a], b.options[name_b]
        index_b = {k: i for i, k in enumerate(ob.rows)}
        shared = [(i, index_b[k]) for i, k in enumerate(oa.rows) if k in index_b]
        shared_total |= {oa.rows[i] for i, _ in shared}
        only_a |= set(oa.rows) - set(ob.rows)
        only_b |= set(ob.rows) - set(oa.rows)
        for metric in sorted(set(oa.per_sample) & set(ob.per_sample)):
            va, vb = oa.per_sample[metric], ob.per_sample[metric]
            paired = [(va[i], vb[j]) for i, j in shared
                      if i < len(va) and j < len(vb) and va[i] is not None and vb[j] is not None]
            if not paired:
                continue
            higher = metric not in (oa.lower_is_better | ob.lower_is_better) and not declared_lower(metric)
            comparison = paired_compare([y for _, y in paired], [x for x, _ in paired], option=f"{b.run_id}:{name_b}",
                                        reference=f"{a.run_id}:{name_a}", metric=metric, higher_is_better=higher,
                                        **a.stats)
            row = MetricDiff(option_a=name_a, option_b=name_b, comparison=comparison, higher_is_better=higher)
            if metric in thresholds:
                checked.add(metric)
                t = thresholds[metric]
                bad = comparison.ci_high < -t if higher else comparison.ci_low > t
                row = dataclasses.replace(row, regression=bad, threshold=t)
            metrics.append(row)
    if not shared_total:
        raise BadInput(f"runs {a.run_id} and {b.run_id} share no eval row (rows are matched by their input and "
                       "reference): there is nothing to pair")
    missing = sorted(set(thresholds) - checked)
    if missing:
        measured = sorted({m.comparison.metric for m in metrics})
        raise BadInput(f"--fail-on-regression names {', '.join(missing)}, which no paired option measures per "
                       f"example; measured: {', '.join(measured) or 'nothing'}", field="--fail-on-regression")
    return RunDiff(
        run_a=f"{a.run_id} ({a.folder})", run_b=f"{b.run_id} ({b.folder})", pairs=pairs,
        rows={"shared": len(shared_total), "only_a": len(only_a), "only_b": len(only_b)},
        metrics=metrics,
        gates_changed=_gates_changed(a, b, pairs),
        decision_changed=_decision_changed(a, b),
        settings_changed=_settings_changed(a, b, pairs),
        regressions=[f"{m.option_b} {m.comparison.metric}: {m.comparison.diff:+.3f} [{m.comparison.ci_low:+.3f}, "
                     f"{m.comparison.ci_high:+.3f}] past -{m.threshold:g}" if m.higher_is_better else
                     f"{m.option_b} {m.comparison.metric}: {m.comparison.diff:+.3f} [{m.comparison.ci_low:+.3f}, "
                     f"{m.comparison.ci_high:+.3f}] past +{m.threshold:g}"
                     for m in metrics if m.regression],
    )


def _gates_changed(a: RunView, b: RunView, pairs: dict[str, str]) -> list[str]:
    out = []
    for name_a, name_b in pairs.items():
        ga, gb = a.options[name_a].gates, b.options[name_b].gates
        for gate in sorted(set(ga) | set(gb)):
            before, after = ga.get(gate), gb.get(gate)
            if before != after:
                word = {True: "passed", False: "failed", None: "not checked"}
                out.append(f"{name_b}: {gate}: {word[before]} -> {word[after]}")
    return out


def _decision_changed(a: RunView, b: RunView) -> str | None:
    if (a.verdict, a.recommended) == (b.verdict, b.recommended):
        return None
    return f"{a.verdict} ({a.recommended or 'nothing'}) -> {b.verdict} ({b.recommended or 'nothing'})"


def _settings_changed(a: RunView, b: RunView, pairs: dict[str, str]) -> list[str]:
    out = []
    for name_a, name_b in pairs.items():
        out += [f"{name_b}: {k}: {x!r} -> {y!r}" for k, x, y in _changes(a.options[name_a].spec, b.options[name_b].spec)]
    out += [f"{k}: {x!r} -> {y!r}" for k, x, y in _changes(a.settings, b.settings)]
    return out


def _changes(x: Any, y: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, before, after) for every leaf that differs between two JSON-like values."""
    if isinstance(x, dict) and isinstance(y, dict):
        out = []
        for k in sorted(set(x) | set(y), key=str):
            out += _changes(x.get(k), y.get(k), f"{prefix}{k}.")
        return out
    return [] if x == y else [(prefix.rstrip("."), x, y)]


def resolve_run(ref: str, *, reports: str | Path = "reports", history: str | Path | None = None) -> Path:
    """A run's folder from a folder path or a run id (the history first, then ``REPORTS/ID``); BadInput
    naming it when it is neither."""
    from ftharness.report.history import find_run, history_path

    path = Path(ref)
    if (path / "results.json").is_file():
        return path
    entry = find_run(history_path(reports, history), ref)
    if entry is not None:
        return Path(entry.folder)
    if (Path(reports) / ref / "results.json").is_file():
        return Path(reports) / ref
    raise BadInput(f"unknown run {ref!r}: not a run folder, and neither the history nor {reports}/ has it "
                   "(`ftharness runs` lists the runs)")


def diff_junit(result: RunDiff) -> str:
    """A JUnit XML case per checked metric (a failure when it regressed), as CI systems read them."""
    import xml.etree.ElementTree as ET

    checked = [m for m in result.metrics if m.regression is not None]
    root = ET.Element("testsuites", name=f"ftharness diff {result.run_a} {result.run_b}", tests=str(len(checked)),
                      failures=str(sum(1 for m in checked if m.regression)))
    suite = ET.SubElement(root, "testsuite", name="regressions", tests=str(len(checked)),
                          failures=str(sum(1 for m in checked if m.regression)), errors="0", skipped="0")
    for m in checked:
        c = m.comparison
        case = ET.SubElement(suite, "testcase", classname=m.option_b, name=f"{c.metric} regression <= {m.threshold:g}")
        text = f"B - A = {c.diff:+.4f}, 95 % interval [{c.ci_low:+.4f}, {c.ci_high:+.4f}], p = {c.p_value:.3g}, n = {c.n}"
        if m.regression:
            ET.SubElement(case, "failure", message=text, type="Regression")
        else:
            ET.SubElement(case, "system-out").text = text
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def diff_html(result: RunDiff) -> str:
    """The diff as one self-contained HTML page (no script, no network)."""
    from ftharness.report.html import templates

    confidence = result.metrics[0].comparison.confidence if result.metrics else 0.95
    return templates().get_template("diff.html.j2").render(d=result, confidence=confidence,
                                                   checked=any(m.regression is not None for m in result.metrics))
