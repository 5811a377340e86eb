"""Write ``unlabeled.jsonl``: 48 customer messages without answers, for the distilled student of task.yaml.

They are new messages from the extraction generator at another seed (``examples/extraction/generate.py``),
kept only when they share no customer name, email or order id with an eval row, so labelling them cannot
teach the student an eval answer. Deterministic: running it again writes the same file.

Usage: ``python examples/hosted/make_unlabeled.py``
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXTRACTION = HERE.parent / "extraction"
SEED = 7  # any seed other than the bundled data's
N = 48


def _generator():
    spec = importlib.util.spec_from_file_location("generate", EXTRACTION / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _entities(row: dict) -> set[str]:
    answer = json.loads(row["completion"])
    return {str(answer[k]).lower() for k in ("name", "email", "order_id")}


def main() -> int:
    taken = set()
    for line in (EXTRACTION / "eval.jsonl").read_text(encoding="utf-8").splitlines():
        taken |= _entities(json.loads(line))
    rows = [r for r in _generator().build(SEED)["train"] if not _entities(r) & taken][:N]
    out = HERE / "unlabeled.jsonl"
    out.write_text("".join(json.dumps({"prompt": r["prompt"]}, ensure_ascii=False) + "\n" for r in rows),
                   encoding="utf-8")
    print(f"wrote {len(rows)} inputs to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
