"""The supervised finetuning loop the peft and unsloth trainers share (TRL's ``SFTTrainer``).

What the harness adds on top of a plain ``SFTTrainer``: its own tokenisation (the baselines' exact prompt
template, completion-only labels, optional prompt-loss weight), padding-free batches, checkpoints inside the
artifact's ``work/`` folder with resume, eval loss each epoch with early stopping that restores the best
weights, measured time / tokens / memory, and progress through :mod:`ftharness.ui`. TRL 1.16 API facts:
``processing_class=`` (not ``tokenizer=``), ``max_length`` (not ``max_seq_length``); ``SFTConfig`` on a
CPU-only machine needs ``use_cpu=True`` and ``bf16=False``.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any

from ftharness import faults
from ftharness.hyperparameters import SftHyperparameters, TrainingHyperparameters
from ftharness.plugins import cuda_available
from ftharness.training.trainer import TrainJob, TrainResult

CHECKPOINT_PREFIX = "checkpoint-"
MAX_CHECKPOINT_STEPS = 50  # at most this many optimiser steps are lost to an interruption by default


def work_dir(job: TrainJob) -> Path:
    return job.out_dir / "work"


def last_checkpoint(folder: Path) -> Path | None:
    """The newest complete ``checkpoint-N`` folder (trainer_state.json is written last by transformers)."""
    if not folder.is_dir():
        return None
    found = []
    for p in folder.iterdir():
        if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIX) and (p / "trainer_state.json").exists():
            try:
                found.append((int(p.name[len(CHECKPOINT_PREFIX):]), p))
            except ValueError:
                continue
    return max(found)[1] if found else None


def attention_implementation(model: Any) -> str:
    return str(getattr(getattr(model, "config", None), "_attn_implementation", None) or "eager")


def varlen_attention(model: Any) -> bool:
    """Whether the attention kernel splits a flattened (padding-free) batch at its sequence starts by itself.

    Flash-attention kernels take the sequence boundaries as cumulative lengths (Dao 2023, FlashAttention-2,
    arXiv:2307.08691, variable-length API), so a flattened batch costs what its sequences cost. SDPA and eager
    attention instead get one block-diagonal mask over the whole flattened batch, quadratic in its total
    length: on the 2-core CPU one LoRA step on 8 rows of ~290 tokens took 25.0 s padding-free vs 16.1 s padded
    (benchmarks/train.py's investigation), so the harness pads there.
    """
    return attention_implementation(model).startswith("flash")


def torch_dtype(name: str) -> Any:
    """A :data:`~ftharness.hyperparameters.Dtype` name as a torch dtype. ``auto``: float32 on CPU (bf16
    generation measured ~2x slower than fp32 on the 2-core CPU), bfloat16 on CUDA when supported (else float16)."""
    import torch

    if name == "auto":
        if cuda_available():
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def steps_per_epoch(n_rows: int, hp: TrainingHyperparameters, world_size: int = 1) -> int:
    per_step = hp.batch_size * hp.grad_accum * max(world_size, 1)
    return max(1, math.ceil(n_rows / per_step))


def common_args(job: TrainJob, hp: TrainingHyperparameters, n_rows: int, *, has_eval: bool, dtype: Any) -> dict[str, Any]:
    """``TrainingArguments`` fields shared by the SFT and DPO configs."""
    import torch

    world = int(os.environ.get("WORLD_SIZE", "1"))
    per_epoch = steps_per_epoch(n_rows, hp, world)
    save_steps = hp.checkpoint_steps or min(per_epoch, MAX_CHECKPOINT_STEPS)
    cuda = cuda_available()
    return dict(
        output_dir=str(work_dir(job)),
        num_train_epochs=hp.epochs,
        max_steps=hp.max_steps or -1,
        per_device_train_batch_size=hp.batch_size,
        per_device_eval_batch_size=hp.eval_batch_size,
        gradient_accumulation_steps=hp.grad_accum,
        learning_rate=hp.learning_rate,
        lr_scheduler_type=hp.lr_scheduler,
        warmup_steps=hp.warmup_ratio,  # a float < 1 is a ratio of the total steps (transformers 5)
        weight_decay=hp.weight_decay,
        max_grad_norm=hp.max_grad_norm,
        optim=hp.optimizer,
        logging_steps=hp.logging_steps,
        # "Once per epoch" counted in steps: the evaluation then runs in the same step end as a checkpoint
        # that falls there, and before it, so the checkpoint holds that evaluation (its loss in the log
        # history, the random state after it) and a run resumed from it goes on exactly as one never stopped.
        eval_strategy="steps" if has_eval else "no",
        eval_steps=hp.eval_steps or per_epoch,
        save_strategy="steps",
        save_steps=save_steps,
        save_total_limit=1,
        report_to="none",
        use_cpu=not cuda,
        bf16=cuda and dtype == torch.bfloat16,
        fp16=cuda and dtype == torch.float16,
        gradient_checkpointing=hp.gradient_checkpointing,
        seed=job.spec.seed,
        data_seed=job.spec.seed,
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False if world > 1 else None,
    )


def trainer_callbacks(job: TrainJob, hp: TrainingHyperparameters, label: str) -> tuple[Any, list[Any]]:
    """Early stopping that restores the best weights, the progress bar, then the job's own callbacks."""
    from ftharness.training.callbacks import best_eval_callback, fault_callback, progress_callback

    best = best_eval_callback(hp.early_stopping_patience, work_dir(job) / "best_trainable.pt")
    callbacks = [best, *([progress_callback(label)] if job.progress else []), *job.callbacks]
    if faults.armed("train-step"):  # test hook (ftharness.faults): absent unless a test sets it
        callbacks.append(fault_callback())
    return best, callbacks


def fused_head_compacts(device: Any) -> bool:
    """Whether TRL's fused LM head (what ``SFTTrainer.compute_loss`` calls) already projects only the labelled
    positions on ``device``: it does with its Triton kernels (CUDA, XPU); elsewhere, the CPU included, it projects
    every position, prompt and padding too, and folds each [tokens, 32768] tile with several extra passes for
    its entropy and accuracy metrics."""
    try:
        from trl.kernels.chunked_logprob import _use_triton
    except ImportError:  # another TRL layout: judge by the device alone
        return getattr(device, "type", str(device)) in ("cuda", "xpu")
    return bool(_use_triton(device))


def selected_logits_supported(model: Any) -> bool:
    """Whether ``model`` (bare, PEFT- or DDP-wrapped) returns logits for chosen positions only when called with
    a boolean (batch, seq) mask as ``logits_to_keep`` (transformers 5's ``slice_logits_to_keep``: the result is
    the (kept, vocab) logits). Prompt-learning adapters prepend virtual tokens, which shifts every position."""
    import inspect

    import torch

    try:
        from transformers.modeling_utils import slice_logits_to_keep
    except ImportError:
        return False
    try:
        probe = slice_logits_to_keep(torch.zeros(2, 3, 1), torch.tensor([[True, False, False], [False, True, True]]))
    except (IndexError, RuntimeError, TypeError):
        return False
    if tuple(probe.shape) != (3, 1):
        return False
    inner = getattr(model, "module", model)  # DistributedDataParallel
    peft_config = getattr(inner, "active_peft_config", None)
    if peft_config is not None and getattr(peft_config, "is_prompt_learning", False):
        return False
    base = inner.get_base_model() if hasattr(inner, "get_base_model") else inner
    try:
        return "logits_to_keep" in inspect.signature(type(base).forward).parameters
    except (TypeError, ValueError):
        return False


def completion_only_loss(model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> Any:
    """The completion-only loss with the vocabulary projection applied to the labelled positions only.

    Position t predicts label t+1, so the kept positions are those whose next label is not -100; the body runs
    on every token as before, the lm_head on the kept ones only (``logits_to_keep`` as a boolean mask). The loss
    is the sum of their negative log-likelihoods divided by ``num_items_in_batch`` when the Trainer counted the
    labelled tokens of all its accumulated micro-batches, else by their count in this batch: what
    ``SFTTrainer.compute_loss`` and transformers' ``ForCausalLMLoss`` compute from the full logits (log-softmax
    in float32, as both upcast).
    """
    import torch

    labels = inputs["labels"]
    targets = labels[:, 1:]
    valid = targets != -100
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = valid
    logits = model(**{k: v for k, v in inputs.items() if k != "labels"}, logits_to_keep=keep).logits
    kept = int(valid.sum())
    if logits.dim() != 2 or logits.size(0) != kept:
        raise RuntimeError(f"the model returned logits of shape {tuple(logits.shape)} for {kept} kept positions: "
                           "its forward does not select positions by a boolean logits_to_keep mask")
    nll = torch.nn.functional.cross_entropy(logits.float(), targets[valid], reduction="sum")
    count = valid.sum() if num_items_in_batch is None else num_items_in_batch
    return nll / torch.as_tensor(count, device=nll.device).clamp(min=1)


def make_sft_trainer_class() -> type:
    """``SFTTrainer`` that counts the real tokens it trains on, computes the completion-only loss with the
    vocabulary projection on completion tokens only where TRL would project every token (see
    ``completion_only_loss``; on the 2-core CPU that was about half of a LoRA step's time on the embedded model,
    benchmarks/train.py), and, for 0 < prompt_loss_weight < 1, computes the weighted loss:
    sum_t w_t * nll_t / sum_t w_t with w = prompt_loss_weight on prompt tokens and 1 on completion tokens
    (TRL itself can only mask tokens, not weight them)."""
    import torch
    from trl import SFTTrainer

    from ftharness.training.sequences import batch_tokens

    class HarnessSFTTrainer(SFTTrainer):
        trained_tokens = 0
        _selected_logits: bool | None = None  # decided on the first batch

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if model.training:
                self.trained_tokens += batch_tokens(inputs)
            weights = inputs.pop("loss_weights", None)
            if weights is None:
                if (return_outputs and not model.training and self.compute_metrics is None
                        and self._completion_logits_only(model, inputs)):
                    # the validation loss (the Trainer reads only the loss without compute_metrics): the
                    # vocabulary projected at labelled positions only, not a float32 logits tensor per token
                    inputs["use_cache"] = False
                    loss = completion_only_loss(model, inputs, num_items_in_batch)
                    return loss, {"loss": loss}
                if return_outputs or not self._completion_logits_only(model, inputs):
                    return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                                num_items_in_batch=num_items_in_batch)
                inputs["use_cache"] = False
                loss = completion_only_loss(model, inputs, num_items_in_batch)
                if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                    # as SFTTrainer: num_items_in_batch counts every rank's tokens and DDP averages the gradients
                    loss = loss * (self.accelerator.num_processes // self.get_tp_size())
                self._count_tokens(inputs)
                return loss
            inputs["use_cache"] = False
            outputs = model(**inputs, fused_lm_head=True)
            shifted = weights[:, 1:].to(outputs.log_probs.dtype)
            valid = inputs["labels"][:, 1:] != -100
            shifted = shifted * valid
            loss = -(outputs.log_probs * shifted).sum() / shifted.sum().clamp(min=1e-8)
            if num_items_in_batch is not None and self.model_accepts_loss_kwargs:
                # The Trainer does not divide by the accumulation steps when it counted the items itself:
                # weigh this micro-batch by its share of the accumulated tokens instead.
                loss = loss * valid.sum() / torch.as_tensor(num_items_in_batch, device=loss.device).clamp(min=1)
            return (loss, outputs) if return_outputs else loss

        def _get_train_sampler(self, *args, **kwargs):
            """Rows grouped by length over what one optimizer step takes on *every* process: transformers
            groups by one process's batch, so N processes would see other rows per step than one process with
            N times the batch (accelerate then hands each process its consecutive part of the group)."""
            sampler = super()._get_train_sampler(*args, **kwargs)
            if hasattr(sampler, "lengths") and hasattr(sampler, "batch_size") and self.accelerator.num_processes > 1:
                sampler.batch_size *= self.accelerator.num_processes
            return sampler

        def _completion_logits_only(self, model, inputs) -> bool:
            """The fast path where it changes something and the plain loss is all the configuration asks for
            (no label smoothing, custom loss function, DFT loss or MoE auxiliary loss)."""
            if self._selected_logits is None:
                self._selected_logits = (
                    "labels" in inputs
                    and not fused_head_compacts(inputs["labels"].device)
                    and self.label_smoother is None
                    and self.compute_loss_func is None
                    and getattr(self.args, "loss_type", "nll") == "nll"
                    and not getattr(self, "aux_loss_enabled", False)
                    and selected_logits_supported(model)
                )
            return self._selected_logits

        def _count_tokens(self, inputs) -> None:
            """SFTTrainer's logged ``num_tokens``. Its entropy and mean token accuracy are left out: they cost
            1.5 % of a CPU step over the kept positions, and nothing of the harness reads them (the loss curve
            keeps the losses, learning rate and gradient norm)."""
            if not hasattr(self, "_total_train_tokens") or getattr(self, "_metrics", None) is None:
                return
            mode = "train" if self.model.training else "eval"
            if mode == "train":
                if "attention_mask" in inputs:
                    local = inputs["attention_mask"].sum()
                else:
                    local = torch.tensor(inputs["input_ids"].size(1), device=inputs["input_ids"].device)
                local = self.accelerator.gather_for_metrics(local).sum().item()
                self._total_train_tokens += local // getattr(self, "_tp_size", 1)
            self._metrics[mode]["num_tokens"] = [self._total_train_tokens]

    return HarnessSFTTrainer


def run_sft(job: TrainJob, model: Any, tokenizer: Any, hp: SftHyperparameters, *, padding_free: bool,
            notes: dict[str, Any] | None = None) -> TrainResult:
    """Train ``model`` (already wrapped for its method) on ``job``'s examples and save it to ``job.out_dir``."""
    from ftharness.training.sequences import sft_rows

    prepare_tokenizer(tokenizer)
    train_rows, stats = sft_rows(tokenizer, job.train, job.system_prompt, max_length=hp.max_length,
                                 prompt_loss_weight=hp.prompt_loss_weight)
    eval_rows = None
    if job.eval:
        eval_rows, _ = sft_rows(tokenizer, job.eval, job.system_prompt, max_length=hp.max_length)
        eval_rows = [{k: r[k] for k in ("input_ids", "labels")} for r in eval_rows]  # completion-only eval loss
    return train_on_rows(job, model, tokenizer, hp, train_rows, eval_rows, stats, padding_free=padding_free,
                         notes=notes)


def prepare_tokenizer(tokenizer: Any) -> None:
    """Right padding, with the end-of-sequence token as the pad token when the tokenizer has none."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"


def train_on_rows(job: TrainJob, model: Any, tokenizer: Any, hp: TrainingHyperparameters,
                  train_rows: list[dict[str, Any]], eval_rows: list[dict[str, Any]] | None, stats: dict[str, int], *,
                  padding_free: bool, notes: dict[str, Any] | None = None) -> TrainResult:
    """Train ``model`` on tokenised rows (``input_ids``, ``labels``, optional ``loss_weights``; what
    :mod:`ftharness.training.sequences` builds) and save it to ``job.out_dir``; ``stats`` (the counts of
    what the rows were built from) go into the result's ``extra["sequences"]``."""
    import datasets
    from transformers import set_seed
    from trl import SFTConfig

    from ftharness.training.callbacks import loss_curve
    from ftharness.training.measure import Measure, tokens_per_s
    from ftharness.training.sequences import SequenceCollator

    set_seed(job.spec.seed)
    notes = dict(notes or {})
    if padding_free and not varlen_attention(model):
        padding_free = False
        notes["padding_free_off"] = (
            f"{attention_implementation(model)} attention masks a flattened batch as a whole: padded batches "
            "grouped by length instead (padding-free pays off with flash-attention kernels)"
        )
    prepare_tokenizer(tokenizer)
    dtype = torch_dtype(hp.dtype)
    best, callbacks = trainer_callbacks(job, hp, f"training {job.spec.name}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the libraries' deprecation notices, not the user's
        args = SFTConfig(
            **common_args(job, hp, len(train_rows), has_eval=eval_rows is not None, dtype=dtype),
            max_length=None,  # sequences are already cut to max_length by sft_rows
            padding_free=False,  # the harness's collator flattens the batch itself (TRL refuses a custom one)
            dataset_kwargs={"skip_prepare_dataset": True},
            # Padded batches: rows of similar length together, so little of each batch is padding.
            train_sampling_strategy="random" if padding_free else "group_by_length",
        )
        train_ds = datasets.Dataset.from_list(
            [{**{k: v for k, v in r.items() if k != "completion_start"}, "length": len(r["input_ids"])}
             for r in train_rows])
        eval_ds = datasets.Dataset.from_list(eval_rows) if eval_rows else None
        prepare_launched()  # after the arguments (which reset accelerate's state), before the trainer's accelerator
        trainer = make_sft_trainer_class()(
            model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds, processing_class=tokenizer,
            data_collator=SequenceCollator(tokenizer.pad_token_id, padding_free=padding_free), callbacks=callbacks,
        )
    quiet(trainer)
    check_launched(trainer.accelerator)
    resume = last_checkpoint(work_dir(job)) if job.resume else None
    with Measure() as measured, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # deprecation notices of the libraries, not the user's
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    save_trained(trainer, trainer.model if not hasattr(trainer.model, "module") else trainer.model.module,
                 tokenizer, job.out_dir)
    m = measured.result
    trainable, total = count_parameters(trainer.model)
    extra = {
        "resumed_from_step": int(resume.name[len(CHECKPOINT_PREFIX):]) if resume else None,
        "global_step": int(trainer.state.global_step),
        "stopped_early": best.stopped_early,
        "restored_best_from_step": best.restored_from_step,
        "padding_free": padding_free,
        "start_memory_bytes": m.start_memory_bytes,
        "world_size": trainer.accelerator.num_processes,
        "sequences": stats,
        "final_eval_loss": _last(trainer.state.log_history, "eval_loss"),
        "trainable_sha256": trainable_fingerprint(trainer.model),
        **(notes or {}),
    }
    return TrainResult(
        wall_s=m.wall_s, train_tokens=(tokens := world_tokens(trainer)), tokens_per_s=tokens_per_s(tokens, m.wall_s),
        peak_memory_bytes=m.peak_memory_bytes, memory_kind=m.memory_kind, trainable_params=trainable,
        total_params=total, loss_curve=loss_curve(trainer.state.log_history), extra=extra,
    )


def quiet(trainer: Any) -> None:
    """Drop the Trainer's own stdout printer: progress goes to stderr, stdout is kept for results/--json."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)


def _last(history: list[dict[str, Any]], key: str) -> float | None:
    values = [h[key] for h in history if key in h]
    return float(values[-1]) if values else None


def trainable_fingerprint(model: Any) -> str:
    """sha256 of the trainable tensors' bytes in name order: processes of one distributed run must agree.
    A sharded parameter (FSDP's DTensor) is gathered whole first: every process calls this, in the same order."""
    import hashlib

    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters(), key=lambda x: x[0]):
        if p.requires_grad:
            whole = p.full_tensor() if hasattr(p, "full_tensor") else p
            h.update(name.encode())
            h.update(whole.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def prepare_launched() -> None:
    """In a worker of an FSDP launch on a machine without CUDA: let accelerate prepare FSDP on CPU
    (:func:`ftharness.training.launch.fsdp_on_cpu` says why)."""
    from ftharness.training.launch import STRATEGY_ENV

    if os.environ.get(STRATEGY_ENV) == "fsdp" and not cuda_available():
        from ftharness.training.launch import fsdp_on_cpu

        fsdp_on_cpu()


def world_tokens(trainer: Any) -> int:
    """The tokens every process of the training trained on, together (each counts its own batches)."""
    if trainer.accelerator.num_processes == 1:
        return int(trainer.trained_tokens)
    import torch

    count = torch.tensor(int(trainer.trained_tokens), device=trainer.accelerator.device)
    return int(trainer.accelerator.reduce(count, reduction="sum").item())


def check_launched(accelerator: Any) -> None:
    """In a worker of a launched training (:mod:`ftharness.training.launch`): accelerate prepared the strategy
    the launch asked for."""
    from ftharness.training.launch import STRATEGY_ENV

    strategy = os.environ.get(STRATEGY_ENV)
    if strategy:
        from ftharness.training.launch import check_prepared

        check_prepared(accelerator, strategy)


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) as PEFT's ``get_nb_trainable_parameters`` counts them (4-bit weights count 2 per
    stored byte), else by ``numel``."""
    fn = getattr(model, "get_nb_trainable_parameters", None)
    if fn is not None:
        trainable, total = fn()
        return int(trainable), int(total)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return int(trainable), int(total)


def save_trained(trainer: Any, model: Any, tokenizer: Any, out_dir: Path) -> None:
    """Save what ``trainer`` trained (``model``, unwrapped) from the main process, every process waiting for
    it. Under FSDP the full state dict is gathered by every process together first, then rank 0 writes it."""
    state = trainer.accelerator.get_state_dict(trainer.model) if trainer.is_fsdp_enabled else None
    if trainer.accelerator.is_main_process:
        save_model(model, tokenizer, out_dir, state_dict=state)
    trainer.accelerator.wait_for_everyone()


def save_model(model: Any, tokenizer: Any, out_dir: Path, state_dict: dict[str, Any] | None = None) -> None:
    """PEFT models save their adapter (adapter_config.json + adapter_model.safetensors), others the full model;
    the tokenizer goes beside either so the folder is self-describing. ``state_dict``: the model's whole
    state gathered from its shards (FSDP), where the model itself holds only this process's part."""
    out_dir.mkdir(parents=True, exist_ok=True)
    given = {} if state_dict is None else {"state_dict": state_dict}
    if hasattr(model, "peft_config"):
        names = [n for n in model.peft_config if n != "ref"]  # DPO's frozen reference copy is not the result
        model.save_pretrained(str(out_dir), selected_adapters=names[:1] or None, safe_serialization=True, **given)
    else:
        model.save_pretrained(str(out_dir), safe_serialization=True, **given)
    tokenizer.save_pretrained(str(out_dir))
