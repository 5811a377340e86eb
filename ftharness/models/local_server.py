"""A local OpenAI-compatible server for a model folder: ``transformers serve`` on 127.0.0.1.

What an ``endpoint`` baseline calls when the "hosted" model is one you run yourself, and what the endpoint
tests run against (a real server, not a mock of HTTP). The server needs transformers' ``serving`` extra
(fastapi, uvicorn, openai: ``pip install -e '.[serve]'``); it runs offline (``HF_HUB_OFFLINE=1``) in its own
process group, which :func:`local_server` stops on exit, and which ends with the harness when the harness
is killed (:func:`start_process`). The model name the server answers to is the
folder's name: it is started from the folder's parent, as ``transformers serve NAME`` pins that name.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ftharness.errors import EnvironmentProblem

SERVE_NEEDS = ("fastapi", "uvicorn", "openai")  # transformers' `serving` extra, beside torch
# Loopback, whatever HTTP_PROXY says.
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class LocalServer:
    base_url: str  # http://127.0.0.1:PORT/v1
    model: str  # the name requests must give
    log: Path  # the server's output


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def local_server(model_dir: str | Path, *, port: int | None = None, log: str | Path,
                 start_timeout_s: float = 180.0) -> Iterator[LocalServer]:
    """Serve ``model_dir`` until the block ends. EnvironmentProblem when the serving packages are missing,
    or the server exits or does not answer ``/health`` in time (with the end of its log)."""
    model_dir = Path(model_dir).resolve()
    port = port or free_port()
    cmd, cwd, name = transformers_command(model_dir, port)
    proc = start_server(cmd, cwd=cwd, port=port, log=Path(log), start_timeout_s=start_timeout_s)
    try:
        yield LocalServer(f"http://127.0.0.1:{port}/v1", name, Path(log))
    finally:
        stop_process(proc)


def serving_missing() -> str | None:
    """None when ``transformers serve`` can start here, else what to install."""
    missing = [m for m in SERVE_NEEDS if importlib.util.find_spec(m) is None]
    return f"transformers serve needs {', '.join(missing)}: pip install -e '.[serve]'" if missing else None


def transformers_command(model_dir: Path, port: int) -> tuple[list[str], Path, str]:
    """``transformers serve`` for the model folder on loopback: (command, working folder, the model name
    requests give: the folder's name)."""
    problem = serving_missing()
    if problem:
        raise EnvironmentProblem(problem)
    cmd = [sys.executable, "-m", "transformers.cli.transformers", "serve", model_dir.name,
           "--host", "127.0.0.1", "--port", str(port)]
    return cmd, model_dir.parent, model_dir.name


def start_server(cmd: list[str], *, cwd: str | Path, port: int, log: Path, start_timeout_s: float,
                 env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start an OpenAI-compatible server (:func:`start_process`, offline) and wait until it answers
    ``/health`` on ``port``; stopped again, and EnvironmentProblem with the end of its log, when it exits or
    does not answer in ``start_timeout_s``."""
    proc = start_process(cmd, cwd=cwd, log=log, env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})
    try:
        _wait_for_health(proc, port, log, time.monotonic() + start_timeout_s, " ".join(cmd))
    except BaseException:
        stop_process(proc)
        raise
    return proc


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def start_process(cmd: list[str], *, cwd: str | Path, log: Path, env: dict[str, str] | None = None
                  ) -> subprocess.Popen:
    """Start ``cmd`` (a server the harness owns) in its own process group, its output in ``log``, so that
    it ends with the harness however the harness ends: :func:`stop_process` on a normal exit or an
    exception; on Linux the kernel sends it SIGTERM when the harness dies otherwise (killed, even by
    SIGKILL: ``PR_SET_PDEATHSIG``). Call it from a thread that lives as long as the server (the signal
    follows the thread that started it)."""
    parent = os.getpid()
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env=env, preexec_fn=(lambda: die_with_parent(parent)) if sys.platform == "linux"
                                else None)


def die_with_parent(parent: int) -> None:
    """Have the kernel send this process SIGTERM when its parent dies (Linux ``PR_SET_PDEATHSIG``); exit
    now if the parent (pid ``parent``) is already gone. Run in a child between fork and exec, or first
    thing in a process another one started."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)


def stop_process(proc: subprocess.Popen, *, grace_s: float = 15.0) -> None:
    """SIGTERM to ``proc``'s process group, SIGKILL after ``grace_s``; returns when it has exited."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _wait_for_health(proc: subprocess.Popen, port: int, log: Path, deadline: float, cmd: str) -> None:
    while True:
        if proc.poll() is not None:
            raise EnvironmentProblem(f"`{cmd}` exited with {proc.returncode} before answering /health: "
                                     f"{log.read_text(errors='replace')[-1500:]}")
        try:
            with DIRECT.open(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise EnvironmentProblem(f"`{cmd}` did not answer /health in time: "
                                     f"{log.read_text(errors='replace')[-1500:]}")
        time.sleep(0.5)
