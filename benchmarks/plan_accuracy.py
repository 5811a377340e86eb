"""How close is `ftharness plan` to measured peak training memory?

For each published measurement in ftharness/planner/data/measurements.yaml (source, settings and figure
recorded there) this prints the measured peak, the planner's `peak_gb`, and a naive estimate in the style
of `accelerate estimate-memory` (weights + gradients + optimizer states, nothing for activations or the
loss), then the median and worst relative error of each. Multi-process measurements (per GPU, with the
processes and strategy of the run) follow in their own table, each compared with the plan's figure for
what it counts (allocated: peak_gb; reserved: peak_gb x (1 + the allocator reserve); nvidia-smi:
device_gb). Last, the torchtitan difference check: peak reserved memory at 8 minus at 128 FSDP2 processes,
against what the planner's sharded model states (weights + gradients + optimizer states) differ by.

    .venv/bin/python benchmarks/plan_accuracy.py [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

import yaml

from ftharness.paths import package_data
from ftharness.planner import PlanRequest, estimate
from ftharness.planner import memory as M
from ftharness.typed import from_mapping

GIB = 2**30 / 1e9  # GB per GiB


def naive_weights_grads_optimizer_gb(plan) -> float:
    """The baseline: what an estimator that counts only weights, gradients and optimizer states predicts
    (accelerate's estimate-memory counts these for full training; here given the same weight bytes and
    trainable-only gradients and states, which is kinder to it than its full-model 4x rule)."""
    c = plan.components
    return (c["weights"] + c["gradients"] + c["optimizer"] + c.get("reference", 0.0)) / 1e9


def measured_gb(m: dict) -> float:
    """The published figure in GB (1e9 bytes), whichever unit the source printed."""
    return float(m["measured_gb"]) if "measured_gb" in m else float(m["measured_gib"]) * GIB


def as_measured(gb: float, quantity: str, *, context: bool = True) -> float:
    """A planned peak (``gb`` of allocated memory) converted to the quantity a source measured: the
    planner's device_gb formula for nvidia-smi (its CUDA context left out of a difference, ``context``)."""
    if quantity == "max_memory_allocated":
        return gb
    return gb * (1 + M.ALLOCATOR_RESERVE) + (M.CUDA_CONTEXT_GB if quantity == "nvidia-smi" and context else 0.0)


def model_states_gb(plan) -> float:
    c = plan.components
    return (c["weights"] + c["gradients"] + c["optimizer"]) / 1e9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    path = package_data("planner", "data", "measurements.yaml")
    with open(path, encoding="utf-8") as f:
        measurements = yaml.safe_load(f)
    rows, multi, differences = [], [], []
    for m in measurements:
        req = from_mapping(PlanRequest, m["plan"], source=path, prefix=f"{m['id']}.plan.")
        plan = estimate(req)
        quantity = m.get("quantity", "max_memory_allocated")
        measured = measured_gb(m)
        if "minus_processes" in m:  # a difference: the same run at plan.processes minus at minus_processes
            other = estimate(from_mapping(PlanRequest, {**m["plan"], "processes": m["minus_processes"]},
                                          source=path, prefix=f"{m['id']}.plan."))
            states = model_states_gb(plan) - model_states_gb(other)
            predicted = as_measured(states, quantity, context=False)
            differences.append({
                "id": m["id"], "processes": req.processes, "minus_processes": m["minus_processes"],
                "strategy": req.strategy, "quantity": quantity, "measured_gib": measured / GIB,
                "model_states_gib": states / GIB, "predicted_gib": predicted / GIB,
                "err": (predicted - measured) / measured,
                "peak_difference_gib": (plan.peak_gb - other.peak_gb) / GIB, "source": m["source"],
            })
            continue
        ours = as_measured(plan.peak_gb, quantity)
        naive = as_measured(naive_weights_grads_optimizer_gb(plan), quantity)
        row = {
            "id": m["id"], "measured_gb": measured, "ftharness_gb": round(ours, 2), "naive_gb": round(naive, 2),
            "ftharness_err": (ours - measured) / measured, "naive_err": (naive - measured) / measured,
            "source": m["source"],
        }
        if req.processes > 1 or req.strategy != "ddp":
            multi.append({**row, "processes": req.processes, "strategy": req.strategy, "quantity": quantity})
        else:
            rows.append(row)

    def summary(key: str, of: list[dict]) -> dict[str, float]:
        errs = [abs(r[key]) for r in of]
        return {"median_abs_rel_err": statistics.median(errs), "worst_abs_rel_err": max(errs)}

    result = {"measurements": rows, "ftharness": summary("ftharness_err", rows), "naive": summary("naive_err", rows),
              "multi_process": {"measurements": multi, "ftharness": summary("ftharness_err", multi),
                                "naive": summary("naive_err", multi)},
              "differences": differences}
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return 0
    print(f"{'measurement':38} {'measured':>9} {'ftharness':>10} {'err':>7} {'naive':>8} {'err':>7}")
    for r in rows:
        print(f"{r['id']:38} {r['measured_gb']:9.2f} {r['ftharness_gb']:10.2f} {r['ftharness_err']:+7.1%} "
              f"{r['naive_gb']:8.2f} {r['naive_err']:+7.1%}")
    for name in ("ftharness", "naive"):
        s = result[name]
        print(f"{name:10} median |error| {s['median_abs_rel_err']:.1%}, worst {s['worst_abs_rel_err']:.1%}")
    print(f"{len(rows)} published measurements (sources in ftharness/planner/data/measurements.yaml)")
    print()
    print("multi-process runs, per GPU (as: alloc = max_memory_allocated, reserved = max_memory_reserved, "
          "smi = nvidia-smi; naive: the same sharded weights, gradients and optimizer states, nothing else)")
    quantities = {"max_memory_allocated": "alloc", "max_memory_reserved": "reserved", "nvidia-smi": "smi"}
    print(f"{'measurement':40} {'procs':>5} {'strategy':16} {'as':8} {'measured':>9} {'ftharness':>10} {'err':>7} "
          f"{'naive':>8} {'err':>7}")
    for r in multi:
        print(f"{r['id']:40} {r['processes']:5d} {r['strategy']:16} {quantities[r['quantity']]:8} "
              f"{r['measured_gb']:9.2f} {r['ftharness_gb']:10.2f} {r['ftharness_err']:+7.1%} {r['naive_gb']:8.2f} "
              f"{r['naive_err']:+7.1%}")
    for name in ("ftharness", "naive"):
        s = result["multi_process"][name]
        print(f"{name:10} median |error| {s['median_abs_rel_err']:.1%}, worst {s['worst_abs_rel_err']:.1%}")
    print(f"{len(multi)} published multi-process measurements (GB; GiB sources converted)")
    for d in differences:
        print()
        print(f"{d['id']}: peak reserved at {d['processes']} minus at {d['minus_processes']} {d['strategy']} "
              f"processes, measured {d['measured_gib']:.2f} GiB; planner's sharded model states differ by "
              f"{d['model_states_gib']:.2f} GiB, x{1 + M.ALLOCATOR_RESERVE:.2f} allocator reserve "
              f"{d['predicted_gib']:.2f} GiB ({d['err']:+.1%}); its peak_gb differs by "
              f"{d['peak_difference_gib']:.2f} GiB (gradients are not live at its backward-start peak)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
