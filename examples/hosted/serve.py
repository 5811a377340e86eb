"""Serve the embedded model as an OpenAI-compatible API on 127.0.0.1:8765 while a command runs.

task.yaml's endpoint baseline stands for "the hosted model you prompt today"; here that model is served on
this machine by ``transformers serve`` (``ftharness.models.local_server``), so the whole comparison runs
offline. The server stops when the command ends.

Usage: ``python examples/hosted/serve.py -- ftharness compare examples/hosted/task.yaml``
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

PORT = 8765  # task.yaml's endpoint.base_url


def main(argv: list[str]) -> int:
    from ftharness.models.embedded import embedded_model_dir
    from ftharness.models.local_server import local_server

    command = argv[argv.index("--") + 1:] if "--" in argv else argv
    if not command:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    log = Path(tempfile.mkdtemp(prefix="ftharness-serve-")) / "serve.log"
    with local_server(embedded_model_dir(), port=PORT, log=log) as server:
        print(f"serving {server.model} at {server.base_url} (log: {server.log})", file=sys.stderr)
        return subprocess.call(command, env={"NO_PROXY": "127.0.0.1,localhost", **os.environ})


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
