"""The ``ftharness`` command: parses arguments, calls the core, renders with rich.

Each subcommand is a module of this package with ``add_parser(subparsers)``, which sets
``func(args) -> int`` on its parser. Modules here import nothing heavy at the top: ``--help``,
``advise`` and ``plan`` must answer well under a second without torch. :func:`main` installs the
command's progress display (:func:`ftharness.cli.render.terminal_ui`) for the core to report through.

Exit codes (README): 0 success, 1 a gate failed, 2 bad input or usage, 3 environment problem, 4 internal
error (an uncaught exception: one line here, the traceback in the run's log or the cache's ``logs/``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from ftharness import __version__
from ftharness.errors import FtharnessError, exit_code, from_os_error

SUBCOMMANDS = ("advise", "plan", "compare", "eval", "train", "data", "plugins", "runs", "diff")


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit code 2 (argparse's own code, kept)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ftharness",
        description="Should we finetune this model, and how? Advise, plan, and measure it.",
    )
    parser.add_argument("--version", action="version", version=f"ftharness {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"ftharness.cli.{name.replace('-', '_')}_cmd")
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")  # the harness phones no one
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from ftharness import ui
    from ftharness.cli.render import terminal_ui

    try:
        with ui.installed(terminal_ui(args)):
            return int(args.func(args) or 0)
    except FtharnessError as e:
        sys.stderr.write(f"ftharness {args.command}: {e}\n")
        return e.exit_code
    except OSError as e:
        mapped = from_os_error(e)
        if mapped is None:
            _internal_error(args.command, e)
            return exit_code(e)
        sys.stderr.write(f"ftharness {args.command}: {mapped}\n")
        return mapped.exit_code
    except KeyboardInterrupt as e:
        sys.stderr.write("ftharness: interrupted; finished work is kept, run the same command to resume\n")
        return exit_code(e)
    except Exception as e:
        _internal_error(args.command, e)
        return exit_code(e)


def _internal_error(command: str, error: Exception) -> None:
    """One line on stderr saying what failed and where its traceback is (the run's log when the error
    happened in a run, else a new file in the cache's ``logs/``; stderr itself if no file can be written)."""
    from ftharness import runlog

    lines = str(error).strip().splitlines()
    what = type(error).__name__ + (f": {lines[0]}" if lines else "")
    log = runlog.traceback_log(error)
    if log is None:
        try:
            log = runlog.log_traceback(runlog.crash_log_file(), error)
        except OSError:
            import traceback

            traceback.print_exception(error, file=sys.stderr)
    where = f"the traceback is in {log}" if log else "the traceback is above"
    sys.stderr.write(f"ftharness {command}: internal error (a bug, not a verdict): {what}; {where}\n")
