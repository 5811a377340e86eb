"""The ``trl-dpo`` trainer: Direct Preference Optimization (Rafailov et al. 2023) with TRL's DPOTrainer.

Always through a LoRA adapter, so no second copy of the model is held as the reference: on top of the base
model the reference is the base with the adapter disabled; on top of an SFT candidate (``start_from``) its
adapter is loaded trainable and TRL keeps a frozen copy of it as a second, small "ref" adapter, so the
reference is the SFT model, as DPO prescribes. Prompts are rendered with the baselines' template and the
answers end with the template's end-of-turn marker (``training_pair``). The reward margins and accuracies
TRL logs are kept in the loss curve and the result's ``extra``. Its hyperparameters:
:class:`DpoHyperparameters` (TRL's ``DPOConfig`` through the harness's training arguments, and the LoRA
adapter's settings).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

from ftharness.hookspecs import Method, hookimpl
from ftharness.hyperparameters import LoraSettings, TrainingHyperparameters, planner_inputs
from ftharness.training.trainer import missing_training_libraries
from ftharness.typed import like, spec

RAFAILOV_2023 = "Rafailov et al. 2023, Direct Preference Optimization (arXiv:2305.18290): beta 0.1"
TUNSTALL_2023 = ("Tunstall et al. 2023, Zephyr (arXiv:2310.16944): DPO with lr 5e-7 full; LoRA adapters take "
                 "~10-100x higher lr (TRL DPO docs use 5e-6 to 5e-5 for LoRA)")


@dataclass
class DpoHyperparameters(LoraSettings, TrainingHyperparameters):
    """DPO through a LoRA adapter. No padding-free batches or prompt-loss weight: DPO pads chosen/rejected
    pairs and scores completions only."""

    epochs: float = like(TrainingHyperparameters, "epochs", 1.0, source=RAFAILOV_2023)
    learning_rate: float = like(TrainingHyperparameters, "learning_rate", 5.0e-6, source=TUNSTALL_2023)
    max_grad_norm: float = like(TrainingHyperparameters, "max_grad_norm", 1.0, source=TUNSTALL_2023)
    beta: float = spec(0.1, gt=0, source=RAFAILOV_2023,
                       help="strength of the pull towards the reference model (the KL penalty's weight)")


class DpoTrainer:
    name = "trl-dpo"
    # Trains on preference pairs; the result is a LoRA adapter, which folds into the base weights.
    methods = (Method("dpo", "DPO", data="preference", mergeable=True),)

    def hyperparameters(self, method: str) -> type:
        return DpoHyperparameters

    def plan_inputs(self, method: str, hp: Any) -> dict[str, Any]:
        """The planner's inputs: DPO through a LoRA adapter (the reference is the adapter-disabled model)."""
        return {"method": "dpo", "dpo_base": "lora", **planner_inputs(hp)}

    def unavailable_reason(self, method: str | None = None) -> str | None:
        return missing_training_libraries()

    def train(self, job: Any) -> Any:
        return train_dpo(job)


def preference_rows(tokenizer: Any, examples: list[Any], system_prompt: str | None) -> list[dict[str, str]]:
    from ftharness.errors import BadInput
    from ftharness.models.prompts import render_prompt, training_pair
    from ftharness.training.sequences import example_messages

    rows = []
    for ex in examples:
        if ex.chosen is None or ex.rejected is None:
            raise BadInput("DPO needs preference pairs (prompt, chosen, rejected); this example has none",
                           file=ex.file or None, line=ex.line or None, field="chosen")
        messages = example_messages(system_prompt, ex)
        rows.append({
            "prompt": render_prompt(tokenizer, messages),
            "chosen": training_pair(tokenizer, messages, ex.chosen)[1],
            "rejected": training_pair(tokenizer, messages, ex.rejected)[1],
        })
    return rows


def train_dpo(job: Any) -> Any:
    import datasets
    from ftharness_plugins.peft_trainer import load_base, peft_config
    from peft import PeftModel
    from transformers import set_seed
    from trl import DPOConfig, DPOTrainer

    from ftharness.training.callbacks import loss_curve
    from ftharness.training.measure import Measure, tokens_per_s
    from ftharness.training.sequences import batch_tokens
    from ftharness.training.sft import (
        CHECKPOINT_PREFIX,
        check_launched,
        common_args,
        count_parameters,
        last_checkpoint,
        prepare_launched,
        quiet,
        save_trained,
        torch_dtype,
        trainer_callbacks,
        work_dir,
        world_tokens,
    )
    from ftharness.training.trainer import TrainResult

    hp = job.hyperparameters
    set_seed(job.spec.seed)
    model, tokenizer = load_base(job.base_model_path, "lora", hp)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    config = None
    if job.start_adapter is not None:
        model = PeftModel.from_pretrained(model, str(job.start_adapter), is_trainable=True)
        reference = "the start_from candidate (frozen copy of its adapter)"
    else:
        config = peft_config("lora", hp)
        reference = "the base model (adapter disabled)"
    train_rows = preference_rows(tokenizer, job.train, job.system_prompt)
    eval_rows = preference_rows(tokenizer, job.eval, job.system_prompt) if job.eval else None
    dtype = torch_dtype(hp.dtype)

    class CountingDPOTrainer(DPOTrainer):
        trained_tokens = 0

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if model.training:
                self.trained_tokens += batch_tokens(inputs)
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)

    best, callbacks = trainer_callbacks(job, hp, f"DPO {job.spec.name}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the libraries' deprecation notices, not the user's
        args = DPOConfig(**common_args(job, hp, len(train_rows), has_eval=eval_rows is not None, dtype=dtype),
                         beta=hp.beta, max_length=hp.max_length)
        prepare_launched()
        trainer = CountingDPOTrainer(
            model=model, ref_model=None, args=args, train_dataset=datasets.Dataset.from_list(train_rows),
            eval_dataset=datasets.Dataset.from_list(eval_rows) if eval_rows else None, processing_class=tokenizer,
            peft_config=config, callbacks=callbacks,
        )
    quiet(trainer)
    check_launched(trainer.accelerator)
    resume = last_checkpoint(work_dir(job)) if job.resume else None
    with Measure() as measured, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    unwrapped = trainer.accelerator.unwrap_model(trainer.model)
    save_trained(trainer, unwrapped, tokenizer, job.out_dir)
    history = trainer.state.log_history
    trainable, total = count_parameters(unwrapped)
    m = measured.result

    def last(key: str) -> float | None:
        values = [h[key] for h in history if key in h]
        return float(values[-1]) if values else None

    extra = {
        "reference": reference,
        "beta": hp.beta,
        "rewards/margins": last("rewards/margins"),
        "rewards/accuracies": last("rewards/accuracies"),
        "eval_rewards/margins": last("eval_rewards/margins"),
        "eval_rewards/accuracies": last("eval_rewards/accuracies"),
        "final_eval_loss": last("eval_loss"),
        "resumed_from_step": int(resume.name[len(CHECKPOINT_PREFIX):]) if resume else None,
        "global_step": int(trainer.state.global_step),
        "stopped_early": best.stopped_early,
        "restored_best_from_step": best.restored_from_step,
        "start_memory_bytes": m.start_memory_bytes,
        "world_size": trainer.accelerator.num_processes,
        "pairs": len(train_rows),
    }
    return TrainResult(
        wall_s=m.wall_s, train_tokens=(tokens := world_tokens(trainer)),
        tokens_per_s=tokens_per_s(tokens, m.wall_s), peak_memory_bytes=m.peak_memory_bytes,
        memory_kind=m.memory_kind, trainable_params=trainable, total_params=total, loss_curve=loss_curve(history),
        extra=extra,
    )


@hookimpl
def register_trainers(register):
    register(DpoTrainer())
