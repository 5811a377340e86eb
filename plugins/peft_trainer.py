"""The ``peft`` trainer: transformers + PEFT + TRL's SFTTrainer, on CPU or one/several GPUs.

Methods: LoRA (Hu et al. 2021), QLoRA (Dettmers et al. 2023: NF4 4-bit base with double quantisation, always
``nf4``: bitsandbytes' own default is fp4), DoRA (Liu et al. 2024), (IA)^3 (Liu et al. 2022), prefix tuning
(Li & Liang 2021), prompt tuning (Lester et al. 2021), full finetuning, partial finetuning (all blocks
frozen but the top N), continued pretraining on a raw-text corpus (Gururangan et al. 2020: next-token
loss on every token of fixed-length blocks, through a LoRA adapter or every weight), and distillation
(``distill``: a student trained with the SFT path, LoRA by default, on what a teacher option of the task
wrote for its inputs; Kim & Rush 2016, sequence-level knowledge distillation, arXiv:1606.07947: the
teacher's decoded outputs become ordinary targets). What each method trains on and produces is declared in
:data:`METHODS`, its hyperparameters in :data:`HYPERPARAMETERS` (dataclasses on the shared bases of
:mod:`ftharness.hyperparameters`, every default with its source); the core reads both from there.
Nothing heavy is imported at module level: ``ftharness plugins`` and ``--help`` stay fast.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any, Literal

from ftharness.hookspecs import Method, hookimpl
from ftharness.hyperparameters import (
    DETTMERS_2023,
    HARNESS,
    LESTER_2021,
    Dtype,
    LoraSettings,
    PromptLearningSettings,
    SftHyperparameters,
    TrainingHyperparameters,
    planner_inputs,
)
from ftharness.training.sequences import MAX_DEFAULT_BLOCK, RUN_CLM
from ftharness.training.trainer import missing_training_libraries
from ftharness.typed import like, spec

# LoRA-family adapters fold into the base weights and combine with PEFT's add_weighted_adapter; (IA)^3
# scales fold in too; prefix and prompt tuning add virtual tokens, which nothing folds into the weights.
METHODS = (
    Method("lora", "LoRA", mergeable=True, combinable=True),
    Method("qlora", "QLoRA", mergeable=True, combinable=True),
    Method("dora", "DoRA", mergeable=True, combinable=True),
    Method("ia3", "(IA)^3", mergeable=True),
    Method("prefix", "prefix tuning"),
    Method("prompt-tuning", "prompt tuning"),
    Method("full", "full finetuning", output="model"),
    Method("partial", "partial finetuning", output="model"),
    # As declared, a LoRA adapter (``adapter: lora``, the default); ``adapter: full`` writes a model folder.
    Method("continued-pretraining", "continued pretraining", data="corpus", mergeable=True),
    Method("distill", "distillation", data="teacher", mergeable=True, combinable=True),
)
CONTINUED_PRETRAINING = "continued-pretraining"
ADAPTERS = {m.name for m in METHODS if m.output == "adapter" and m.name != CONTINUED_PRETRAINING}
PROMPT_LEARNING = ("prefix", "prompt-tuning")  # virtual tokens per row: batches must stay padded

LIU_2024 = "Liu et al. 2024, DoRA: Weight-Decomposed Low-Rank Adaptation (arXiv:2402.09353): same settings as LoRA"
LIU_2022 = ("Liu et al. 2022, Few-Shot PEFT is Better and Cheaper than ICL, (IA)^3 / T-Few (arXiv:2205.05638): "
            "lr 3e-3")
LI_2021 = ("Li & Liang 2021, Prefix-Tuning (arXiv:2101.00190); PEFT's prefix-tuning guide uses lr 1e-2 without the "
           "reparametrisation MLP")
GURURANGAN_2020 = ("Gururangan et al. 2020, Don't Stop Pretraining: domain-adaptive pretraining (arXiv:2004.10964), "
                   "one pass over the domain corpus")
BIDERMAN_2024 = ("Biderman et al. 2024, LoRA Learns Less and Forgets Less (arXiv:2405.09673): continued pretraining "
                 "with LoRA forgets less of the base model's abilities than full finetuning")
OUYANG_2022 = ("Ouyang et al. 2022 / Taori et al. 2023 (Alpaca): full finetuning at lr 1e-5 to 2e-5, cosine "
               "schedule, warmup 3 %")


@dataclass
class LoraHyperparameters(LoraSettings, SftHyperparameters):
    """LoRA: low-rank adapters on every linear layer."""


@dataclass
class QloraHyperparameters(LoraHyperparameters):
    """LoRA on a 4-bit base, always NF4 with double quantisation (bitsandbytes' own default type is fp4)."""

    bnb_4bit_compute_dtype: Dtype = spec("auto", source=DETTMERS_2023,
                                         help="dtype the 4-bit weights are dequantised to for the matmuls")


@dataclass
class DoraHyperparameters(LoraHyperparameters):
    """DoRA: LoRA with a learned magnitude per output, trained with LoRA's settings."""

    r: int = like(LoraSettings, "r", source=LIU_2024)
    lora_alpha: int = like(LoraSettings, "lora_alpha", source=LIU_2024)
    lora_dropout: float = like(LoraSettings, "lora_dropout", source=LIU_2024)
    target_modules: str | list[str] = like(LoraSettings, "target_modules", source=LIU_2024)


@dataclass
class Ia3Hyperparameters(SftHyperparameters):
    """(IA)^3: learned rescaling vectors; no modules named means PEFT's per-architecture default."""

    learning_rate: float = like(TrainingHyperparameters, "learning_rate", 3.0e-3, source=LIU_2022)
    target_modules: str | list[str] | None = like(LoraSettings, "target_modules", None, source=LIU_2022)
    feedforward_modules: str | list[str] | None = like(LoraSettings, "target_modules", None, source=LIU_2022,
                                                       help="which of target_modules are feed-forward layers")


@dataclass
class PrefixHyperparameters(PromptLearningSettings, SftHyperparameters):
    """Prefix tuning: trained key/value prefixes in every layer."""

    learning_rate: float = like(TrainingHyperparameters, "learning_rate", 1.0e-2, source=LI_2021)
    num_virtual_tokens: int = like(PromptLearningSettings, "num_virtual_tokens", source=LI_2021)


@dataclass
class PromptTuningHyperparameters(PromptLearningSettings, SftHyperparameters):
    """Prompt tuning: trained input embeddings prepended to every row."""

    learning_rate: float = like(TrainingHyperparameters, "learning_rate", 3.0e-2, source=LESTER_2021)


@dataclass
class FullHyperparameters(SftHyperparameters):
    """Full finetuning: every weight trains."""

    learning_rate: float = like(TrainingHyperparameters, "learning_rate", 2.0e-5, source=OUYANG_2022)
    max_grad_norm: float = like(TrainingHyperparameters, "max_grad_norm", 1.0, source=OUYANG_2022)


@dataclass
class PartialHyperparameters(FullHyperparameters):
    """Partial finetuning: the top blocks (and the final norm) train, the rest is frozen."""

    trainable_layers: int = spec(2, ge=1, source=HARNESS,
                                 help="transformer blocks, counted from the top, that train")


@dataclass
class ContinuedPretrainingHyperparameters(LoraSettings, TrainingHyperparameters):
    """Continued pretraining: next-token loss on every token of a raw-text corpus packed into blocks of
    ``block_size`` tokens (``max_length``, the supervised rows' cut, is not read). The LoRA fields apply with
    ``adapter: lora``; without a validation split (compare trains it on the corpus alone) nothing stops it early."""

    adapter: Literal["lora", "full"] = spec("lora", source=BIDERMAN_2024,
                                            help="lora: a LoRA adapter on the base weights; full: every weight trains")
    block_size: int | None = spec(None, ge=2, source=RUN_CLM,
                                  help=f"tokens per packed block; null: the smaller of {MAX_DEFAULT_BLOCK} and the "
                                       "model's maximum positions (checked against them when the task loads)")
    epochs: float = like(TrainingHyperparameters, "epochs", 1.0, source=GURURANGAN_2020)
    learning_rate: float | None = like(TrainingHyperparameters, "learning_rate", None,
                                       source=f"{DETTMERS_2023}; {OUYANG_2022}",
                                       help="peak learning rate; null: 2e-4 with adapter lora, 2e-5 with adapter full")
    early_stopping_patience: int | None = like(TrainingHyperparameters, "early_stopping_patience", None,
                                               source=GURURANGAN_2020)


@dataclass
class DistillHyperparameters(LoraHyperparameters):
    """Distillation: the student trains with the SFT path on the teacher-labelled rows (the candidate's
    ``teacher:``; :mod:`ftharness.compare.distill` labels them), as a LoRA-family adapter."""

    # LoRA-family adapters only: they merge and combine alike, so the ``distill`` declaration in METHODS
    # holds whichever the candidate chooses.
    student: Literal["lora", "dora"] = spec("lora", source=HARNESS,
                                           help="the SFT method the student trains as on the teacher's labels")


HYPERPARAMETERS: dict[str, type] = {
    "lora": LoraHyperparameters,
    "qlora": QloraHyperparameters,
    "dora": DoraHyperparameters,
    "ia3": Ia3Hyperparameters,
    "prefix": PrefixHyperparameters,
    "prompt-tuning": PromptTuningHyperparameters,
    "full": FullHyperparameters,
    "partial": PartialHyperparameters,
    CONTINUED_PRETRAINING: ContinuedPretrainingHyperparameters,
    "distill": DistillHyperparameters,
}
# The learning rate continued pretraining takes when none is given, by what it trains (the sources of the
# supervised methods' defaults: LoraHyperparameters' and FullHyperparameters').
CONTINUED_PRETRAINING_LR = {"lora": TrainingHyperparameters.learning_rate, "full": FullHyperparameters.learning_rate}


class PeftTrainer:
    name = "peft"
    methods = METHODS

    def hyperparameters(self, method: str) -> type:
        return HYPERPARAMETERS[method]

    def plan_inputs(self, method: str, hp: Any) -> dict[str, Any] | None:
        """The planner's inputs for ``method`` trained with ``hp``; None for partial finetuning (the planner has
        no memory model for a chosen subset of layers)."""
        if method == "partial":
            return None
        inputs = {"method": method, **planner_inputs(hp)}
        if method == "distill":  # planned as the training it is: the student's (labelling is measured)
            inputs["student"] = hp.student
        if method == CONTINUED_PRETRAINING:
            inputs.update(adapter=hp.adapter, block_size=hp.block_size)
        return inputs

    def unavailable_reason(self, method: str | None = None) -> str | None:
        missing = missing_training_libraries()
        if missing is None and method == "qlora" and importlib.util.find_spec("bitsandbytes") is None:
            return "QLoRA needs bitsandbytes; install with `pip install bitsandbytes`"
        return missing

    def train(self, job: Any) -> Any:
        from ftharness.training.sft import run_sft

        hp = job.hyperparameters
        method = job.spec.method
        if method == CONTINUED_PRETRAINING:
            return continue_pretraining(job, hp)
        if method == "distill":  # the teacher's labels are already the job's rows: train them as the student
            method = hp.student
        model, tokenizer = load_base(job.base_model_path, method, hp)
        model, notes = prepare(model, method, hp, start_adapter=job.start_adapter)
        padding_free = hp.padding_free and method not in PROMPT_LEARNING
        if hp.padding_free and not padding_free:
            notes["padding_free_off"] = "prompt-learning methods prepend virtual tokens to each row: padded batches"
        return run_sft(job, model, tokenizer, hp, padding_free=padding_free, notes=notes)


def continue_pretraining(job: Any, hp: ContinuedPretrainingHyperparameters) -> Any:
    """Next-token loss on every token of ``job.train`` (the corpus's documents) packed into blocks
    (:func:`ftharness.training.sequences.corpus_blocks`), through a LoRA adapter or every weight."""
    import dataclasses

    from ftharness.training.sequences import corpus_blocks, max_positions, resolve_block_size
    from ftharness.training.sft import prepare_tokenizer, train_on_rows

    model, tokenizer = load_base(job.base_model_path, hp.adapter, hp)
    block_size = resolve_block_size(hp.block_size, max_positions(model.config))
    if hp.learning_rate is None:
        hp = dataclasses.replace(hp, learning_rate=CONTINUED_PRETRAINING_LR[hp.adapter])
    model, notes = prepare(model, hp.adapter, hp, start_adapter=job.start_adapter)
    notes.update(method=CONTINUED_PRETRAINING, adapter=hp.adapter, learning_rate=hp.learning_rate)
    prepare_tokenizer(tokenizer)
    train_rows, stats = corpus_blocks(tokenizer, job.train, block_size)
    eval_rows = corpus_blocks(tokenizer, job.eval, block_size)[0] if job.eval else None
    eval_rows = [{k: r[k] for k in ("input_ids", "labels")} for r in eval_rows] if eval_rows else None
    return train_on_rows(job, model, tokenizer, hp, train_rows, eval_rows, stats, padding_free=False, notes=notes)


def load_base(path: Any, method: str, hp: TrainingHyperparameters) -> tuple[Any, Any]:
    """The base model as the method needs it (4-bit NF4 for QLoRA) and its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ftharness.plugins import cuda_available
    from ftharness.training.sft import torch_dtype

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    dtype = torch_dtype(hp.dtype)
    kwargs: dict[str, Any] = {"dtype": dtype, "attn_implementation": "sdpa"}
    if method == "qlora":
        from transformers import BitsAndBytesConfig

        compute = torch_dtype(hp.bnb_4bit_compute_dtype)
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",  # always say nf4: bitsandbytes' default 4-bit type is fp4
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute,
        )
        if cuda_available():
            import os

            kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
        else:
            kwargs["device_map"] = "cpu"
            kwargs["dtype"] = torch.float32
    model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
    return model, tokenizer


def peft_config(method: str, hp: Any) -> Any:
    """The PEFT config of an adapter method."""
    from peft import IA3Config, LoraConfig, PrefixTuningConfig, PromptTuningConfig, TaskType

    if method in ("lora", "qlora", "dora"):
        return LoraConfig(
            task_type=TaskType.CAUSAL_LM, r=hp.r, lora_alpha=hp.lora_alpha, lora_dropout=hp.lora_dropout,
            target_modules=hp.target_modules, use_dora=method == "dora", bias="none",
        )
    if method == "ia3":
        return IA3Config(task_type=TaskType.CAUSAL_LM, target_modules=hp.target_modules,
                         feedforward_modules=hp.feedforward_modules)
    if method == "prefix":
        return PrefixTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=hp.num_virtual_tokens)
    if method == "prompt-tuning":
        return PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=hp.num_virtual_tokens)
    raise ValueError(f"not an adapter method: {method}")


def prepare(model: Any, method: str, hp: Any, *, start_adapter: Any = None) -> tuple[Any, dict[str, Any]]:
    """Wrap or freeze ``model`` for ``method``; continue a previous adapter when ``start_adapter`` is given.

    An adapter method keeps training the previous adapter (its rank and modules, not the candidate's); a
    method that trains the weights themselves (full, partial) trains them with the previous adapter merged in.
    """
    notes: dict[str, Any] = {"method": method}
    if start_adapter is not None and method not in ADAPTERS:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(start_adapter)).merge_and_unload()
        notes["merged_adapter"] = str(start_adapter)
    if method == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=hp.gradient_checkpointing)
        notes["quantization"] = "bitsandbytes nf4, double quantisation"
    if method in ADAPTERS:
        if start_adapter is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(start_adapter), is_trainable=True)
            notes["continued_adapter"] = str(start_adapter)
        else:
            from peft import get_peft_model

            model = get_peft_model(model, peft_config(method, hp))
        return model, notes
    if method == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model, notes
    if method == "partial":
        n = freeze_all_but_top(model, hp.trainable_layers)
        notes["trainable_layers"] = n
        return model, notes
    raise ValueError(f"unknown method {method}")


def freeze_all_but_top(model: Any, n: int) -> int:
    """Freeze every parameter, then unfreeze the last ``n`` transformer blocks and the final norm."""
    from ftharness.errors import BadInput

    blocks = decoder_blocks(model)
    if not 1 <= n <= len(blocks):
        raise BadInput(f"must be between 1 and the model's {len(blocks)} blocks, got {n}",
                       field="hyperparameters.trainable_layers")
    for p in model.parameters():
        p.requires_grad_(False)
    for block in blocks[-n:]:
        for p in block.parameters():
            p.requires_grad_(True)
    norm = getattr(getattr(model, model.base_model_prefix, model), "norm", None)
    if norm is not None:
        for p in norm.parameters():
            p.requires_grad_(True)
    return n


def decoder_blocks(model: Any) -> Any:
    """The ModuleList of transformer blocks (the one as long as ``num_hidden_layers``)."""
    import torch

    want = model.config.get_text_config().num_hidden_layers
    for _, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == want:
            return module
    raise ValueError("could not find the model's transformer blocks")


@hookimpl
def register_trainers(register):
    register(PeftTrainer())
