"""Hyperparameter contracts: the typed fields trainers share, with their defaults, sources and ranges.

A trainer owns its hyperparameters: ``trainer.hyperparameters(method)`` returns the dataclass of what it
accepts for that method (the built-in trainers' classes are in their plugin modules, ``plugins/``), and
:func:`ftharness.training.spec.validate_candidate` checks a candidate against that class only. The
classes here are the bases those declarations build on:

- :class:`TrainingHyperparameters`: what :mod:`ftharness.training.sft` hands to transformers'
  ``TrainingArguments`` (both the SFT and the DPO loop read it);
- :class:`SftHyperparameters`: plus what the supervised loop ``run_sft`` reads;
- :class:`LoraSettings`: PEFT's ``LoraConfig`` fields (the peft, unsloth and trl-dpo trainers share them);
- :class:`PromptLearningSettings`: the virtual tokens of prefix and prompt tuning.

Every default cites where it comes from (``source``). A method changes a default by redeclaring the
field in its subclass with :func:`ftharness.typed.like` (same help and range, a new default and source).
``ftharness plan`` declares its flags the same way, so a value a training refuses, the planner refuses too;
that is why these bases sit in the foundation layer (docs/layers.md), below the planner and the trainers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ftharness.typed import spec

# -- where the defaults come from ------------------------------------------------------------------------

HU_2021 = "Hu et al. 2021, LoRA: Low-Rank Adaptation of Large Language Models (arXiv:2106.09685)"
DETTMERS_2023 = ("Dettmers et al. 2023, QLoRA: Efficient Finetuning of Quantized LLMs (arXiv:2305.14314), "
                 "sec. 4 and app. B")
RASCHKA_2023 = ("S. Raschka 2023, Practical Tips for Finetuning LLMs Using LoRA (magazine.sebastianraschka.com): "
                "alpha = 2r, all layers, 1-2 epochs")
LOSHCHILOV_2017 = "Loshchilov & Hutter 2017, SGDR: cosine learning-rate schedule (arXiv:1608.03983)"
KRELL_2021 = ("Krell et al. 2021, Efficient Sequence Packing without Cross-contamination (arXiv:2107.02027): "
              "padding-free batches, per-sequence attention")
PRECHELT_1998 = "Prechelt 1998, Early Stopping - But When? (patience on the validation loss)"
LESTER_2021 = ("Lester et al. 2021, The Power of Scale for Parameter-Efficient Prompt Tuning (arXiv:2104.08691): "
               "lr 0.3 (Adafactor); PEFT's prompt-tuning guide uses 3e-2 with AdamW")
HARNESS = "ftharness design choice (not from the literature; see the docstring of the code that reads it)"

# The names transformers 5 accepts (transformers/trainer_utils.py SchedulerType,
# transformers/training_args.py OptimizerNames; read from transformers 5.24).
LR_SCHEDULERS = (
    "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup", "inverse_sqrt",
    "reduce_lr_on_plateau", "cosine_with_min_lr", "cosine_warmup_with_min_lr", "warmup_stable_decay", "greedy",
)
OPTIMIZERS = (
    "adamw_torch", "adamw_torch_fused", "adamw_torch_xla", "adamw_torch_npu_fused", "adafactor", "adamw_anyprecision",
    "adamw_torch_4bit", "adamw_torch_8bit", "ademamix", "sgd", "adagrad", "adamw_bnb_8bit", "adamw_8bit",
    "ademamix_8bit", "lion_8bit", "lion_32bit", "paged_adamw_32bit", "paged_adamw_8bit", "paged_ademamix_32bit",
    "paged_ademamix_8bit", "paged_lion_32bit", "paged_lion_8bit", "rmsprop", "rmsprop_bnb", "rmsprop_bnb_8bit",
    "rmsprop_bnb_32bit", "galore_adamw", "galore_adamw_8bit", "galore_adafactor", "galore_adamw_layerwise",
    "galore_adamw_8bit_layerwise", "galore_adafactor_layerwise", "lomo", "adalomo", "grokadamw",
    "schedule_free_radam", "schedule_free_adamw", "schedule_free_sgd", "apollo_adamw", "apollo_adamw_layerwise",
    "stable_adamw",
)
Dtype = Literal["auto", "float32", "bfloat16", "float16"]


@dataclass
class NoHyperparameters:
    """What a trainer that declares no hyperparameters accepts: nothing."""


@dataclass
class TrainingHyperparameters:
    """What the harness's training loops pass to transformers' ``TrainingArguments``."""

    epochs: float = spec(2.0, gt=0, source=RASCHKA_2023, help="passes over the training data")
    max_steps: int | None = spec(None, ge=1, source=HARNESS,
                                 help="stop after this many optimiser steps (smoke runs, tests); null: by epochs")
    # Depends on model size: QLoRA used 2e-4 for 7B-13B and 1e-4 for 33B-65B; smaller models take larger
    # rates (Kaplan et al. 2020, eq. D.1), and LoRA's best rate is ~10x full finetuning's (Schulman et al.
    # 2025, LoRA Without Regret). Sweep it and let the validation split choose.
    learning_rate: float = spec(2.0e-4, gt=0, source=DETTMERS_2023, help="peak learning rate")
    batch_size: int = spec(8, ge=1, source=HARNESS, help="rows per device per step")
    grad_accum: int = spec(1, ge=1, source=HARNESS, help="steps accumulated per optimiser step")
    eval_batch_size: int = spec(8, ge=1, source=HARNESS, help="rows per device per validation step")
    lr_scheduler: str = spec("cosine", choices=LR_SCHEDULERS, source=LOSHCHILOV_2017,
                             help="transformers' lr_scheduler_type")
    warmup_ratio: float = spec(0.03, ge=0, lt=1, source=DETTMERS_2023,
                               help="share of the steps spent warming up (transformers reads 1 or more as a "
                                    "step count)")
    weight_decay: float = spec(0.0, ge=0, source=DETTMERS_2023, help="AdamW weight decay")
    max_grad_norm: float = spec(0.3, gt=0, source=DETTMERS_2023, help="gradient clipping norm")
    optimizer: str = spec("adamw_torch", choices=OPTIMIZERS, source=HU_2021, help="transformers' optim name")
    max_length: int = spec(1024, ge=1, source=HARNESS, help="tokens per row; longer rows are cut")
    gradient_checkpointing: bool = spec(False, source=HARNESS,
                                        help="recompute activations in the backward: less memory, ~1/3 more compute")
    early_stopping_patience: int | None = spec(2, ge=1, source=PRECHELT_1998,
                                               help="validations without improvement before stopping; null: never")
    eval_steps: int | None = spec(None, ge=1, source=HARNESS,
                                  help="validation loss every N steps; null: once per epoch")
    checkpoint_steps: int | None = spec(None, ge=1, source=HARNESS,
                                        help="checkpoint every N steps; null: once per epoch, at most every 50 steps")
    logging_steps: int = spec(1, ge=1, source=HARNESS, help="loss logged every N steps")
    dtype: Dtype = spec("auto", source=HARNESS,
                        help="auto: float32 on CPU, bfloat16 on CUDA with bf16 support (else float16)")


@dataclass
class SftHyperparameters(TrainingHyperparameters):
    """Plus what the supervised loop (``ftharness.training.sft.run_sft``) reads."""

    padding_free: bool = spec(True, source=KRELL_2021, help="flattened batches where the attention kernel allows")
    prompt_loss_weight: float = spec(0.0, ge=0, le=1, source=DETTMERS_2023,
                                     help="loss weight of prompt tokens (QLoRA trains on the response only)")


@dataclass
class LoraSettings:
    """PEFT ``LoraConfig`` fields."""

    r: int = spec(16, ge=1, source=RASCHKA_2023, help="LoRA rank")
    lora_alpha: int = spec(32, gt=0, source=RASCHKA_2023, help="LoRA scaling numerator (the scale is alpha / r)")
    lora_dropout: float = spec(0.05, ge=0, lt=1, source=DETTMERS_2023, help="dropout on the LoRA input")
    target_modules: str | list[str] = spec("all-linear", min_len=1, source=DETTMERS_2023,
                                           help="module names (or all-linear) that get adapters")


@dataclass
class PromptLearningSettings:
    """PEFT prefix / prompt tuning."""

    num_virtual_tokens: int = spec(20, ge=1, source=LESTER_2021, help="virtual tokens prepended to every row")


def planner_inputs(hp: Any) -> dict[str, Any]:
    """The planner's request fields (``ftharness.planner.PlanRequest``) that the shared bases carry: batch
    size and epochs of :class:`TrainingHyperparameters`, rank and target modules of :class:`LoraSettings`.
    What a trainer's ``plan_inputs`` starts from; the planner's own defaults stand for the rest."""
    out: dict[str, Any] = {}
    if isinstance(hp, TrainingHyperparameters):
        out.update(batch_size=hp.batch_size, epochs=hp.epochs)
    if isinstance(hp, LoraSettings):
        targets = hp.target_modules
        out.update(rank=hp.r, targets=",".join(targets) if isinstance(targets, list) else targets)
    return out
