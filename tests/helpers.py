"""Small helpers the test modules share (fixtures are in conftest.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "extraction"


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/NAME.py`` imported by path (the benchmarks folder is not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def example_rows(folder: Path, **counts: int) -> None:
    """The first rows of the bundled extraction task's files into ``folder``: ``train=10, eval=4`` writes
    ``train.jsonl`` (10 rows) and ``eval.jsonl`` (4)."""
    for name, n in counts.items():
        lines = (EXAMPLE / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()[:n]
        (folder / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
