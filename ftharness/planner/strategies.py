"""The ways a training spreads over several processes, and what each one shards: one table that the launcher
(:mod:`ftharness.training.launch`) and the planner (:mod:`ftharness.planner`) both read.

Light on purpose (no torch): ``ftharness plan`` imports it.

What is sharded follows the ZeRO paper's stages (Rajbhandari et al. 2020, "ZeRO: Memory Optimizations
Toward Training Trillion Parameter Models", sec. 5): stage 1 partitions the optimizer states across the N
data-parallel processes, stage 2 also the gradients, stage 3 also the parameters. PyTorch FSDP's
FULL_SHARD is stage 3 (Zhao et al. 2023, "PyTorch FSDP: Experiences on Scaling Fully Sharded Data
Parallel", sec. 3.2). DDP shards nothing: every process holds the whole model (Li et al. 2020, "PyTorch
Distributed: Experiences on Accelerating Data Parallel Training").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ftharness.typed import spec

Sharded = Literal["parameters", "gradients", "optimizer"]


@dataclass(frozen=True)
class Strategy:
    name: str
    shards: tuple[Sharded, ...]  # what is divided among the processes
    engine: Literal["ddp", "fsdp", "deepspeed"]  # what accelerate runs it with
    zero_stage: int | None = None  # DeepSpeed's ZeRO stage
    gathers: bool = False  # parameters are all-gathered one unit (decoder layer) at a time for compute


STRATEGIES: dict[str, Strategy] = {
    "ddp": Strategy("ddp", (), "ddp"),
    "fsdp": Strategy("fsdp", ("parameters", "gradients", "optimizer"), "fsdp", gathers=True),
    "deepspeed-zero2": Strategy("deepspeed-zero2", ("gradients", "optimizer"), "deepspeed", zero_stage=2),
    "deepspeed-zero3": Strategy("deepspeed-zero3", ("parameters", "gradients", "optimizer"), "deepspeed",
                                zero_stage=3, gathers=True),
}
STRATEGY_NAMES = tuple(STRATEGIES)


@dataclass
class LaunchSettings:
    """``launch:`` of a candidate: how many processes train it and how they share the model."""

    processes: int = spec(1, ge=1, le=1024, help="training processes (one per GPU; on CPU, one per core at most)")
    strategy: str = spec(
        "ddp", choices=STRATEGY_NAMES, help="ddp: every process holds the whole model; fsdp: PyTorch FSDP2 full sharding; "
                    "deepspeed-zero2 / deepspeed-zero3: DeepSpeed ZeRO stage 2 / 3",
        source="Rajbhandari et al. 2020 (ZeRO), Zhao et al. 2023 (PyTorch FSDP)")
    config: str | None = spec(None, help="an accelerate config file to launch with instead of the one the harness "
                                         "writes (relative to the task or candidate file)")

    def launched(self) -> bool:
        """Whether training runs under ``accelerate launch`` (more than one process, or a sharding strategy)."""
        return self.processes > 1 or self.strategy != "ddp" or self.config is not None
