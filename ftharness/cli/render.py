"""Shared terminal output: a rich console on stdout for results, and the progress display on stderr.

:func:`terminal_ui` chooses how the core's status lines, progress steps and warnings (:mod:`ftharness.ui`)
are shown for one command; :class:`RichUI` is the rich one. It is the only place where core text meets
rich: every message, label and note is printed as text, never read as markup, so a path such as
``runs/[draft]/model`` appears as written.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Any

from ftharness import ui


def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def print_json(data: Any) -> None:
    """The ``--json`` contract: one JSON document on stdout and nothing else there."""
    from ftharness.io import _json_default

    sys.stdout.write(json.dumps(data, indent=2, default=_json_default) + "\n")
    sys.stdout.flush()


def terminal_ui(args: argparse.Namespace) -> ui.UI:
    """Silent for ``--json`` and ``--no-progress``; rich when stderr is a terminal; plain lines otherwise."""
    if getattr(args, "json", False) or getattr(args, "no_progress", False):
        return ui.Silent()
    err = console(stderr=True)
    return RichUI(err) if err.is_terminal else ui.Plain()


class RichUI:
    """:mod:`ftharness.ui` on an interactive stderr: dim status lines, live bars, yellow warnings.

    One live display holds every open step, so steps nest (a suite's scoring inside a comparison); it
    stops when the last open step ends, leaving the finished bars on screen as the run's log.
    """

    def __init__(self, err: Any) -> None:
        self.console = err
        self._bars: Any = None
        self._open = 0

    def status(self, message: str) -> None:
        from rich.text import Text

        self.console.print(Text(message, style="dim"))

    def warn(self, message: str) -> None:
        from rich.text import Text

        self.console.print(Text(f"warning: {message}", style="yellow"))

    @contextlib.contextmanager
    def progress(self, label: str, total: int | None, *, completed: int = 0) -> Iterator[ui.Step]:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        if self._bars is None:
            self._bars = Progress(
                TextColumn("{task.description}", markup=False),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[note]}", markup=False),
                TimeElapsedColumn(),
                console=self.console,
            )
            self._bars.start()
        bars = self._bars
        task = bars.add_task(label, total=total, completed=completed, note="")
        self._open += 1
        try:
            yield _RichStep(bars, task)
        finally:
            self._open -= 1
            if self._open == 0:
                self.close()

    def close(self) -> None:
        if self._bars is not None:
            self._bars.stop()
            self._bars = None
        self._open = 0


class _RichStep:
    def __init__(self, bars: Any, task: Any) -> None:
        self._bars, self._task = bars, task

    def advance(self, n: int = 1) -> None:
        self._bars.advance(self._task, n)

    def note(self, text: str) -> None:
        self._bars.update(self._task, note=text)
