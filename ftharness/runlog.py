"""The run's log file: where third-party noise goes instead of the terminal.

Inside :func:`third_party_to_log` every Python warning (transformers' FutureWarnings, PEFT's notices),
every record of the standard ``logging`` module (bitsandbytes' "Failed to load CPU gemm_4bit_forward",
transformers' advisories) and the libraries' own progress bars (GGUF conversion, "Loading weights") are
written to the log file, each with its time and source, and nothing of theirs reaches the terminal.
ftharness's own progress and status lines go through :mod:`ftharness.ui` and stay on stderr.
On the way out everything is put back as it was.

The traceback of an internal error (exit code 4, ``ftharness.errors``) goes to a log file too
(:func:`log_traceback`): the run's log inside a run, else a file of its own under the cache's ``logs/``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path

from ftharness.paths import cache_dir

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
QUIET_ENV = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}


@contextlib.contextmanager
def third_party_to_log(path: str | Path) -> Iterator[Path]:
    """Send warnings, logging records and library progress bars to ``path`` (appended) while inside."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    saved_env = {k: os.environ.get(k) for k in QUIET_ENV}
    transformers_log = _transformers_logging()
    for h in saved_handlers:
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    os.environ.update(QUIET_ENV)
    if transformers_log is not None:
        transformers_log.disable_default_handler()
        transformers_log.enable_propagation()
        transformers_log.disable_progress_bar()
    logging.captureWarnings(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")  # each distinct warning once, into the log
            yield path
    finally:
        logging.captureWarnings(False)
        if transformers_log is not None:
            transformers_log.enable_default_handler()
            transformers_log.disable_propagation()
            transformers_log.enable_progress_bar()
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        root.removeHandler(handler)
        handler.close()
        for h in saved_handlers:
            root.addHandler(h)
        root.setLevel(saved_level)


def _transformers_logging():
    """transformers' logging module when transformers is installed (compare needs it anyway), else None."""
    try:
        from transformers.utils import logging as tlog
    except ImportError:
        return None
    return tlog


_LOG_ATTR = "ftharness_traceback_log"  # set on an exception whose traceback was written to a log file


def log_traceback(path: str | Path, error: BaseException) -> Path:
    """Append ``error``'s traceback (with the time and the command) to ``path``, and note the file on the
    error so that whoever reports it can say where the traceback is (:func:`traceback_log`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(traceback.format_exception(error))
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} INTERNAL ERROR in `{' '.join(sys.argv)}`\n{text}\n")
    setattr(error, _LOG_ATTR, path)
    return path


def traceback_log(error: BaseException) -> Path | None:
    """The log file :func:`log_traceback` wrote ``error``'s traceback to, if it did."""
    return getattr(error, _LOG_ATTR, None)


def crash_log_file() -> Path:
    """A new log file for a traceback outside a run: ``<cache>/logs/crash-YYYYmmdd-HHMMSS-PID.log``."""
    return cache_dir() / "logs" / f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
