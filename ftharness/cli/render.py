"""Shared terminal output: a rich console on stdout for results, one on stderr for progress."""

from __future__ import annotations

import json
import sys
from typing import Any


def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def print_json(data: Any) -> None:
    """The ``--json`` contract: one JSON document on stdout and nothing else there."""
    from ftharness.io import _json_default

    sys.stdout.write(json.dumps(data, indent=2, default=_json_default) + "\n")
    sys.stdout.flush()
