"""A server the harness starts ends with it, however the harness ends: a normal stop, or the harness killed
outright (SIGKILL runs no cleanup code; the kernel's parent-death signal ends the server)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ftharness.models.local_server import start_process, stop_process

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state  # a zombie has exited; only its parent's wait is missing


def gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.1)
    return not alive(pid)


def test_a_stopped_server_is_gone(tmp_path):
    proc = start_process(SLEEPER, cwd=tmp_path, log=tmp_path / "log")
    assert alive(proc.pid)
    stop_process(proc, grace_s=5)
    assert proc.returncode == -signal.SIGTERM and not alive(proc.pid)


@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's (prctl)")
def test_a_killed_harness_leaves_no_server_behind(tmp_path):
    harness = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\n"
         "from pathlib import Path\n"
         "from ftharness.models.local_server import start_process\n"
         f"p = start_process({SLEEPER!r}, cwd={str(tmp_path)!r}, log=Path({str(tmp_path / 'log')!r}))\n"
         "print(p.pid, flush=True)\n"
         "time.sleep(600)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        server = int(harness.stdout.readline())
        assert alive(server)
        os.kill(harness.pid, signal.SIGKILL)  # no finally, no atexit: only the kernel can end the server now
        harness.wait(timeout=10)
        assert gone_within(server, 10), f"server {server} outlived the killed harness"
    finally:
        harness.kill()
        harness.wait()
