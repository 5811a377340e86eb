"""How the core talks to the person running it: status lines, "N of total" progress, warnings.

Core modules call :func:`status`, :func:`progress` and :func:`warn`; they never print to the terminal
themselves, never import rich and never import :mod:`ftharness.cli`. The front end decides what that looks
like and installs an implementation for the length of a command with :func:`installed`: the CLI
(:func:`ftharness.cli.render.terminal_ui`) installs a rich display when stderr is a terminal,
:class:`Plain` lines otherwise (CI logs), and :class:`Silent` for ``--json`` and ``--no-progress``. With
nothing installed the UI is :class:`Silent`: library calls and tests print nothing.

The contract every implementation keeps:

- everything goes to stderr; stdout carries results and ``--json`` documents;
- messages, labels and notes are plain text. Paths, option names and model output may hold ``[``, ``]``
  or backslashes and are shown as they are: an implementation that renders markup escapes them where it
  renders, and nowhere else needs to;
- ``progress(label, total)`` is a context manager yielding a :class:`Step`; ``total=None`` is a step whose
  length is unknown (a model conversion). Steps may nest (generation inside a comparison);
- ``close()`` ends whatever is still drawn (a step left open by an exception); :func:`installed` calls it.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import IO, Protocol


class Step(Protocol):
    """One step being counted: ``advance`` by finished units, ``note`` the latest figure (a loss)."""

    def advance(self, n: int = 1) -> None: ...

    def note(self, text: str) -> None: ...


class UI(Protocol):
    def status(self, message: str) -> None: ...

    def progress(
        self, label: str, total: int | None, *, completed: int = 0
    ) -> contextlib.AbstractContextManager[Step]: ...

    def warn(self, message: str) -> None: ...

    def close(self) -> None: ...


class _NoStep:
    def advance(self, n: int = 1) -> None:
        pass

    def note(self, text: str) -> None:
        pass


class Silent:
    """Prints nothing (``--json``, ``--no-progress``, tests, library use)."""

    def status(self, message: str) -> None:
        pass

    def progress(
        self, label: str, total: int | None, *, completed: int = 0
    ) -> contextlib.AbstractContextManager[Step]:
        return contextlib.nullcontext(_NoStep())

    def warn(self, message: str) -> None:
        pass

    def close(self) -> None:
        pass


class Plain:
    """One line per event, for logs and pipes: no colour, no cursor movement, nothing redrawn.

    A step prints a line when it starts, each time it passes a quarter of its total, and when it ends
    (with its wall time), so a 10-minute training shows it is alive without flooding a CI log.
    """

    QUARTERS = 4

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream  # None: whatever sys.stderr is when writing (pytest's capture swaps it)

    def _line(self, text: str) -> None:
        out = self._stream or sys.stderr
        out.write(text + "\n")
        out.flush()

    def status(self, message: str) -> None:
        self._line(message)

    def warn(self, message: str) -> None:
        self._line(f"warning: {message}")

    @contextlib.contextmanager
    def progress(self, label: str, total: int | None, *, completed: int = 0) -> Iterator[Step]:
        step = _PlainStep(self._line, label, total, completed)
        step.show()
        yield step
        step.finish()

    def close(self) -> None:
        pass


class _PlainStep:
    def __init__(self, line, label: str, total: int | None, completed: int) -> None:
        self._line, self.label, self.total, self.done = line, label, total, completed
        self._note = ""
        self._t0 = time.monotonic()
        self._quarter = self._quarter_of(completed)

    def _quarter_of(self, done: int) -> int:
        return done * Plain.QUARTERS // self.total if self.total else 0

    def show(self, suffix: str = "") -> None:
        count = f"{self.done}/{self.total}" if self.total is not None else "started"
        note = f" {self._note}" if self._note else ""
        self._line(f"{self.label}: {count}{note}{suffix}")

    def advance(self, n: int = 1) -> None:
        self.done += n
        quarter = self._quarter_of(self.done)
        if quarter > self._quarter and self.done < (self.total or 0):
            self._quarter = quarter
            self.show()

    def note(self, text: str) -> None:
        self._note = text

    def finish(self) -> None:
        seconds = time.monotonic() - self._t0
        if self.total is None:
            note = f" {self._note}" if self._note else ""
            self._line(f"{self.label}: done{note} in {seconds:.1f} s")
        else:
            self.show(f" in {seconds:.1f} s")


_current: UI = Silent()


def current() -> UI:
    """The installed implementation."""
    return _current


@contextlib.contextmanager
def installed(ui: UI) -> Iterator[UI]:
    """Use ``ui`` while inside; then put back the one before and close ``ui``."""
    global _current
    before, _current = _current, ui
    try:
        yield ui
    finally:
        _current = before
        ui.close()


def status(message: str) -> None:
    """A line saying what is happening now (``scoring lora with suite format``)."""
    _current.status(message)


def progress(
    label: str, total: int | None, *, completed: int = 0, show: bool = True
) -> contextlib.AbstractContextManager[Step]:
    """``with progress("generating lora", 24) as step: ... step.advance(16)``.

    ``show=False`` counts nothing and prints nothing: a caller whose own caller already counts the
    same work (a batch of a comparison's generation) passes its ``progress`` flag here.
    """
    if not show:
        return contextlib.nullcontext(_NoStep())
    return _current.progress(label, total, completed=completed)


def warn(message: str) -> None:
    """Something the person should know that does not stop the command (an estimate that failed)."""
    _current.warn(message)
