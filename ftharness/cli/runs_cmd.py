"""`ftharness runs [--task NAME] [--json]` and `ftharness runs import REPORTS`: the run history.

Every finished `compare` and `eval` run is recorded in an SQLite file beside the run folders
(`REPORTS/history.sqlite`; `--history` or `FTHARNESS_HISTORY` names another). `runs` lists them, oldest
first; `runs import REPORTS` indexes run folders written before the history existed, or rebuilds a lost or
damaged history from them (the folders are the source of truth).
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help="the run history: list finished runs, or index run folders into it",
                       description=__doc__.split("\n\n")[1] if __doc__ else None)
    p.add_argument("action", nargs="?", choices=("list", "import"), default="list",
                   help="list (default) the history's runs, or import run folders into it")
    p.add_argument("folder", nargs="?", default=None, help="import: the folder of run folders (default: --reports)")
    p.add_argument("--reports", default="reports", help="the folder of run folders (default: reports/)")
    p.add_argument("--history", default=None, help="the history file (default: REPORTS/history.sqlite)")
    p.add_argument("--task", default=None, help="list: only the runs of this task")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ftharness.cli.render import console, print_json
    from ftharness.errors import BadInput
    from ftharness.report.history import history_path, import_runs, list_runs

    if args.action == "import":
        reports = args.folder or args.reports
        done, skipped = import_runs(reports, history=args.history)
        if args.json:
            print_json({"imported": [e.run_id for e in done], "skipped": skipped})
        else:
            out = console()
            out.print(f"indexed {len(done)} run(s) into {history_path(reports, args.history)}", markup=False)
            for name, why in skipped.items():
                out.print(f"  skipped {name}: {why}", markup=False)
        return 0
    if args.folder is not None:
        raise BadInput("a folder is for `runs import`; `runs` lists the history (--reports, --history)",
                       field="folder")
    entries = list_runs(history_path(args.reports, args.history), task=args.task)
    if args.json:
        print_json([e.to_dict() for e in entries])
        return 0
    from rich.table import Table

    table = Table(title=f"runs{f' of {args.task}' if args.task else ''}", title_justify="left")
    for col in ("run", "kind", "task", "finished", "decision", "metric", "gates"):
        table.add_column(col)
    for e in entries:
        value = e.summary["options"].get(e.recommended or "", {}).get(e.metric or "") if e.metric else None
        decision = f"{e.verdict} ({e.recommended})" if e.recommended else (e.verdict or "-")
        table.add_row(e.run_id, e.kind, e.task, e.created, decision,
                      f"{e.metric} {value:.3f}" if isinstance(value, int | float) else "-",
                      "pass" if e.passed else "FAIL")
    console().print(table)
    return 0
