"""Measuring a training run: wall time, trained tokens per second, peak memory.

Peak memory is reported for what was measured, never guessed:
- on CUDA, ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` at the start (what the planner
  predicts: tensors allocated through PyTorch's caching allocator);
- on CPU, the peak resident set size (RSS) of this process *during the measured block*, sampled by a
  background thread every ``interval_s`` (psutil). ``resource.getrusage``'s ``ru_maxrss`` is not used: it is
  the peak of the whole process lifetime, so a test process that loaded a bigger model earlier would
  report that. Sampling can miss a spike shorter than the interval; the RSS at the start is kept too, so
  the growth caused by training is ``peak_rss - start_rss``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Measurement:
    wall_s: float = 0.0
    peak_memory_bytes: int = 0
    start_memory_bytes: int = 0
    memory_kind: str = "rss"  # "rss" (CPU process resident set) or "cuda_max_allocated"
    samples: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class Measure:
    """``with Measure() as m: ...`` then read ``m.result``."""

    def __init__(self, *, cuda: bool | None = None, interval_s: float = 0.05) -> None:
        self.interval_s = interval_s
        self._cuda = cuda
        self.result = Measurement()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Measure:
        if self._cuda is None:
            from ftharness.plugins import cuda_available

            self._cuda = cuda_available()
        if self._cuda:
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.result.memory_kind = "cuda_max_allocated"
            self.result.start_memory_bytes = int(torch.cuda.memory_allocated())
        else:
            import psutil

            self._proc = psutil.Process()
            rss = self._proc.memory_info().rss
            self.result.start_memory_bytes = rss
            self.result.peak_memory_bytes = rss
            self._thread = threading.Thread(target=self._sample, name="ftharness-rss", daemon=True)
            self._thread.start()
        self._t0 = time.perf_counter()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            rss = self._proc.memory_info().rss
            self.result.samples += 1
            if rss > self.result.peak_memory_bytes:
                self.result.peak_memory_bytes = rss

    def __exit__(self, *exc: Any) -> None:
        if self._cuda:
            import torch

            torch.cuda.synchronize()
            self.result.peak_memory_bytes = int(torch.cuda.max_memory_allocated())
        self.result.wall_s = time.perf_counter() - self._t0
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            rss = self._proc.memory_info().rss  # one last sample at the end of the block
            self.result.peak_memory_bytes = max(self.result.peak_memory_bytes, rss)


def tokens_per_s(tokens: int, seconds: float) -> float:
    return tokens / seconds if seconds > 0 else 0.0
