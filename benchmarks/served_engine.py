"""The server engine against the local engine: one trained candidate evaluated by both on the bundled eval rows.

Runs ``ftharness compare examples/served/task.yaml`` (the LoRA trains once: both candidates share its
artifact) and prints, from the run's results and samples: how many rows the two engines answered alike
(greedy decoding), each engine's generation wall time and tokens per second, the served server's start
time, and the field accuracy each scored. The local engine is the baseline. Run it on a quiet machine:

    .venv/bin/python benchmarks/served_engine.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from compare_run import compare, options

ROOT = Path(__file__).resolve().parents[1]
TASK = ROOT / "examples" / "served" / "task.yaml"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="the reports folder (default: a temporary one)")
    args = parser.parse_args()
    done = compare(TASK, args.out, "served")
    if done is None:
        return 1
    run, results = done
    by = options(results)
    rows = {name: [json.loads(line)["output"] for line in (run / "samples" / f"{name}.jsonl").read_text().splitlines()]
            for name in ("lora-bare", "lora-bare-served")}
    same = sum(a == b for a, b in zip(rows["lora-bare"], rows["lora-bare-served"], strict=True))
    starts = {p["option"]: p["wall_s"] for p in results["timing"]["phases"] if p["phase"] == "load model"}
    print(f"rows answered alike by the local and server engines: {same} of {len(rows['lora-bare'])}")
    print(f"{'option':<20} {'engine':<8} {'served':<10} {'start s':>8} {'generate s':>11} {'tokens/s':>9} "
          f"{'field acc':>9}")
    for name in ("lora-bare", "lora-bare-served", "zero-shot-served"):
        o = by[name]
        cost = o["cost"]
        print(f"{name:<20} {o['engine']['name']:<8} {o['engine']['served']:<10} {starts.get(name, 0.0):>8.1f} "
              f"{cost['generation_wall_s']:>11.1f} {cost['tokens_per_s'] or 0:>9.1f} "
              f"{o['metrics'].get('task.field_accuracy') or 0:>9.2f}")
    print(f"run folder: {run}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
