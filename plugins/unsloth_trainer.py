"""The ``unsloth`` trainer: Unsloth's ``FastLanguageModel`` LoRA / QLoRA path, same artifact format as ``peft``.

Unsloth needs an NVIDIA GPU. It patches transformers/TRL when imported and, on a machine without CUDA,
silently falls back to plain code paths, so this module never imports it at the top: the CUDA check comes
first and ``unsloth`` is only looked up with ``find_spec`` until a training actually runs on a GPU.
Unsloth 2026.10 pins trl<=1.15, transformers<=5.17 and datasets<5: install it in an environment of its own
(``pip install 'ftharness[unsloth]'`` there), never beside the main stack.

Status: the GPU path follows Unsloth's documented API (``FastLanguageModel.from_pretrained(model_name,
max_seq_length, dtype, load_in_4bit)``, ``FastLanguageModel.get_peft_model(model, r, target_modules,
lora_alpha, lora_dropout, bias, use_gradient_checkpointing, random_state)``) and has not been run in this
project's CI, which has no GPU.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from typing import Any

from ftharness_plugins.peft_trainer import METHODS as PEFT_METHODS
from ftharness_plugins.peft_trainer import LoraHyperparameters

from ftharness.hookspecs import hookimpl
from ftharness.hyperparameters import planner_inputs

# Unsloth takes module names; "all-linear" in a spec means the attention and MLP projections of a
# Llama-style block (what PEFT's "all-linear" selects on these architectures, lm_head excluded).
ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class UnslothTrainer:
    name = "unsloth"
    # PEFT's LoRA and QLoRA, on CUDA only, from the base model only (no ``start_from``).
    methods = tuple(dataclasses.replace(m, requires_cuda=True, continues=False)
                    for m in PEFT_METHODS if m.name in ("lora", "qlora"))

    def hyperparameters(self, method: str) -> type:
        """PEFT's LoRA settings for both methods: Unsloth picks the compute dtype of its 4-bit base itself."""
        return LoraHyperparameters

    def plan_inputs(self, method: str, hp: Any) -> dict[str, Any]:
        """The planner's inputs: PEFT's LoRA or QLoRA memory model (Unsloth's own kernels save more)."""
        return {"method": method, **planner_inputs(hp)}

    def unavailable_reason(self, method: str | None = None) -> str | None:
        if importlib.util.find_spec("unsloth") is None:
            return ("unsloth is not installed; install it in an environment of its own with "
                    "`pip install 'ftharness[unsloth]'` (it pins older trl/transformers/datasets)")
        return None

    def train(self, job: Any) -> Any:
        from ftharness.errors import EnvironmentProblem
        from ftharness.plugins import cuda_available

        # train_candidate checks both first (the methods declare CUDA); a direct call must not reach the
        # import either: without CUDA, importing unsloth patches transformers and falls back silently.
        reason = None if cuda_available() else "needs an NVIDIA GPU with CUDA"
        reason = reason or self.unavailable_reason()
        if reason:
            raise EnvironmentProblem(f"trainer 'unsloth' cannot run here: {reason}")
        from unsloth import FastLanguageModel  # only here: importing it patches transformers

        from ftharness.training.sft import run_sft

        hp = job.hyperparameters
        model, tokenizer = FastLanguageModel.from_pretrained(
            model_name=str(job.base_model_path),
            max_seq_length=hp.max_length,
            dtype=None,  # Unsloth picks bf16 where supported, else fp16
            load_in_4bit=job.spec.method == "qlora",  # Unsloth's 4-bit loading is bitsandbytes NF4
        )
        targets = hp.target_modules
        model = FastLanguageModel.get_peft_model(
            model,
            r=hp.r,
            target_modules=ALL_LINEAR if targets == "all-linear" else targets,
            lora_alpha=hp.lora_alpha,
            lora_dropout=hp.lora_dropout,
            bias="none",
            use_gradient_checkpointing="unsloth" if hp.gradient_checkpointing else False,
            random_state=job.spec.seed,
        )
        notes = {"backend": "unsloth", "method": job.spec.method}
        if job.spec.method == "qlora":
            notes["quantization"] = "bitsandbytes nf4 (Unsloth 4-bit loading)"
        return run_sft(job, model, tokenizer, hp, padding_free=hp.padding_free, notes=notes)


@hookimpl
def register_trainers(register):
    register(UnslothTrainer())
