"""A test hook: the process kills (or stops) itself at a named point, so tests can check crash safety.

``FTHARNESS_FAULT=POINT:N`` sends the process SIGKILL the N-th time it reaches POINT, as a ``kill -9``
or a lost machine would; ``POINT:N:stop`` sends SIGSTOP instead, so that a test can start a second process
while this one holds its locks, then let it go on with SIGCONT. It exists for the tests
(``tests/test_faults.py``); users never set it. Unset, :func:`reached` is one dictionary look-up.

The points:

- ``generate``: before each batch that ``compare`` generates (``ftharness.compare.experiment``);
- ``jsonl-append``: inside an append to a samples file, after half of the batch's text is written, so the
  file ends in a line cut short (``ftharness.io.append_jsonl``; kill only);
- ``train-step``: after each optimiser step of a trainer (``ftharness.training.callbacks``);
- ``score``: before a suite scores an option (``ftharness.compare.experiment``);
- ``report``: after ``results.json`` is written, before the other reports (``ftharness.compare.run``).
"""

from __future__ import annotations

import os
import signal

ENV = "FTHARNESS_FAULT"
_counts: dict[str, int] = {}


def armed(point: str) -> bool:
    """The hook is set for ``point`` in this process (whatever the count)."""
    spec = os.environ.get(ENV)
    return bool(spec) and spec.split(":", 1)[0] == point


def hit(point: str) -> bool:
    """Count one arrival at ``point``; True when this is the arrival the hook names (the caller then
    prepares what the fault should leave behind and calls :func:`act`)."""
    spec = os.environ.get(ENV)
    if not spec:
        return False
    name, _, rest = spec.partition(":")
    if name != point:
        return False
    _counts[point] = _counts.get(point, 0) + 1
    return _counts[point] == int(rest.split(":", 1)[0] or 1)


def act() -> None:
    """Kill the process (SIGKILL), or stop it (SIGSTOP) when the hook ends in ``:stop``."""
    stop = os.environ.get(ENV, "").endswith(":stop")
    os.kill(os.getpid(), signal.SIGSTOP if stop else signal.SIGKILL)


def reached(point: str) -> None:
    """Mark ``point``: the process dies (or stops) here when the hook names this arrival."""
    if hit(point):
        act()
