"""Training on two processes against one: the same LoRA trained in one process and launched on two under DDP
and under FSDP (``examples/launched/task.yaml``), evaluated on the bundled eval rows.

Runs ``ftharness compare examples/launched/task.yaml`` and prints, for each candidate: its world size and
strategy, training wall time and trained tokens per second, the largest difference of any adapter weight
from the one-process adapter (and the largest weight, for scale), the largest relative difference of a
logged training loss, and the field accuracy it scored. The one-process candidate is the baseline. Run it on
a quiet machine:

    .venv/bin/python benchmarks/launch.py [--out DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from compare_run import compare, options

ROOT = Path(__file__).resolve().parents[1]
TASK = ROOT / "examples" / "launched" / "task.yaml"
BASELINE = "one-process"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="the reports folder (default: a temporary one)")
    args = parser.parse_args()
    done = compare(TASK, args.out, "launched")
    if done is None:
        return 1
    run, results = done
    by = options(results)
    from safetensors.torch import load_file

    weights = {n: load_file(Path(o["training"]["artifact"]) / "adapter_model.safetensors") for n, o in by.items()}
    losses = {n: [p["loss"] for p in o["training"]["loss_curve"] if "loss" in p] for n, o in by.items()}
    scale = max(float(w.abs().max()) for w in weights[BASELINE].values())
    print(f"{'candidate':<12} {'processes':>9} {'strategy':<8} {'train s':>8} {'tokens/s':>9} {'max |dw|':>10} "
          f"{'max loss rel':>12} {'field acc':>9}")
    for name, o in by.items():
        t = o["training"]
        launch = t.get("launch") or {}
        dw = max(float((weights[name][k] - weights[BASELINE][k]).abs().max()) for k in weights[BASELINE])
        dl = max(abs(a - b) / abs(b) for a, b in zip(losses[name], losses[BASELINE], strict=True))
        print(f"{name:<12} {launch.get('world_size', 1):>9} {launch.get('strategy', '-'):<8} {t['wall_s']:>8.1f} "
              f"{t['tokens_per_s'] or 0:>9.1f} {dw:>10.2e} {dl:>12.2e} "
              f"{o['metrics'].get('task.field_accuracy') or 0:>9.3f}")
    print(f"largest adapter weight of {BASELINE}: {scale:.4f}; run folder: {run}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
