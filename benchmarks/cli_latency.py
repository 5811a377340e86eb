"""Wall time of the light commands (`--help`, `advise --json`, `plan --json`) against the project's 0.5 s
target, and proof that none of them imports torch, transformers, peft or trl.

Each command runs as a fresh subprocess (the way a user runs it), 5 times; the median is reported.
The import check runs the same command in-process under a `sys.modules` probe.

    .venv/bin/python benchmarks/cli_latency.py [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 0.5
HEAVY = ("torch", "transformers", "peft", "trl", "bitsandbytes", "sklearn", "datasets")


def _advise_args() -> list[str]:
    scenarios = sorted((ROOT / "examples" / "scenarios").glob("*.yaml"))
    if scenarios:
        return ["advise", "--json", "--scenario", str(scenarios[0])]
    return ["advise", "--json", "--labeled-examples", "2000", "--problems", "format"]


def commands() -> dict[str, list[str]]:
    return {
        "ftharness --help": ["--help"],
        "ftharness advise --json": _advise_args(),
        "ftharness plan --json": ["plan", "--json", "--model", "llama-3-8b", "--method", "qlora"],
    }


def _exe() -> list[str]:
    script = shutil.which("ftharness") or str(Path(sys.executable).parent / "ftharness")
    return [script] if Path(script).exists() else [sys.executable, "-m", "ftharness"]


def wall_times(argv: list[str], runs: int) -> tuple[list[float], int]:
    times, rc = [], 0
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run([*_exe(), *argv], capture_output=True, cwd=ROOT)
        times.append(time.perf_counter() - t0)
        rc = proc.returncode
    return times, rc


_PROBE = """
import io, sys, contextlib
from ftharness.cli import main
argv = {argv!r}
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main(argv)
    except SystemExit:
        pass
print(",".join(m for m in {heavy!r} if m in sys.modules))
"""


def heavy_imports(argv: list[str]) -> list[str]:
    code = _PROBE.format(argv=argv, heavy=HEAVY)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    return [m for m in line.split(",") if m]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = []
    for name, cmd in commands().items():
        times, rc = wall_times(cmd, args.runs)
        median = statistics.median(times)
        rows.append({"command": name, "argv": cmd, "median_s": round(median, 3), "min_s": round(min(times), 3),
                     "max_s": round(max(times), 3), "exit_code": rc, "heavy_imports": heavy_imports(cmd),
                     "under_target": median < TARGET_S})
    if args.json:
        print(json.dumps({"target_s": TARGET_S, "runs": args.runs, "rows": rows}, indent=2))
    else:
        print(f"{'command':28} {'median s':>9} {'min':>7} {'max':>7} {'rc':>3}  {'< 0.5 s':8} heavy imports")
        for r in rows:
            print(f"{r['command']:28} {r['median_s']:9.3f} {r['min_s']:7.3f} {r['max_s']:7.3f} {r['exit_code']:3d}  "
                  f"{'yes' if r['under_target'] else 'NO':8} {','.join(r['heavy_imports']) or 'none'}")
        print(f"median of {args.runs} fresh subprocesses each; target {TARGET_S} s")
    ok = all(r["under_target"] and not r["heavy_imports"] and r["exit_code"] == 0 for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
