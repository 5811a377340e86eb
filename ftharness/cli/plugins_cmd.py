"""`ftharness plugins`: what is installed and what each plugin can do on this machine."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plugins", help="list installed plugins, what they provide, and whether they run here")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ftharness.plugins import get_plugins

    infos = sorted(get_plugins().infos.values(), key=lambda i: (i.source != "built-in", i.name))
    if args.json:
        from ftharness.cli.render import print_json

        print_json([i.to_dict() for i in infos])
        return 0
    from rich.table import Table

    from ftharness.cli.render import console

    table = Table(title="ftharness plugins", title_justify="left")
    for col in ("plugin", "source", "provides", "here"):
        table.add_column(col)
    for info in infos:
        provides = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in info.provides.items()) or "-"
        if info.error:
            here = f"[red]broken[/red]: {info.error}"
        elif info.unavailable:
            here = "\n".join(f"[yellow]{n}[/yellow]: {why}" for n, why in info.unavailable.items())
        else:
            here = "[green]ready[/green]"
        table.add_row(info.name, info.source, provides, here)
    console().print(table)
    return 0
