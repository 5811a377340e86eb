"""`ftharness compare [TASK.yaml] [--run-id ID | --resume] [--out reports/] [--json]`.

Runs every prompting baseline and trained candidate of a task through the same suites and gates, and
decides. With no task file it runs the bundled example (examples/extraction/task.yaml). Running the same
command again resumes the task's unfinished (interrupted or failed) run. One process works in a run at a
time: if another process holds the run, this one exits 2 naming it (pid, since when, command) instead of
waiting. Exit codes: 0 the recommended option passes every gate, 1 nothing passes, 2 bad input or a run in
use, 3 environment problem, 4 internal error (the traceback is in the run's run.log).
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="finetune vs prompting on your data: baselines + candidates, suites, gates, decision, report",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument(
        "task", nargs="?", default=None, help="task file (default: the bundled extraction example)"
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--run-id", default=None, help="name of the run folder under --out (resumed if unfinished)"
    )
    group.add_argument(
        "--resume",
        action="store_true",
        help="resume the newest unfinished run of this task (an error if there is none)",
    )
    p.add_argument("--out", default="reports", help="where run folders go (default: reports/)")
    p.add_argument("--json", action="store_true", help="print results.json on stdout and nothing else there")
    p.add_argument("--no-progress", action="store_true", help="no progress bars or status lines on stderr")
    p.add_argument("--against", default=None, metavar="RUN",
                   help="then diff this run against RUN (a run id under --out, or a run folder: the one shipped); "
                        "the diff is written to the run folder as diff.json, diff.xml and diff.html")
    p.add_argument("--fail-on-regression", action="append", default=[], metavar="METRIC.VALUE:THRESHOLD",
                   help="with --against: exit 1 when this run is worse than RUN on the metric by more than "
                        "THRESHOLD, outside the noise (repeatable)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ftharness.cli.render import console, print_json
    from ftharness.cli.summary import print_summary
    from ftharness.compare.run import run_compare
    from ftharness.jsonrecord import to_json

    if args.fail_on_regression and not args.against:
        from ftharness.errors import BadInput

        raise BadInput("--fail-on-regression compares with an earlier run: name it with --against RUN",
                       field="--fail-on-regression")
    against = _against(args) if args.against else None  # a bad reference is found before any work
    outcome = run_compare(args.task, out=args.out, run_id=args.run_id, resume=args.resume)
    regressed = against(outcome.run.root) if against else False
    if args.json:
        print_json(to_json(outcome.results))
    else:
        from ftharness.cli.advise_cmd import render
        from ftharness.report.advice import advice_for_results

        print_summary(outcome.results, str(outcome.report_path), console=console())
        render(advice_for_results(outcome.results, outcome.run.root / "results.json"), brief=True)
    return max(outcome.exit_code, 1 if regressed else 0)


def _against(args: argparse.Namespace):  # noqa: ANN202 - returns the step to run once the comparison is done
    """Check ``--against`` and ``--fail-on-regression`` now; return the diff to make after the run: it writes
    diff.json, diff.xml and diff.html into the new run's folder, prints the diff (not with --json) and says whether it
    found a regression."""
    from ftharness.compare.diff import (
        check_thresholds,
        diff_html,
        diff_junit,
        diff_runs,
        load_run,
        parse_thresholds,
        resolve_run,
    )
    from ftharness.io import atomic_write_text, json_text
    from ftharness.jsonrecord import to_json

    thresholds = parse_thresholds(args.fail_on_regression)
    reference = load_run(resolve_run(args.against, reports=args.out))
    check_thresholds(reference, thresholds)

    def step(folder) -> bool:  # noqa: ANN001 - the new run's folder
        result = diff_runs(reference, load_run(folder), thresholds=thresholds)
        atomic_write_text(folder / "diff.json", json_text(to_json(result)))
        atomic_write_text(folder / "diff.xml", diff_junit(result))
        atomic_write_text(folder / "diff.html", diff_html(result))
        if not args.json:
            from ftharness.cli.diff_cmd import print_diff

            print_diff(result)
        return bool(result.regressions)

    return step
