"""`ftharness plugins`: what is installed, where it came from, and what each plugin can do on this machine."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plugins", help="list installed plugins, what they provide, and whether they run here")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ftharness.plugins import get_plugins

    listed = get_plugins().describe()
    if args.json:
        from ftharness.cli.render import print_json

        print_json(listed)
        return 0
    from rich.markup import escape
    from rich.table import Table

    from ftharness.cli.render import console

    table = Table(title="ftharness plugins", title_justify="left")
    for col in ("plugin", "source", "provides", "here"):
        table.add_column(col)
    for p in listed:
        here = [f"[red]broken[/red]: {escape(e)}" for e in p["errors"]]
        here += [f"[yellow]{escape(n)}[/yellow]: {escape(why)}" for n, why in p["unavailable"].items()]
        here += [f"{escape(n)}: {escape(what)}" for n, what in p["replaced"].items()]
        table.add_row(p["name"], escape(_source(p["source"])), escape(_provides(p)) or "-",
                      "\n".join(here) or "[green]ready[/green]")
    console().print(table)
    return 0


def _source(source: dict[str, Any]) -> str:
    if source["origin"] == "entry point":
        return f"{source['distribution']} (entry point {source['entry_point']})"
    return source["origin"] if source["origin"] == "built-in" else f"code ({source['module']})"


def _provides(p: dict[str, Any]) -> str:
    """``trainers: peft (lora, qlora...)``: a trainer's methods, marked ``needs CUDA`` where declared."""
    parts = []
    for kind, names in p["provides"].items():
        shown = []
        for name in names:
            methods = p["methods"].get(name)
            if methods:
                cuda = [d["requires_cuda"] for d in methods.values()]
                listed = ", ".join(m + (" needs CUDA" if d["requires_cuda"] and not all(cuda) else "")
                                   for m, d in methods.items())
                name = f"{name} ({listed}{'; needs CUDA' if all(cuda) else ''})"
            shown.append(name)
        parts.append(f"{kind}: {', '.join(shown)}")
    return "; ".join(parts)
