"""The errors the CLI turns into exit codes (README, "Exit codes").

Raise these from anywhere in the core or a plugin; `ftharness.cli.main` prints ``str(error)`` as one
line on stderr and exits with ``error.exit_code``. Never let a traceback reach a user for bad input.

An ``OSError`` on a path the person can fix (a name too long, no permission, a file where a folder is
needed; :func:`from_os_error`) counts as the bad input or environment problem it is. Any other exception
is an internal error (a bug, or a library failing): exit code 4, kept apart from 1
("a gate failed") so that CI can tell a crash from a verdict. Its traceback goes to a log file
(:func:`ftharness.runlog.log_traceback`) and the terminal gets one line naming that file.
"""

from __future__ import annotations

import errno
from pathlib import Path

INTERNAL_ERROR = 4  # exit code of an uncaught exception (pytest's 3 is taken here by EnvironmentProblem)
INTERRUPTED = 130  # exit code after Ctrl-C: 128 + SIGINT, as a shell reports it


class FtharnessError(Exception):
    """Base of the errors the CLI reports as one line."""

    exit_code = 1


class BadInput(FtharnessError):
    """Bad input or usage: a file, a line or a field the user must fix. Exit code 2.

    The message reads ``FILE:LINE: FIELD: what is wrong; what to do`` with the parts that are known.
    """

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.line = line
        self.field = field
        self.reason = message
        where = ""
        if self.file:
            where = self.file + (f":{line}" if line else "") + ": "
        elif line:
            where = f"line {line}: "
        if field:
            where += f"{field}: "
        super().__init__(where + message)


class EnvironmentProblem(FtharnessError):
    """The machine cannot do what was asked (e.g. a CUDA-only method without CUDA). Exit code 3.

    The message says what is missing and what to do about it.
    """

    exit_code = 3


# An operating-system error on a named path that the person can fix, wherever in the code it surfaced: a
# name too long, a file where a folder is needed (or the reverse), no permission, a read-only place, a
# loop of links. A missing file is left out: the core checks the paths it is given, so an ENOENT that
# gets this far is a file that vanished under the harness, a bug or a race, not input.
_PATH_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM,
                          errno.EROFS, errno.ELOOP})
_MACHINE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})  # the disk is full: an environment problem


def from_os_error(error: BaseException) -> FtharnessError | None:
    """The :class:`BadInput` or :class:`EnvironmentProblem` an ``OSError`` on a path amounts to (see
    ``_PATH_ERRNOS``), or None when it is an internal error."""
    if not isinstance(error, OSError) or error.filename is None:
        return None
    if error.errno in _PATH_ERRNOS:
        return BadInput(f"{error.strerror}; check the path", file=error.filename)
    if error.errno in _MACHINE_ERRNOS:
        return EnvironmentProblem(f"{error.filename}: {error.strerror}; free some space and run the command again")
    return None


def exit_code(error: BaseException) -> int:
    """The exit code a command ends with when ``error`` ends it."""
    if isinstance(error, FtharnessError):
        return error.exit_code
    mapped = from_os_error(error)
    if mapped is not None:
        return mapped.exit_code
    if isinstance(error, KeyboardInterrupt):
        return INTERRUPTED
    return INTERNAL_ERROR
