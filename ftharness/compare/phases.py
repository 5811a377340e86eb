"""Where a run's time and memory went: one record per phase (load, generate per option, train per
candidate, validate per sweep point, score per suite), kept in results.json and printed at the end.

Each phase is measured by :class:`ftharness.training.measure.Measure`: wall time, and the peak resident
set of the process *during the phase* (sampled every 0.1 s; on CUDA, the peak allocated by PyTorch), so
the table shows which phase set the run's peak. Between phases the experiment hands freed memory back
to the operating system (:func:`release_memory`), so one candidate's model does not inflate the next.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from typing import Any

from ftharness.report.records import Phase


class Phases:
    """``with phases("generate", "zero-shot"): ...``; ``phases.records`` holds what was measured."""

    def __init__(self) -> None:
        self.records: list[Phase] = []

    @contextlib.contextmanager
    def __call__(self, phase: str, option: str | None = None) -> Iterator[None]:
        try:
            from ftharness.training.measure import Measure

            measure: Any = Measure(interval_s=0.1)
        except ImportError:  # pragma: no cover - psutil is part of the eval extra
            measure = contextlib.nullcontext()
        with measure:
            yield
        result = getattr(measure, "result", None)
        self.records.append(
            Phase(
                phase=phase,
                option=option,
                wall_s=getattr(result, "wall_s", None),
                peak_memory_bytes=getattr(result, "peak_memory_bytes", None),
                memory_kind=getattr(result, "memory_kind", None),
            )
        )


def release_memory() -> None:
    """Collect garbage and give freed heap pages back to the OS (glibc's ``malloc_trim``), so the process
    RSS reflects what is alive, not what a finished phase once held."""
    gc.collect()
    with contextlib.suppress(Exception):
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
