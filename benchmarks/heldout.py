"""Does the verdict hold on data the harness never saw?

Generates a fresh eval set with another seed (``examples/extraction/generate.py --seed N``), drops every
row whose name, email or order id occurs in the bundled training data, and runs ``ftharness compare`` on
the bundled task with that eval file in place of the bundled one. Trainings are reused from the artifact
cache when the bundled run was made first with the same cache (a candidate's artifact never depends on
the eval file), so the second run costs generation and scoring only.

Prints, per option present in both runs, parse rate and field accuracy on the bundled eval and on the
fresh one, then the chosen option of each run and whether its figures stay within 0.1 (the baseline is
the bundled eval's figure, in the same run of this script).

Usage: ``.venv/bin/python benchmarks/heldout.py --seed 7 [--bundled-results reports/ID/results.json]``
(without ``--bundled-results`` it runs the bundled task first).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

from ftharness.report.results import CompareResults, read_results

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "extraction"
KEYS = ("name", "email", "order_id")
METRICS = ("format.parse_rate", "task.field_accuracy")


def seen_values() -> set[str]:
    seen: set[str] = set()
    for line in (EXAMPLE / "train.jsonl").read_text(encoding="utf-8").splitlines():
        answer = json.loads(json.loads(line)["completion"])
        seen.update(str(answer[k]).lower() for k in KEYS)
    return seen


def fresh_eval(seed: int, folder: Path) -> tuple[Path, int, int]:
    """The fresh eval file, with how many rows were generated and kept."""
    subprocess.run([sys.executable, str(EXAMPLE / "generate.py"), "--seed", str(seed), "--out", str(folder)],
                   check=True, stdout=subprocess.DEVNULL)
    seen = seen_values()
    rows = (folder / "eval.jsonl").read_text(encoding="utf-8").splitlines()
    kept = [r for r in rows if not any(str(json.loads(json.loads(r)["completion"])[k]).lower() in seen
                                       for k in KEYS)]
    out = folder / "eval-unseen.jsonl"
    out.write_text("\n".join(kept) + "\n", encoding="utf-8")
    return out, len(rows), len(kept)


def run_compare(task: Path, out: Path) -> CompareResults:
    subprocess.run([str(ROOT / ".venv" / "bin" / "ftharness"), "compare", str(task), "--out", str(out),
                    "--no-progress"], check=False, stdout=subprocess.DEVNULL)
    (results,) = sorted(out.glob("*/results.json"))[-1:]
    return compare_results(results)


def compare_results(path: Path) -> CompareResults:
    results = read_results(path)
    if not isinstance(results, CompareResults):
        raise SystemExit(f"{path}: the results of ftharness eval, not of ftharness compare")
    return results


def value(metrics: dict[str, float | None], name: str) -> float:
    v = metrics.get(name)
    return math.nan if v is None else v


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--bundled-results", type=Path, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        eval_path, generated, kept = fresh_eval(args.seed, tmp / "data")
        print(f"fresh eval, seed {args.seed}: {generated} rows generated, {kept} kept "
              f"(none shares a name, email or order id with train)")
        text = (EXAMPLE / "task.yaml").read_text(encoding="utf-8")
        for name in ("instruction.txt", "schema.json", "train.jsonl", "preference.jsonl"):
            text = text.replace(f" {name}", f" {EXAMPLE / name}")
        task = tmp / "task.yaml"
        task.write_text(text.replace(" eval.jsonl", f" {eval_path}"), encoding="utf-8")
        bundled = (compare_results(args.bundled_results) if args.bundled_results
                   else run_compare(EXAMPLE / "task.yaml", tmp / "bundled"))
        fresh = run_compare(task, tmp / "fresh")
    b = {o.name: o.metrics for o in bundled.options}
    f = {o.name: o.metrics for o in fresh.options}
    print(f"{'option':28s} " + " ".join(f"{m.split('.')[1]:>24s}" for m in METRICS))
    for name in b:
        if name in f:
            cells = [f"{value(b[name], m):.2f} -> {value(f[name], m):.2f}" for m in METRICS]
            print(f"{name:28s} " + " ".join(f"{c:>24s}" for c in cells))
    chosen_b, chosen_f = bundled.decision.recommended, fresh.decision.recommended
    print(f"decision: bundled eval {bundled.decision.verdict} ({chosen_b}), "
          f"fresh eval {fresh.decision.verdict} ({chosen_f})")
    if chosen_b and chosen_b in f:
        worst = max(abs(value(b[chosen_b], m) - value(f[chosen_b], m)) for m in METRICS)
        print(f"chosen option {chosen_b}: largest change {worst:.2f} ({'within' if worst <= 0.1 else 'beyond'} 0.1)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
