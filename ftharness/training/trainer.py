"""What a trainer is given and what it returns: a :class:`TrainJob` (its :class:`CandidateSpec`, the data,
the artifact folder) in, a :class:`TrainResult` out.

The trainer protocol itself, and the ``Method`` declarations through which a trainer says what it trains,
are in :mod:`ftharness.hookspecs`; the core reads those declarations through the plugin registry
(:mod:`ftharness.plugins`) and never tests a trainer's or a method's name.

A trainer's ``hyperparameters(method)`` (:class:`~ftharness.hookspecs.Trainer`) is the dataclass of what it
accepts for a method (the shared bases are in :mod:`ftharness.hyperparameters`). A candidate's
hyperparameters are checked against that class only (:func:`ftharness.training.spec.validate_candidate`),
and ``train`` receives them typed, defaults filled, as :attr:`TrainJob.hyperparameters`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ftharness.data.records import Example


@dataclass
class CandidateSpec:
    """One candidate to train. ``hyperparameters`` are the trainer's own (r, lora_alpha, lr, epochs...)."""

    name: str
    trainer: str = "peft"
    method: str = "lora"
    base_model: str | None = None  # None: the embedded default
    start_from: str | None = None  # another candidate's name: train on top of its artifact
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    seed: int = 0


@dataclass
class TrainJob:
    spec: CandidateSpec
    base_model_path: Path  # a local HF folder
    train: list[Example]
    eval: list[Example]
    out_dir: Path  # the artifact folder to write
    hyperparameters: Any  # an instance of trainer.hyperparameters(spec.method): checked, defaults filled
    system_prompt: str | None = None  # the task instruction, rendered exactly as for the baselines
    start_adapter: Path | None = None  # artifact of ``spec.start_from``
    resume: bool = True
    progress: bool = True  # report the training steps through ftharness.ui
    callbacks: list[Any] = field(default_factory=list)  # extra transformers TrainerCallbacks (tests, tools)


@dataclass
class TrainResult:
    wall_s: float
    train_tokens: int  # tokens that went through the model in training (not padding)
    tokens_per_s: float
    peak_memory_bytes: int
    memory_kind: str  # "rss" on CPU, "cuda_max_allocated" on GPU
    trainable_params: int
    total_params: int
    loss_curve: list[dict[str, float]] = field(default_factory=list)  # {"step", "epoch", "loss"|"eval_loss"}
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. DPO reward margins

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


TRAINING_LIBRARIES = ("torch", "transformers", "peft", "trl", "datasets")


def missing_training_libraries() -> str | None:
    """Why the built-in trainers cannot run here (a missing library of the ``train`` extra), else None."""
    import importlib.util

    missing = [m for m in TRAINING_LIBRARIES if importlib.util.find_spec(m) is None]
    if missing:
        return f"needs {', '.join(missing)}; install with `pip install 'ftharness[train]'`"
    return None
