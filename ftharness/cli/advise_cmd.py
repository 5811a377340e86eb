"""`ftharness advise`."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("advise", help="(not yet built)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ftharness.errors import BadInput

    raise BadInput("`ftharness advise` is not built yet")
