"""`ftharness diff RUN_A RUN_B [--map A=B] [--fail-on-regression METRIC:THRESHOLD] [--json] [--junit FILE]`.

Run B against run A (run ids from the history, or run folders): options matched by name (or by `--map`),
eval rows matched by content, every per-example metric's paired difference B - A with its 95 % bootstrap
interval and sign-flip p-value, gates that changed state, a changed decision, changed settings. With
`--fail-on-regression task.field_accuracy:0.02` it exits 1 when the whole interval lies more than 0.02 on
the bad side; a difference inside the noise is reported as such, never as a regression. Exit codes: 0 no
regression, 1 a regression, 2 bad input (an unknown run, runs of different tasks without --map, no shared
row).
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("diff", help="run B against run A: paired differences with intervals, regressions for CI",
                       description=__doc__.split("\n\n")[1] if __doc__ else None)
    p.add_argument("run_a", help="the reference run (the one shipped): a run id or a run folder")
    p.add_argument("run_b", help="the run compared with it")
    p.add_argument("--map", action="append", default=[], metavar="A=B",
                   help="option A of run A corresponds to option B of run B (repeatable)")
    p.add_argument("--fail-on-regression", action="append", default=[], metavar="METRIC.VALUE:THRESHOLD",
                   help="exit 1 when B is worse than A on this metric by more than THRESHOLD, outside the noise")
    p.add_argument("--reports", default="reports", help="where run ids are looked up (default: reports/)")
    p.add_argument("--history", default=None, help="the history file (default: REPORTS/history.sqlite)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--junit", default=None, metavar="FILE", help="write a JUnit XML case per checked metric")
    p.add_argument("--html", default=None, metavar="FILE", help="write the diff as one HTML page")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ftharness.compare.diff import diff_runs, load_run, parse_map, parse_thresholds, resolve_run

    mapping, thresholds = parse_map(args.map), parse_thresholds(args.fail_on_regression)
    a = load_run(resolve_run(args.run_a, reports=args.reports, history=args.history))
    b = load_run(resolve_run(args.run_b, reports=args.reports, history=args.history))
    result = diff_runs(a, b, mapping=mapping, thresholds=thresholds)
    from ftharness.compare.diff import diff_html, diff_junit
    from ftharness.io import atomic_write_text

    for target, render in ((args.junit, diff_junit), (args.html, diff_html)):
        if target:
            atomic_write_text(target, render(result))
    if args.json:
        from ftharness.cli.render import print_json
        from ftharness.jsonrecord import to_json

        print_json(to_json(result))
    else:
        print_diff(result)
    return 1 if result.regressions else 0


def print_diff(result) -> None:  # noqa: ANN001 - a RunDiff
    from rich.markup import escape
    from rich.table import Table

    from ftharness.cli.render import console

    out = console()
    r = result.rows
    out.print(f"{escape(result.run_b)} against {escape(result.run_a)}: {r['shared']} eval rows paired, "
              f"{r['only_b']} added, {r['only_a']} dropped")
    table = Table(title="paired differences (B - A), 95 % bootstrap intervals", title_justify="left")
    for col in ("option", "metric", "A", "B", "B - A", "interval", "p", "verdict"):
        table.add_column(col)
    for m in result.metrics:
        c = m.comparison
        verdict = c.verdict if m.regression is None else ("REGRESSION" if m.regression else f"{c.verdict}, no regression")
        name = m.option_b if m.option_a == m.option_b else f"{m.option_a} -> {m.option_b}"
        table.add_row(escape(name), c.metric, f"{c.mean_reference:.3f}", f"{c.mean_option:.3f}", f"{c.diff:+.3f}",
                      f"[{c.ci_low:+.3f}, {c.ci_high:+.3f}]", f"{c.p_value:.3g}", verdict)
    out.print(table)
    for title, lines in (("gates that changed", result.gates_changed),
                         ("decision", [result.decision_changed] if result.decision_changed else []),
                         ("settings that changed", result.settings_changed),
                         ("regressions", result.regressions)):
        if lines:
            out.print(f"{title}:")
            for line in lines:
                out.print(f"  {escape(line)}")
    if not result.regressions:
        out.print("no regression" + (" past the thresholds checked" if any(m.regression is not None
                                                                            for m in result.metrics) else ""))
