"""The trainer protocol: what a trainer plugin registers through ``register_trainers``.

A trainer declares what it trains as :class:`Method` objects; the core reads those facts (what data a
method trains on, whether it needs CUDA, whether its adapter can be merged...) through the plugin
registry (:mod:`ftharness.plugins`) and never tests a trainer's or a method's name.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

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


@dataclass(frozen=True)
class Method:
    """One method a trainer trains, and the facts about it the core acts on.

    - ``name``: what candidate files write in ``method:`` (``lora``, ``dpo``...). The names of the methods
      ftharness knows are the names the installed trainers declare: ``ftharness plugins`` lists them,
      ``ftharness plan --method`` accepts them.
    - ``title``: how people write it in prose (LoRA, QLoRA, DPO).
    - ``data``: what it trains on. ``supervised``: prompts with a completion; ``preference``: prompts with a
      chosen and a rejected answer. ``compare`` gives a candidate the task's ``data.train`` or
      ``data.preference`` rows by it, and ``ftharness train`` requires completions only for ``supervised``.
    - ``output``: ``adapter`` (a PEFT adapter folder on top of the base model) or ``model`` (a standalone
      model folder).
    - ``mergeable``: the adapter folds into the base weights, so ``ftharness train --merge-to`` can write a
      standalone model (prefix and prompt tuning add virtual tokens instead and cannot).
    - ``combinable``: the adapter is one that ``method: combine`` can merge with others (PEFT's
      ``add_weighted_adapter`` works on LoRA-family adapters).
    - ``continues``: it can train on top of another candidate's artifact (``start_from``).
    - ``requires_cuda``: it needs an NVIDIA GPU with CUDA; the core checks this before any work.
    """

    name: str
    title: str = ""
    data: Literal["supervised", "preference"] = "supervised"
    output: Literal["adapter", "model"] = "adapter"
    mergeable: bool = False
    combinable: bool = False
    continues: bool = True
    requires_cuda: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Trainer(Protocol):
    """What a trainer plugin registers; the registry checks every trainer against it when it registers.

    - ``name``: what candidate files write in ``trainer:``.
    - ``methods``: the :class:`Method` declarations of everything it trains (at least one).
    - ``unavailable_reason(method)``: None when it can train ``method`` (or, with None, anything) on this
      machine; else what is missing and what to do. Declared needs (``Method.requires_cuda``) are checked by
      the core first: this answers for the rest (libraries, licences...). It is asked only when needed (a
      training, ``ftharness plugins``), so it may import what it checks.
    - ``train(job)``: train ``job.spec`` into ``job.out_dir`` and return what it measured.

    Optional: ``hyperparameters(method)``, the hyperparameters the trainer accepts for a method (see
    :func:`ftharness.compare.task.known_hyperparameters`); without it the built-in defaults table is used.
    """

    name: str
    methods: tuple[Method, ...]

    def unavailable_reason(self, method: str | None = None) -> str | None: ...

    def train(self, job: TrainJob) -> TrainResult: ...


def cuda_available() -> bool:
    """True when torch is installed and sees an NVIDIA GPU (imports torch: call it only when needed)."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


TRAINING_LIBRARIES = ("torch", "transformers", "peft", "trl", "datasets")


def missing_training_libraries() -> str | None:
    """Why the built-in trainers cannot run here (a missing library of the ``train`` extra), else None."""
    import importlib.util

    missing = [m for m in TRAINING_LIBRARIES if importlib.util.find_spec(m) is None]
    if missing:
        return f"needs {', '.join(missing)}; install with `pip install 'ftharness[train]'`"
    return None
