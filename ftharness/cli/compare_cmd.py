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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ftharness.cli.render import console, print_json
    from ftharness.cli.summary import print_summary
    from ftharness.compare.run import run_compare
    from ftharness.jsonrecord import to_json

    outcome = run_compare(args.task, out=args.out, run_id=args.run_id, resume=args.resume)
    if args.json:
        print_json(to_json(outcome.results))
    else:
        from ftharness.cli.advise_cmd import render
        from ftharness.report.advice import advice_for_results

        print_summary(outcome.results, str(outcome.report_path), console=console())
        render(advice_for_results(outcome.results, outcome.run.root / "results.json"), brief=True)
    return outcome.exit_code
