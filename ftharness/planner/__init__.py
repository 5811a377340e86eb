"""ftharness.planner: will it fit, how long, how much? Peak training memory, time and cost from a model's
shape, a method and a GPU (`ftharness plan`). Formulas live in :mod:`ftharness.planner.memory`, data in
``planner/data/*.yaml``. No heavy imports: this answers in milliseconds without torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ftharness.errors import BadInput
from ftharness.hyperparameters import LoraSettings, PromptLearningSettings, TrainingHyperparameters
from ftharness.planner import memory as M
from ftharness.planner.catalogue import Gpu, ModelShape, get_gpu, gpu_names, resolve_model
from ftharness.planner.strategies import STRATEGIES, STRATEGY_NAMES
from ftharness.typed import MAX_INT, like, spec

__all__ = ["Plan", "PlanRequest", "estimate"]

ATTENTIONS = ("eager", "sdpa", "flash")
DPO_BASES = ("lora", "qlora", "full")
CORPUS_ADAPTERS = ("lora", "full")  # what continued pretraining trains (the peft trainer's `adapter`)
CONTINUED_PRETRAINING = "continued-pretraining"
DISTILL = "distill"
STUDENTS = ("lora", "dora")  # what a distilled student trains as (the peft trainer's `student`)


@dataclass
class PlanRequest:
    """One `ftharness plan` question; fields are named as the command's flags (``--seq-len``), and the ones
    that are training hyperparameters carry the ranges of :mod:`ftharness.hyperparameters`, so the
    planner refuses what a training refuses. Checked where it is read (:func:`ftharness.typed.flag_values`,
    :func:`ftharness.typed.from_mapping`); :func:`estimate` trusts it."""

    model: str = spec(help="preset name (e.g. llama-3-8b) or a Hugging Face config.json")
    method: str = spec("lora", help="a training method the installed trainers declare (`ftharness plugins`)")
    rank: int = like(LoraSettings, "r", 16, help="LoRA/QLoRA/DoRA rank")
    targets: str = spec("all-linear", help="q_proj,v_proj,... or all-linear")
    precision: str = spec("bf16", choices=tuple(M.PRECISION_BYTES), help="weights and activations")
    optimizer: str = spec("adamw", choices=tuple(M.OPTIMIZER_STATE_BYTES), help="optimizer state kept per weight")
    batch_size: int = like(TrainingHyperparameters, "batch_size", 8, help="sequences per process (GPU) per step")
    seq_len: int = like(TrainingHyperparameters, "max_length", 512, help="tokens per sequence")
    grad_accum: int = like(TrainingHyperparameters, "grad_accum", 1)
    gradient_checkpointing: bool = like(TrainingHyperparameters, "gradient_checkpointing", False)
    gpu: str | None = spec(None, help="one catalogue GPU (default: every GPU of the catalogue)")
    processes: int = spec(1, ge=1, le=1024, help="training processes, one per GPU")
    strategy: str = spec("ddp", choices=STRATEGY_NAMES,
                         help="how the processes share the model: ddp (each holds all of it), fsdp (FSDP2 full "
                              "shard), deepspeed-zero2 (gradients and optimizer sharded), deepspeed-zero3 "
                              "(parameters too)")
    attention: str = spec("sdpa", choices=ATTENTIONS, help="attention kernel")
    lora_dropout: float = like(LoraSettings, "lora_dropout", 0.0)
    examples: int | None = spec(None, ge=1, help="training examples (time and cost)")
    epochs: float = like(TrainingHyperparameters, "epochs", 1.0, help="epochs over --examples")
    train_tokens: int | None = spec(None, ge=1, help="total training tokens (instead of --examples)")
    virtual_tokens: int = like(PromptLearningSettings, "num_virtual_tokens", 20, help="prefix / prompt tuning")
    dpo_base: str = spec("lora", choices=DPO_BASES,
                         help="what DPO trains (lora: the reference is the adapter-disabled model)")
    corpus_tokens: int | None = spec(None, ge=1, help="continued pretraining: tokens of the raw-text corpus "
                                                      "(`ftharness data inspect CORPUS`); trained tokens = this x "
                                                      "--epochs, packed into --seq-len blocks")
    adapter: str = spec("lora", choices=CORPUS_ADAPTERS,
                        help="what continued pretraining trains (lora: an adapter; full: every weight)")
    student: str = spec("lora", choices=STUDENTS, help="distill: the method the student trains as on the "
                                                       "teacher's labels (memory and time are that training's)")
    teacher_usd_per_million_tokens: float | None = spec(
        None, ge=0, help="distill: the teacher's price per million tokens, prompt and answer together; the "
        "labelling is priced at --examples x --seq-len tokens (every labelled example at the planned length)")


@dataclass
class Plan:
    request: PlanRequest
    shape: ModelShape
    total_params: int
    trainable_params: int
    components: dict[str, float]  # bytes
    peak_bytes: float
    device_bytes: float
    peak_phase: str
    rows: list[dict[str, Any]]
    train_tokens: int | None
    flops: float | None
    assumptions: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    teacher: dict[str, Any] | None = None  # distill: the teacher's labelling (examples, tokens, usd)

    @property
    def peak_gb(self) -> float:
        return self.peak_bytes / M.GB

    @property
    def device_gb(self) -> float:
        return self.device_bytes / M.GB

    def to_dict(self) -> dict[str, Any]:
        r = self.request
        return {
            "model": self.shape.name,
            "method": r.method,
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "components_gb": {k: round(v / M.GB, 3) for k, v in self.components.items()},
            "peak_gb": round(self.peak_gb, 3),
            "device_gb": round(self.device_gb, 3),
            "peak_phase": self.peak_phase,
            "gpus": self.rows,
            "processes": r.processes,
            "strategy": r.strategy,
            "train_tokens": self.train_tokens,
            "train_flops": self.flops,
            "assumptions": self.assumptions,
            "teacher": self.teacher,
            "warnings": self.warnings,
            "shape": self.shape.to_dict(),
        }


def _check(req: PlanRequest) -> None:
    """What no single field says: a method the planner models, and one measure of the training's length."""
    if req.method not in M.MODELLED_METHODS:
        raise BadInput(f"the planner has no memory model for {req.method!r}; it models: "
                       f"{', '.join(M.MODELLED_METHODS)}", field="method")
    given = [name for name, v in (("examples", req.examples), ("train_tokens", req.train_tokens),
                                  ("corpus_tokens", req.corpus_tokens)) if v is not None]
    if len(given) > 1:
        flags = " and ".join("--" + g.replace("_", "-") for g in given[:2])
        raise BadInput("give one of --examples (with --epochs), --train-tokens or --corpus-tokens (with --epochs), "
                       f"not both {flags}", field=given[1])
    if req.method == CONTINUED_PRETRAINING and req.examples is not None:
        raise BadInput("continued pretraining reads a corpus, not examples: give --corpus-tokens (with --epochs)",
                       field="examples")
    if req.teacher_usd_per_million_tokens is not None and req.method != DISTILL:
        raise BadInput("--teacher-usd-per-million-tokens is for --method distill", field="teacher_usd_per_million_tokens")
    if req.method != CONTINUED_PRETRAINING and req.corpus_tokens is not None:
        raise BadInput("--corpus-tokens is for --method continued-pretraining; give --examples or --train-tokens",
                       field="corpus_tokens")


def _train_method(req: PlanRequest) -> str:
    """The method whose weights, adapters and activations the training has: what DPO or continued
    pretraining trains through."""
    return {"dpo": req.dpo_base, CONTINUED_PRETRAINING: req.adapter, DISTILL: req.student}.get(req.method, req.method)


def estimate(req: PlanRequest) -> Plan:
    """Predict peak memory, device memory, time and cost of one training configuration."""
    _check(req)
    shape = resolve_model(req.model)
    gpus: list[Gpu] = [get_gpu(req.gpu)] if req.gpu else [get_gpu(n) for n in gpu_names()]
    method = _train_method(req)
    warnings: list[str] = []

    if method in ("lora", "qlora", "dora", "ia3") and not M.target_linears(shape, req.targets):
        names = sorted({m.name for m in shape.block_linears()})
        raise BadInput(f"no module of {shape.name} matches {req.targets!r}; its linear modules are: "
                       f"{', '.join(names)} (or all-linear)", field="targets")
    if method in ("lora", "qlora", "dora") and req.rank > shape.hidden:
        # a low-rank update of a layer has rank at most its smaller side; above the hidden size it holds
        # more parameters than the full update it approximates
        raise BadInput(f"rank {req.rank} is above {shape.name}'s hidden size {shape.hidden}: more trainable "
                       f"parameters than a full update; use at most {shape.hidden}", field="rank")
    if req.seq_len > shape.max_positions:
        warnings.append(f"seq_len {req.seq_len} exceeds the model's max_positions {shape.max_positions}")

    n = shape.total_params()
    t = M.trainable_params(shape, method, rank=req.rank, targets=req.targets, virtual_tokens=req.virtual_tokens)
    p_bytes = M.PRECISION_BYTES[req.precision]
    act_bytes = p_bytes
    full = method == "full"

    # weights, gradients, optimizer states per device, as the strategy shards them over the processes
    states = M.model_states(shape, STRATEGIES[req.strategy], req.processes, method=method, trainable=t,
                            precision_bytes=p_bytes, optimizer=req.optimizer,
                            dpo_reference=req.method == "dpo" and full)
    weights, grads, optimizer, reference = states.weights, states.gradients, states.optimizer, states.reference

    # activations and logits
    seqs = 2 if req.method == "dpo" else 1  # chosen + rejected per pair
    seq_eff = req.seq_len + (req.virtual_tokens if method == "prompt-tuning" else 0)
    tokens = req.batch_size * seq_eff * seqs
    setup = M.ActivationSetup(method=method, targets=req.targets, rank=req.rank, act_bytes=act_bytes,
                              attention=req.attention, lora_dropout=req.lora_dropout, seq_len=seq_eff,
                              virtual_tokens=req.virtual_tokens)
    per_layer = M.layer_activation_bytes_per_token(shape, setup)
    other = M.other_activation_bytes_per_token(shape, setup)
    logits = tokens * M.logits_bytes_per_token(shape, act_bytes)
    if req.gradient_checkpointing:
        # checkpoints: each block's input; the backward recomputes one block at a time
        activations = tokens * (shape.layers * act_bytes * shape.hidden + other)
        transient = max(logits, tokens * per_layer)
        loss_or_recompute = "recompute" if tokens * per_layer > logits else "loss"
    else:
        activations = tokens * (shape.layers * per_layer + other)
        transient = logits
        loss_or_recompute = "loss"

    overhead = 0.0
    if method == "qlora":  # bitsandbytes dequantises one weight at a time into the compute dtype
        overhead += max(m.d_in * m.d_out for m in shape.block_linears()) * act_bytes
    if method == "dora":  # PEFT builds an identity and the full LoRA weight to take DoRA's weight norm
        mods = M.target_linears(shape, req.targets)
        overhead += max((m.d_in * m.d_in + 2 * m.d_in * m.d_out) * M.ADAPTER_BYTES for m in mods)

    grads_at_fb = grads if req.grad_accum > 1 else 0.0
    persistent = weights + reference + optimizer + states.buckets
    fb_peak = persistent + grads_at_fb + activations + transient + overhead + states.gather
    optimizer_temp = states.step_temp  # foreach AdamW's fp32 temporary (+ DeepSpeed's fp32 gradient partition)
    step_peak = persistent + grads + optimizer_temp
    if fb_peak >= step_peak:
        peak, phase = fb_peak, f"backward start ({loss_or_recompute})"
    else:
        peak, phase = step_peak, "optimizer step"
    device = peak * (1 + M.ALLOCATOR_RESERVE) + M.CUDA_CONTEXT_GB * M.GB

    components = {
        "weights": weights,
        "gradients": grads,
        "optimizer": optimizer,
        "activations": activations,
        "logits": logits,
        "overhead": overhead + (optimizer_temp if phase == "optimizer step" else 0.0),
    }
    if req.strategy != "ddp":
        components["gather_buffers"] = states.gather  # forward/backward only
    if states.buckets:
        components["ddp_buckets"] = states.buckets
    if req.method == "dpo":
        components["reference"] = reference

    # time and cost
    train_tokens: int | None = req.train_tokens
    if train_tokens is None and req.examples is not None:
        tokens_total = req.examples * req.epochs * req.seq_len * seqs
        if not tokens_total <= MAX_INT:  # also catches an infinite product
            raise BadInput(f"examples x epochs x seq_len comes to more than {MAX_INT:_} training tokens",
                           field="examples")
        train_tokens = int(round(tokens_total))
    if train_tokens is None and req.corpus_tokens is not None:  # packed blocks: no padding, every token trains
        tokens_total = req.corpus_tokens * req.epochs
        if not tokens_total <= MAX_INT:
            raise BadInput(f"corpus tokens x epochs comes to more than {MAX_INT:_} training tokens",
                           field="corpus_tokens")
        train_tokens = int(round(tokens_total))
    flops = None
    if train_tokens is not None:
        per_token = M.flops_per_token(shape, method, seq_eff, gradient_checkpointing=req.gradient_checkpointing)
        if req.method == "dpo":
            per_token += 2 * shape.matmul_params()  # the reference model's forward pass
        flops = float(train_tokens) * per_token
    rows = [_gpu_row(g, device, flops, req, method) for g in gpus]
    if any(g.name == "t4" for g in gpus) and req.precision == "bf16" and req.gpu:
        warnings.append("the T4 has no bf16: use --precision fp16")

    assumptions = {
        "mfu": M.MFU,
        "qlora_speed_factor": round(M.QLORA_SPEED, 3) if method == "qlora" else None,
        "cuda_context_gb": M.CUDA_CONTEXT_GB,
        "allocator_reserve": M.ALLOCATOR_RESERVE,
        "adapter_dtype": (None if method == "full" else
                          f"{req.precision} with an fp32 master copy (DeepSpeed casts the model)"
                          if STRATEGIES[req.strategy].engine == "deepspeed" and p_bytes != 4 else
                          "fp32 (PEFT autocast_adapter_dtype default)"),
        "weights": _weights_note(method, req.precision, req.strategy),
        "optimizer_bytes_per_trainable_param": round(M.OPTIMIZER_STATE_BYTES[req.optimizer], 4),
        "tokens_per_step": tokens,
        "sequences_per_example": seqs,
        "train_tokens_from": ("--train-tokens" if req.train_tokens is not None else
                              "examples x epochs x seq_len (every example padded to seq_len)"
                              if req.examples is not None else
                              "corpus tokens x epochs (packed into seq_len blocks, no padding)"
                              if req.corpus_tokens is not None else None),
        "strategy": states.note + "; activations, logits and the loss are per process (--batch-size each)",
        "dpo_reference": (None if req.method != "dpo" else
                          "a second frozen copy" if full else "the adapter-disabled policy (no extra weights)"),
        "peak": "max of (backward start: weights+optimizer+activations+loss buffers+gather buffers, optimizer step)",
        "flops_per_token": "6N full, 4N frozen base, + attention 12*L*q_dim*s; +2N with checkpointing",
    }
    return Plan(request=req, shape=shape, total_params=n, trainable_params=t, components=components,
                peak_bytes=peak, device_bytes=device, peak_phase=phase, rows=rows, train_tokens=train_tokens,
                flops=flops, assumptions=assumptions, warnings=warnings, teacher=_teacher(req))


def _teacher(req: PlanRequest) -> dict[str, Any] | None:
    """What labelling a distilled student's data costs on top of training it: one teacher call per example,
    at most ``seq_len`` tokens each (prompt and answer: the planned training length bounds them), at the
    teacher's stated price. The teacher's time is not planned: it is a hosted API's rate limit or a local
    model's generation speed, which ``compare`` measures."""
    if req.method != DISTILL:
        return None
    tokens = req.examples * req.seq_len if req.examples is not None else None
    price = req.teacher_usd_per_million_tokens
    return {
        "examples": req.examples,
        "tokens_at_most": tokens,
        "usd_per_million_tokens": price,
        "usd_at_most": None if tokens is None or price is None else round(tokens * price / 1e6, 4),
    }


def _weights_note(method: str, precision: str, strategy: str = "ddp") -> str:
    engine = STRATEGIES[strategy].engine
    if method == "qlora":
        if engine != "ddp":
            return (f"block linears NF4 with double quantisation in a {precision} storage type (sharded QLoRA); "
                    f"embeddings, head and norms {precision}")
        return ("block linears NF4 with double quantisation (4.127 bits); embeddings, head and norms fp32 "
                "(peft.prepare_model_for_kbit_training)")
    if method == "full":
        if precision == "fp32":
            return "fp32 weights, fp32 gradients"
        if engine == "fsdp":
            return f"fp32 sharded weights and gradients, {precision} only for the gathered unit (FSDP2 mixed precision)"
        if engine == "deepspeed":
            return f"{precision} weights and gradients, fp32 master weights in the partitioned optimizer state"
        return f"mixed precision: fp32 master weights + {precision} autocast copy, fp32 gradients"
    if engine == "deepspeed" and precision != "fp32":
        return f"frozen base in {precision}, trainable adapters {precision} with fp32 master weights"
    return f"frozen base in {precision}, trainable adapters fp32"


def _gpu_row(gpu: Gpu, device_bytes: float, flops: float | None, req: PlanRequest, method: str) -> dict[str, Any]:
    hours = cost = None
    if flops is not None:
        speed = gpu.bf16_tflops * 1e12 * M.MFU * req.processes
        if method == "qlora":
            speed *= M.QLORA_SPEED
        hours = flops / speed / 3600
        if gpu.usd_per_hour is not None:
            cost = hours * gpu.usd_per_hour * req.processes
    return {
        "name": gpu.name,
        "vram_gb": gpu.vram_gb,
        "fits": device_bytes / M.GB <= gpu.vram_gb,
        "hours": None if hours is None else round(hours, 4),
        "cost_usd": None if cost is None else round(cost, 2),
        "usd_per_hour": gpu.usd_per_hour,
        "price_source": gpu.price_source,
        "price_date": gpu.price_date,
    }
