"""Every formula of the planner in one place: parameters, bytes, activations, logits, FLOPs.

Units: bytes and parameter counts; callers convert to GB (1e9 bytes, as `nvidia-smi` and the
published tables this model is checked against report them).

What the memory model describes: one training step of a Hugging Face transformers decoder with PEFT
adapters (or all weights trainable), the way `torch.cuda.max_memory_allocated` sees it. The activation
terms were derived from the tensors autograd saves in transformers' Llama-family modelling code and PEFT's
layers (checked term by term with `torch.autograd.graph.saved_tensors_hooks` on small models in
tests/test_planner.py), in the spirit of Korthikanti et al. 2022, "Reducing Activation Recomputation in
Large Transformer Models", sec. 4.1, whose 34*s*b*h + 5*a*s^2*b bytes per layer is the same count for
GPT-3's layer (fp16, dropout masks, eager attention).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ftharness.planner.catalogue import Linear, ModelShape

if TYPE_CHECKING:
    from ftharness.planner.strategies import Strategy

GB = 1e9

# --- bytes per element -------------------------------------------------------------------------------

PRECISION_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
ADAPTER_BYTES = 4  # PEFT keeps adapter weights in fp32 (get_peft_model(autocast_adapter_dtype=True), default)

# NF4 with double quantisation (Dettmers et al. 2023, "QLoRA", sec. 3): 4-bit values, one absmax per
# block of 64 quantised to 8 bits, and one fp32 second-level constant per 256 of those blocks:
# 4 + 8/64 + 32/(64*256) = 4.127 bits per weight.
NF4_DQ_BITS = 4 + 8 / 64 + 32 / (64 * 256)

# Optimizer state bytes per trainable parameter.
# adamw: exp_avg + exp_avg_sq in fp32 (Loshchilov & Hutter 2019; torch.optim.AdamW keeps them in the
#   parameter dtype, and PEFT's trainable parameters are fp32).
# adamw-8bit / paged-adamw-8bit: two 8-bit block-wise quantised states (Dettmers et al. 2022, "8-bit
#   Optimizers via Block-wise Quantization"): 2 bytes, plus one fp32 absmax per 2048 values per state.
# sgd: none (torch.optim.SGD and the HF Trainer default momentum=0; momentum would add 4 bytes).
OPTIMIZER_STATE_BYTES = {
    "adamw": 8.0,
    "adamw-8bit": 2.0 + 2 * 4 / 2048,
    "paged-adamw-8bit": 2.0 + 2 * 4 / 2048,
    "sgd": 0.0,
}

CUDA_CONTEXT_GB = 0.5  # CUDA context + kernels: in nvidia-smi, not in max_memory_allocated
ALLOCATOR_RESERVE = 0.10  # caching-allocator blocks reserved but not allocated, as a share of the peak

# The training methods these formulas model, by the names the trainers declare them under (the list of
# valid names is the trainers': ftharness.plugins.Plugins.methods). dpo, continued-pretraining and distill
# are modelled as the method they train through (planner.DPO_BASES, planner.CORPUS_ADAPTERS,
# planner.STUDENTS).
MODELLED_METHODS = ("full", "lora", "qlora", "dora", "ia3", "prefix", "prompt-tuning", "dpo", "continued-pretraining",
                    "distill")


# --- which modules a method adapts --------------------------------------------------------------------

def target_linears(shape: ModelShape, targets: str) -> list[Linear]:
    """The block's linears PEFT would adapt for ``targets``: "all-linear" (every linear in the blocks,
    not the output head, as PEFT's INCLUDE_LINEAR_LAYERS_SHORTHAND) or a comma list of module names."""
    linears = shape.block_linears()
    if targets.strip() == "all-linear":
        return linears
    wanted = {t.strip() for t in targets.split(",") if t.strip()}
    return [m for m in linears if m.name in wanted]


def ia3_feedforward(shape: ModelShape) -> str:
    """The module IA3 treats as feed-forward (scales its input rather than its output): the MLP's output
    projection, as in PEFT's default IA3 mapping for Llama (k_proj, v_proj, down_proj with down_proj
    feed-forward; Liu et al. 2022, "Few-Shot Parameter-Efficient Fine-Tuning is Better and Cheaper")."""
    return next(m.name for m in shape.block_linears() if m.group == "mlp_out")


# --- parameters ---------------------------------------------------------------------------------------

def trainable_params(shape: ModelShape, method: str, *, rank: int, targets: str, virtual_tokens: int) -> int:
    """Trainable parameters exactly as PEFT's ``get_nb_trainable_parameters()`` counts them.

    lora/qlora: r*(d_in + d_out) per adapted module (Hu et al. 2021); dora adds a magnitude vector of
    d_out per module (Liu et al. 2024, "DoRA"); ia3: d_out per module, d_in for the feed-forward one;
    prefix: virtual_tokens * layers * 2 * (kv_heads * head_dim) (Li & Liang 2021; PEFT sizes the prefix to
    the key/value width for grouped-query attention); prompt-tuning: virtual_tokens * hidden (Lester et
    al. 2021); full: every parameter. A method that trains through another (dpo) is passed as that one.
    """
    if method == "full":
        return shape.total_params()
    per_layer = 0
    mods = target_linears(shape, targets)
    if method in ("lora", "qlora", "dora"):
        per_layer = sum(rank * (m.d_in + m.d_out) for m in mods)
        if method == "dora":
            per_layer += sum(m.d_out for m in mods)
    elif method == "ia3":
        ff = ia3_feedforward(shape)
        per_layer = sum(m.d_in if m.name == ff and m.group == "mlp_out" else m.d_out for m in mods)
    elif method == "prefix":
        return virtual_tokens * shape.layers * 2 * shape.kv_dim
    elif method == "prompt-tuning":
        return virtual_tokens * shape.hidden
    return per_layer * shape.layers


def quantised_linear_params(shape: ModelShape) -> int:
    """Weights bitsandbytes stores in 4 bits: the blocks' linear weights (not biases, norms, embeddings
    or the output head, which transformers keeps unquantised)."""
    return shape.layers * sum(m.d_in * m.d_out for m in shape.block_linears())


# --- activations --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ActivationSetup:
    """What the activation count depends on besides the shape."""

    method: str  # full | lora | qlora | dora | ia3 | prefix | prompt-tuning (dpo resolved by the caller)
    targets: str
    rank: int
    act_bytes: int  # bytes of one activation element (the compute dtype)
    attention: str  # eager | sdpa | flash
    lora_dropout: float
    seq_len: int
    virtual_tokens: int = 0


def _group_input_bytes(linears: list[Linear], adapted: set[str], s: ActivationSetup, d_in: int,
                       full: bool, shared: bool = False, in_bytes: int | None = None) -> float:
    """Bytes per token saved for the input of one group of linears that read the same tensor.

    A trainable linear saves its input once for the weight gradient; a frozen one saves nothing (its
    input gradient needs only the weight). A LoRA/DoRA branch casts the input to the adapter dtype and
    saves that copy for lora_A's gradient (one copy per module: PEFT casts per module), or, with
    dropout, saves the dropped-out copy plus a one-byte mask. ``shared``: the input is already saved by
    the previous op (SDPA's output for o_proj), so a trainable base linear adds nothing.
    """
    in_bytes = in_bytes or s.act_bytes
    total = 0.0
    base_saved = shared
    if full and not shared:
        total += in_bytes * d_in
        base_saved = True
    for m in linears:
        if m.name not in adapted:
            continue
        if s.method in ("lora", "qlora", "dora"):
            if s.lora_dropout > 0:
                total += (ADAPTER_BYTES + 1) * d_in
            elif in_bytes != ADAPTER_BYTES:
                total += ADAPTER_BYTES * d_in
            elif not base_saved:
                total += in_bytes * d_in
                base_saved = True
            total += ADAPTER_BYTES * s.rank  # lora_A's output, saved for lora_B's gradient
            if s.method == "dora":
                # DoRA's magnitude gradient needs the base and LoRA outputs, both in the adapter dtype
                # (PEFT DoraLinearLayer.forward)
                total += 2 * ADAPTER_BYTES * m.d_out
        elif s.method == "ia3":
            if m.group == "mlp_out":
                total += s.act_bytes * d_in  # input scaled before the frozen linear: saved for the vector
            else:
                total += s.act_bytes * m.d_out  # output scaled: saved for the vector's gradient
    return total


def layer_activation_bytes_per_token(shape: ModelShape, s: ActivationSetup) -> float:
    """Bytes autograd keeps per token for one transformer block (no recomputation).

    Terms (h hidden, f intermediate, q = heads*head_dim, kv = kv_heads*head_dim, A = activation bytes):
    - each RMSNorm saves its fp32 upcast input (4h; transformers upcasts inside the norm) and, when its
      weight trains, the normalised A*h copy the weight multiplies;
    - attention with SDPA/flash saves q, k, v, output and the log-sum-exp: A*(2q + 2kv) + 4*heads
      (Dao et al. 2022, FlashAttention: no s^2 matrix); eager attention adds the fp32 softmax output
      and its A-byte cast, (4 + A)*heads*s per token: the 5*a*s/h term of Korthikanti et al.;
    - a gated MLP saves the gate output, the activation output and the up output: 3*A*f (GELU MLP of
      GPT-2: the tanh-GELU's intermediates, also about 3*A*f);
    - each linear group's input per `_group_input_bytes`.
    """
    h, f, q, kv = shape.hidden, shape.intermediate, shape.q_dim, shape.kv_dim
    a = s.act_bytes
    full = s.method == "full"
    adapted = {m.name for m in target_linears(shape, s.targets)} if s.method in (
        "lora", "qlora", "dora", "ia3") else set()
    linears = shape.block_linears()
    groups = {g: [m for m in linears if m.group == g] for g in ("attn_in", "attn_out", "mlp_in", "mlp_out")}
    if shape.arch == "gpt2":
        q = kv = h
    # prompt tuning lengthens every sequence; prefix tuning lengthens the keys and values only
    kv_len_factor = 1.0
    if s.method == "prefix" and s.seq_len:
        kv_len_factor = (s.seq_len + s.virtual_tokens) / s.seq_len

    total = 0.0
    norm_bytes = 4 * h + (a * h if full else 0)
    if shape.arch == "gpt2":
        norm_bytes = a * h  # LayerNorm saves its input (and per-token statistics)
    total += shape.norms_per_layer * norm_bytes
    # QLoRA: prepare_model_for_kbit_training keeps norms in fp32, so the inputs of q/k/v and gate/up are
    # fp32 and PEFT's cast to the fp32 adapter dtype is a no-op (one shared copy per group)
    norm_out = 4 if s.method == "qlora" else a
    total += _group_input_bytes(groups["attn_in"], adapted, s, h, full, in_bytes=norm_out)
    if s.attention in ("sdpa", "flash"):
        total += a * (2 * q + 2 * kv * kv_len_factor) + 4 * shape.heads
        o_shared = True
    else:
        kv_len = s.seq_len * kv_len_factor
        rep = q / kv if kv else 1
        total += a * q + a * kv * kv_len_factor * (1 if rep == 1 else rep)  # q and (repeated) k for QK^T
        total += (4 + a) * shape.heads * kv_len  # softmax output (fp32) and its cast, saved by @V
        total += a * kv * kv_len_factor * (1 if rep == 1 else rep)  # (repeated) v
        o_shared = False
    total += _group_input_bytes(groups["attn_out"], adapted, s, q, full, shared=o_shared)
    total += 3 * a * f
    total += _group_input_bytes(groups["mlp_in"], adapted, s, h, full, in_bytes=norm_out)
    total += _group_input_bytes(groups["mlp_out"], adapted, s, f, full)
    return total


def other_activation_bytes_per_token(shape: ModelShape, s: ActivationSetup) -> float:
    """Outside the blocks: the final norm's fp32 input (4h), and when the output head trains (full
    finetuning) the normalised copy and the head's input (2*A*h), plus the token ids (8 bytes)."""
    full = s.method == "full"
    return 4 * shape.hidden + (2 * s.act_bytes * shape.hidden if full else 0) + 8


def logits_bytes_per_token(shape: ModelShape, act_bytes: int) -> float:
    """The loss's share of the peak, per token, at the start of the backward pass.

    transformers computes logits in the compute dtype (A*V, kept by the returned output), upcasts them
    to fp32 for the loss, and cross_entropy saves its fp32 log-softmax (4V); its backward then holds the
    incoming and outgoing fp32 gradients (4V + 4V) while the log-softmax is alive: (12 + A)*V.
    """
    return (12 + act_bytes) * shape.vocab


# --- time ---------------------------------------------------------------------------------------------

def flops_per_token(shape: ModelShape, method: str, seq_len: int, *, gradient_checkpointing: bool) -> float:
    """Training FLOPs per token.

    Weights: forward 2N, backward 4N (gradients for inputs and for weights) = 6N (Kaplan et al. 2020,
    "Scaling Laws for Neural Language Models", sec. 2.1; Hoffmann et al. 2022, C = 6ND). With frozen base
    weights (every PEFT method) the backward skips the weight gradients: 2N + 2N = 4N (adapters add a
    negligible 6 * trainable). Attention: 12 * layers * q_dim * seq_len (Chowdhery et al. 2022, PaLM,
    appendix B). Gradient checkpointing recomputes the forward: + 2N + 4 * layers * q_dim * seq_len.
    """
    n = shape.matmul_params()
    weights = 6 * n if method == "full" else 4 * n
    attn = 12 * shape.layers * shape.q_dim * seq_len
    total = weights + attn
    if gradient_checkpointing:
        total += 2 * n + 4 * shape.layers * shape.q_dim * seq_len
    return float(total)


# Model FLOPs utilisation assumed for the time estimate. PaLM reached 46 % MFU pre-training on TPUs
# (Chowdhery et al. 2022, table 3); single-GPU finetuning with transformers typically lands well below;
# 0.35 is a round, stated assumption, not a measurement.
MFU = 0.35
# QLoRA dequantises every 4-bit weight on each use: LitGPT's resource table (A100, Llama 2 7B, micro batch
# 1) measured 2.36 min vs 3.83 min per 1k iterations for LoRA vs NF4 double-quant LoRA: 0.62 the speed.
QLORA_SPEED = 2.36 / 3.83


# --- model states per device under a multi-process strategy ---------------------------------------------

@dataclass(frozen=True)
class ModelStates:
    """Bytes one device holds for the model under a training strategy (see :func:`model_states`)."""

    weights: float  # parameters as this device stores them, fp32 master copies included
    gradients: float
    optimizer: float
    reference: float  # DPO's frozen reference copy (full DPO only)
    buckets: float  # DDP's gradient buckets: persistent, processes > 1
    gather: float  # forward/backward only: unsharded units and one unit's unreduced gradients
    step_temp: float  # optimizer step only: foreach AdamW's temporary, DeepSpeed's fp32 gradient partition
    note: str  # what is sharded and what the gather buffers are, in words


def model_states(shape: ModelShape, strategy: Strategy, processes: int, *, method: str, trainable: int,
                 precision_bytes: int, optimizer: str, dpo_reference: bool) -> ModelStates:
    """Per-device weights, gradients, optimizer states and the buffers a strategy adds, for ``processes``
    data-parallel processes (N). ``method`` is the method the training trains through (DPO resolved);
    p = ``precision_bytes``; K = OPTIMIZER_STATE_BYTES[optimizer]; t = ``trainable``; n = all parameters.

    One process, nothing sharded (``ddp``), the single-GPU model: full finetuning keeps fp32 weights and a
    p-byte autocast copy (4n + 2n), fp32 gradients (4t), K*t of optimizer state; PEFT keeps the frozen base
    in p bytes (QLoRA: NF4 with double quantisation, the rest fp32) and fp32 adapters. With N > 1 DDP adds
    one gradients' worth: its reducer copies every gradient into an allreduce bucket unless
    ``gradient_as_bucket_view=True`` ("the saved memory size will be equal to the total gradients size",
    torch.nn.parallel.DistributedDataParallel docstring); the default is False and neither the HF Trainer
    nor accelerate's DistributedDataParallelKwargs change it.

    Sharding follows the ZeRO paper (Rajbhandari et al. 2020, sec. 5: stage 1 P_os divides the optimizer
    states, fp32 master weights included (its K = 12 for mixed-precision Adam), stage 2 P_os+g also the
    gradients, stage 3 P_os+g+p also the parameters: (2 + 2 + K)*Psi/N_d per device); what each strategy
    shards is :data:`ftharness.planner.strategies.STRATEGIES`.

    - ``fsdp`` (PyTorch FSDP2 FULL_SHARD as accelerate applies it): trainable parameters are upcast to
      fp32 and sharded, the compute dtype exists only for the gathered unit (MixedPrecisionPolicy
      param_dtype; accelerate ``fsdp2_prepare_model``), so full finetuning holds 4n/N of weights, no
      persistent low-precision copy, fp32 gradients 4t/N and K*t/N of optimizer state. Frozen base weights
      are sharded too (n*p/N); QLoRA's 4-bit weights shard when stored in a bf16 storage type (Answer.AI's
      FSDP+QLoRA, bnb_4bit_quant_storage), the rest of the model loaded in the compute dtype, while the
      quantisation constants (absmax) are attributes of the weight, not parameters, so every process keeps
      them whole. Gather buffers: FSDP prefetches the next unit while computing the current one, so two
      units are unsharded at once in the compute dtype, a unit being the largest decoder layer or the
      embedding / output head if larger (2 * max(layer, embedding, head) * p; torch fully_shard's default
      backward prefetch of "the next FSDP module"; accelerate wraps each decoder layer, the embedding, and
      the final norm with the head), plus one unit's unreduced gradients in fp32 for the reduce-scatter of a
      trainable unit (the largest unit for full finetuning, one layer's adapters for PEFT).
    - ``deepspeed-zero2`` / ``deepspeed-zero3`` in bf16/fp16: DeepSpeed casts the model to the compute
      dtype and keeps an fp32 master copy of the trainable parameters in the partitioned optimizer state:
      p*t (divided by N under stage 3) + 4t/N of weights, p*t/N of gradients, K*t/N of optimizer state
      (the ZeRO paper's (2 + 2 + K)/N); at the step the gradient partition is converted to fp32 (4t/N),
      which is how DeepSpeed's own estimator (estimate_zero3_model_states_mem_needs,
      https://deepspeed.readthedocs.io/en/latest/memory.html) arrives at 18*Psi/N for stage 3 and 4*Psi +
      16*Psi/N for stage 2 (it also counts stage 2's gradients whole; we follow the paper and divide them).
      Stage 3 gathers one module at a time: we use that estimator's largest_layer_memory = 4 *
      largest_layer_params (the largest module's parameters gathered in 16 bits plus its 16-bit gradients),
      written p * largest (+ p * largest when the module trains). Frozen weights and QLoRA as for FSDP.

    Activations, logits and the loss do not shard (each process runs its own --batch-size), and neither
    does DPO's reference model under ZeRO-2 or DDP; under parameter sharding it is sharded like the base.
    """
    n = shape.total_params()
    t = trainable
    p = precision_bytes
    k = OPTIMIZER_STATE_BYTES[optimizer]
    full = method == "full"
    shards = set(strategy.shards)
    dp = processes if "parameters" in shards else 1  # what each state is divided by
    dg = processes if "gradients" in shards else 1
    do = processes if "optimizer" in shards else 1
    adamw_temp = t * 4 if optimizer == "adamw" else 0.0  # foreach AdamW: one fp32 temporary per parameter
    reference = n * p if dpo_reference else 0.0

    if strategy.engine == "ddp":  # nothing sharded: the single-GPU model, plus DDP's buckets
        if method == "qlora":
            q = quantised_linear_params(shape)
            weights = q * NF4_DQ_BITS / 8 + (n - q) * 4 + t * ADAPTER_BYTES
        elif full:
            weights = n * 4 + (n * 2 if p == 2 else 0)
        else:
            weights = n * p + t * ADAPTER_BYTES
        grads = t * 4
        buckets = grads if processes > 1 else 0.0
        note = ("one process: nothing sharded" if processes == 1 else
                f"ddp over {processes} processes: nothing sharded, every process holds the whole model; DDP's "
                "gradient buckets hold a second copy of the gradients (gradient_as_bucket_view=False)")
        return ModelStates(weights=weights, gradients=grads, optimizer=t * k, reference=reference,
                           buckets=buckets, gather=0.0, step_temp=adamw_temp, note=note)

    # frozen base weights, as stored: QLoRA's 4-bit data shards, its quantisation constants do not
    if full:
        frozen = 0.0
    elif method == "qlora":
        q = quantised_linear_params(shape)
        frozen = q * 4 / 8 / dp + q * (NF4_DQ_BITS - 4) / 8 + (n - q) * p / dp
    else:
        frozen = n * p / dp
    deepspeed = strategy.engine == "deepspeed"
    mixed = p != 4
    if deepspeed and mixed:  # compute-dtype parameters, fp32 master in the optimizer partition
        trained = t * p / dp + t * 4 / do
        grads = t * p / dg
        step_temp = t * 4 / dg + adamw_temp / do
    else:  # FSDP: fp32 sharded trainable parameters and gradients; or everything fp32
        trained = t * 4 / dp
        grads = t * 4 / dg
        step_temp = adamw_temp / do
    weights = frozen + trained
    reference = reference / dp

    gather = 0.0
    parts = [s for s in ("parameters", "gradients", "optimizer") if s in shards]
    note = f"{strategy.name} over {processes} processes: {', '.join(parts)} sharded 1/{processes}"
    if "parameters" in shards:
        per_layer_adapters = t / shape.layers if method in ("lora", "qlora", "dora", "ia3") else 0.0
        layer = shape.linear_params_per_layer() + shape.norm_params_per_layer()
        if method == "qlora":  # quantised linears travel as 4-bit data; biases, norms, adapters in p
            qlayer = sum(m.d_in * m.d_out for m in shape.block_linears())
            layer_bytes = qlayer * 4 / 8 + (layer - qlayer + per_layer_adapters) * p
        else:
            layer_bytes = (layer + per_layer_adapters) * p
        edge = max(shape.embedding_params(), shape.lm_head_params())
        if strategy.engine == "fsdp":
            unit = max(layer_bytes, edge * p)
            trainable_unit = (max(layer, edge) if full else per_layer_adapters if per_layer_adapters else t)
            gather = 2 * unit + trainable_unit * 4
            note += (f"; all-gather buffers: 2 units unsharded at once (FSDP prefetch) of the largest unit "
                     f"({unit / GB:.2f} GB in the compute dtype) + one unit's fp32 gradients for the "
                     f"reduce-scatter ({trainable_unit * 4 / GB:.2f} GB)")
        else:
            biggest = max(max(m.d_in * m.d_out for m in shape.block_linears()), edge)
            biggest_bytes = biggest * p
            if method == "qlora":
                biggest_bytes = max(max(m.d_in * m.d_out for m in shape.block_linears()) * 4 / 8, edge * p)
            gather = biggest_bytes + (biggest * p if full else 0.0)
            note += (f"; gather buffer: the largest module ({biggest:,} parameters) gathered"
                     f"{' with its gradients' if full else ''}, {gather / GB:.2f} GB (DeepSpeed's "
                     "largest_layer_memory = 4 x largest_layer_params)")
    else:
        note += "; parameters replicated"
    if deepspeed and mixed:
        note += "; fp32 master weights in the optimizer partition, fp32 gradient partition at the step"
    return ModelStates(weights=weights, gradients=grads, optimizer=t * k / do, reference=reference,
                       buckets=0.0, gather=gather, step_temp=step_temp, note=note)
