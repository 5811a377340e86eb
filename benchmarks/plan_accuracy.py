"""How close is `ftharness plan` to measured peak training memory?

For each published measurement in ftharness/planner/data/measurements.yaml (source, settings and figure
recorded there) this prints the measured peak, the planner's `peak_gb`, and a naive estimate in the style
of `accelerate estimate-memory` (weights + gradients + optimizer states, nothing for activations or the
loss), then the median and worst relative error of each.

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
from ftharness.typed import from_mapping


def naive_weights_grads_optimizer_gb(plan) -> float:
    """The baseline: what an estimator that counts only weights, gradients and optimizer states predicts
    (accelerate's estimate-memory counts these for full training; here given the same weight bytes and
    trainable-only gradients and states, which is kinder to it than its full-model 4x rule)."""
    c = plan.components
    return (c["weights"] + c["gradients"] + c["optimizer"] + c.get("reference", 0.0)) / 1e9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    path = package_data("planner", "data", "measurements.yaml")
    with open(path, encoding="utf-8") as f:
        measurements = yaml.safe_load(f)
    rows = []
    for m in measurements:
        plan = estimate(from_mapping(PlanRequest, m["plan"], source=path, prefix=f"{m['id']}.plan."))
        ours = plan.peak_gb
        naive = naive_weights_grads_optimizer_gb(plan)
        measured = float(m["measured_gb"])
        rows.append({
            "id": m["id"], "measured_gb": measured, "ftharness_gb": round(ours, 2), "naive_gb": round(naive, 2),
            "ftharness_err": (ours - measured) / measured, "naive_err": (naive - measured) / measured,
            "source": m["source"],
        })

    def summary(key: str) -> dict[str, float]:
        errs = [abs(r[key]) for r in rows]
        return {"median_abs_rel_err": statistics.median(errs), "worst_abs_rel_err": max(errs)}

    result = {"measurements": rows, "ftharness": summary("ftharness_err"), "naive": summary("naive_err")}
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
