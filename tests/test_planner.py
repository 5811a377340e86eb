"""The planner: trainable counts equal PEFT's, activation terms equal what autograd saves, and the
memory/time/cost arithmetic behaves as its formulas say."""

from __future__ import annotations

import pytest

from ftharness.errors import BadInput
from ftharness.planner import PlanRequest, estimate
from ftharness.planner import memory as M
from ftharness.planner.catalogue import (
    get_gpu,
    gpu_name,
    gpu_names,
    model_name,
    model_names,
    resolve_model,
    shape_from_config,
)
from ftharness.typed import from_mapping

TINY = dict(vocab_size=1000, hidden_size=64, intermediate_size=176, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)


def _tiny_config(kind: str):
    from transformers import GPT2Config, LlamaConfig, Phi3Config, Qwen2Config

    if kind == "llama":
        return LlamaConfig(**TINY, tie_word_embeddings=False)
    if kind == "qwen2":
        return Qwen2Config(**TINY, tie_word_embeddings=True)
    if kind == "phi3":
        return Phi3Config(**{**TINY, "num_key_value_heads": 4}, pad_token_id=0)
    if kind == "gpt2":
        return GPT2Config(vocab_size=1000, n_embd=64, n_layer=2, n_head=4, n_positions=128)
    raise ValueError(kind)


def _peft_config(method: str, targets: str, rank: int, vt: int):
    from peft import IA3Config, LoraConfig, PrefixTuningConfig, PromptTuningConfig, TaskType

    tm = targets if targets == "all-linear" else targets.split(",")
    if method in ("lora", "dora"):
        return LoraConfig(r=rank, target_modules=tm, use_dora=method == "dora", task_type=TaskType.CAUSAL_LM)
    if method == "ia3":
        names = ["down_proj", "c_proj"] if targets == "all-linear" else [t for t in tm if t == "down_proj"]
        return IA3Config(target_modules=tm, feedforward_modules=names or None, task_type=TaskType.CAUSAL_LM)
    if method == "prefix":
        return PrefixTuningConfig(num_virtual_tokens=vt, task_type=TaskType.CAUSAL_LM)
    return PromptTuningConfig(num_virtual_tokens=vt, task_type=TaskType.CAUSAL_LM)


CASES = [
    ("llama", "lora", "q_proj,v_proj"),
    ("llama", "lora", "all-linear"),
    ("llama", "lora", "q_proj,k_proj,v_proj,o_proj"),
    ("llama", "dora", "all-linear"),
    ("llama", "dora", "q_proj,v_proj"),
    ("llama", "ia3", "k_proj,v_proj,down_proj"),
    ("llama", "ia3", "q_proj,v_proj"),
    ("llama", "prefix", "all-linear"),
    ("llama", "prompt-tuning", "all-linear"),
    ("qwen2", "lora", "all-linear"),
    ("qwen2", "prefix", "all-linear"),
    ("phi3", "lora", "qkv_proj,o_proj"),
    ("phi3", "lora", "all-linear"),
    ("gpt2", "lora", "c_attn"),
    ("gpt2", "prompt-tuning", "all-linear"),
]


@pytest.mark.parametrize(("arch", "method", "targets"), CASES)
def test_trainable_and_total_params_equal_peft(arch, method, targets):
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    config = _tiny_config(arch)
    model = AutoModelForCausalLM.from_config(config)
    shape = shape_from_config(config.to_dict(), name=f"tiny-{arch}")
    assert shape.total_params() == model.num_parameters()
    rank, vt = 4, 7
    peft_model = get_peft_model(model, _peft_config(method, targets, rank, vt))
    trainable, _ = peft_model.get_nb_trainable_parameters()
    ours = M.trainable_params(shape, method, rank=rank, targets=targets, virtual_tokens=vt)
    assert ours == trainable


def _saved_bytes_per_layer(method: str, *, targets="all-linear", dtype="bf16", attention="sdpa",
                           dropout=0.0, b=2, s=48) -> float:
    """Bytes autograd saves per token for one block, measured: (3 layers - 2 layers) with saved-tensor hooks,
    each storage counted once and parameters excluded."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    def measure(layers: int) -> int:
        torch.manual_seed(0)
        cfg = LlamaConfig(**{**TINY, "num_hidden_layers": layers}, tie_word_embeddings=False)
        cfg._attn_implementation = attention
        model = LlamaForCausalLM(cfg).to(torch.bfloat16 if dtype == "bf16" else torch.float32)
        if method in ("lora", "dora"):
            model = get_peft_model(model, LoraConfig(r=4, target_modules=targets if targets == "all-linear"
                                                     else targets.split(","), lora_dropout=dropout,
                                                     use_dora=method == "dora"))
        model.train()
        params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        seen: dict[int, int] = {}

        def pack(t):
            st = t.untyped_storage()
            if st.data_ptr() not in params:
                seen[st.data_ptr()] = st.nbytes()
            return t

        ids = torch.randint(0, 1000, (b, s))
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(input_ids=ids, labels=ids)
        return sum(seen.values())

    return (measure(3) - measure(2)) / (b * s)


@pytest.mark.parametrize(
    ("method", "kwargs"),
    [
        ("full", {}),
        ("full", {"dtype": "fp32"}),
        ("full", {"attention": "eager"}),
        ("lora", {"targets": "q_proj,v_proj"}),
        ("lora", {"targets": "all-linear"}),
        ("lora", {"targets": "all-linear", "dropout": 0.1}),
        ("lora", {"targets": "all-linear", "dtype": "fp32"}),
    ],
)
def test_activation_formula_matches_saved_tensors(method, kwargs):
    measured = _saved_bytes_per_layer(method, **kwargs)
    shape = shape_from_config(_tiny_config("llama").to_dict(), name="tiny")
    setup = M.ActivationSetup(method=method, targets=kwargs.get("targets", "all-linear"), rank=4,
                              act_bytes=M.PRECISION_BYTES[kwargs.get("dtype", "bf16")],
                              attention=kwargs.get("attention", "sdpa"), lora_dropout=kwargs.get("dropout", 0.0),
                              seq_len=48)
    predicted = M.layer_activation_bytes_per_token(shape, setup)
    if kwargs.get("dropout"):
        # CUDA's fused dropout keeps a 1-byte mask (the planner's figure); the CPU kernel measured here keeps
        # it in the input dtype (fp32 after PEFT's cast): 3 more bytes per element of each adapted input
        predicted += 3 * sum(m.d_in for m in M.target_linears(shape, setup.targets))
    assert predicted == pytest.approx(measured, rel=0.05), (predicted, measured)


def test_catalogue_has_the_issue_presets_and_gpus():
    for name in ("llama-2-7b", "llama-2-13b", "llama-2-70b", "llama-3-8b", "llama-3-70b", "llama-3.2-1b",
                 "llama-3.2-3b", "mistral-7b", "qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-7b", "gemma-2-2b",
                 "gemma-2-9b", "phi-3-mini", "gpt2", "smollm2-135m", "smollm2-360m", "smollm2-1.7b"):
        assert name in model_names()
        assert resolve_model(name).source.startswith("https://")
    for name in ("rtx-3080", "rtx-3090", "rtx-4090", "l4", "t4", "a10g", "a100-40gb", "a100-80gb", "h100",
                 "h200"):
        assert name in gpu_names()
    assert any(n.startswith("apple-m") for n in gpu_names())
    for name in gpu_names():
        g = get_gpu(name)
        assert g.vram_gb > 0 and g.bf16_tflops > 0 and g.price_source
        assert g.usd_per_hour is None or g.price_date


def test_known_parameter_counts():
    # published totals: Llama 2 7B 6,738,415,616; Llama 3 8B 8,030,261,248; GPT-2 124,439,808
    assert resolve_model("llama-2-7b").total_params() == 6_738_415_616
    assert resolve_model("llama-3-8b").total_params() == 8_030_261_248
    assert resolve_model("gpt2").total_params() == 124_439_808
    assert resolve_model("Llama_3_8B").name == "llama-3-8b"


@pytest.mark.parametrize(("typed", "entry"), [
    ("rtx4090", "rtx-4090"), ("RTX 4090", "rtx-4090"), ("4090", "rtx-4090"), ("NVIDIA GeForce RTX 4090", "rtx-4090"),
    ("h100-80gb", "h100"), ("H100 SXM", "h100"), ("NVIDIA H100 80GB HBM3", "h100"), ("a100 80GB", "a100-80gb"),
    ("A100_40GB", "a100-40gb"), ("l40s", "l40s"), ("L40S", "l40s"), ("M2 Max", "apple-m2-max-96gb"),
])
def test_gpu_names_as_people_type_them(typed, entry):
    assert gpu_name(typed) == entry
    assert get_gpu(typed).name == entry


@pytest.mark.parametrize(("typed", "entry"), [
    ("Llama-3.1-8B", "llama-3.1-8b"), ("llama3.1 8b", "llama-3.1-8b"), ("LLAMA_3_8B", "llama-3-8b"),
    ("Qwen2.5 0.5B", "qwen2.5-0.5b"), ("GPT-2", "gpt2"), ("SmolLM2-135M-Instruct", "smollm2-135m"),
])
def test_model_names_as_people_type_them(typed, entry):
    assert model_name(typed) == entry
    assert resolve_model(typed).name == entry


def test_every_catalogue_name_and_alias_finds_its_own_entry():
    for name in gpu_names():
        for typed in (name, *get_gpu(name).aliases):
            assert gpu_name(typed) == name, typed
    for name in model_names():
        for typed in (name, *resolve_model(name).aliases):
            assert model_name(typed) == name, typed


def test_a_name_of_several_entries_lists_them_and_an_unknown_one_names_the_closest():
    with pytest.raises(BadInput, match="did you mean a100-40gb or a100-80gb") as e:
        gpu_name("a100")
    assert e.value.field == "gpu"
    with pytest.raises(BadInput, match="unknown GPU 'h100 40gb'"):
        gpu_name("h100 40gb")  # the card is known, that size of it is not
    with pytest.raises(BadInput, match="did you mean rtx-4090"):
        gpu_name("rtx-4099")
    assert model_name("llama-3.1-7b") is None  # no preset: resolve_model reads it as a path or refuses
    with pytest.raises(BadInput, match="did you mean llama-3.1-8b"):
        resolve_model("llama-3.1-7b")


@pytest.mark.e2e
def test_smollm2_preset_matches_the_embedded_model(embedded_dir):
    import json

    from transformers import AutoConfig, AutoModelForCausalLM

    preset = resolve_model("smollm2-135m")
    model = AutoModelForCausalLM.from_pretrained(embedded_dir)
    assert preset.total_params() == model.num_parameters()
    from_file = resolve_model(str(embedded_dir / "config.json"))
    assert from_file.total_params() == preset.total_params()
    assert AutoConfig.from_pretrained(embedded_dir).vocab_size == json.loads(
        (embedded_dir / "config.json").read_text())["vocab_size"] == preset.vocab


def test_nf4_double_quant_bits_and_qlora_saves_weights():
    assert abs(M.NF4_DQ_BITS - 4.127) < 1e-3
    lora = estimate(PlanRequest(model="llama-2-7b", method="lora", gpu="h100"))
    qlora = estimate(PlanRequest(model="llama-2-7b", method="qlora", gpu="h100"))
    assert lora.trainable_params == qlora.trainable_params
    assert qlora.components["weights"] < 0.4 * lora.components["weights"]


def test_gradient_checkpointing_cuts_activations_and_adds_recompute_time():
    base = dict(model="llama-3-8b", method="lora", gpu="a100-80gb", train_tokens=10**7)
    off = estimate(PlanRequest(**base))
    on = estimate(PlanRequest(**base, gradient_checkpointing=True))
    assert on.components["activations"] < off.components["activations"] / 5
    assert on.peak_bytes < off.peak_bytes
    assert on.rows[0]["hours"] > off.rows[0]["hours"]


def test_full_finetune_states_and_flops():
    shape = resolve_model("smollm2-135m")
    plan = estimate(PlanRequest(model="smollm2-135m", method="full", gpu="h100", optimizer="adamw"))
    n = shape.total_params()
    assert plan.trainable_params == n
    assert plan.components["gradients"] == 4 * n
    assert plan.components["optimizer"] == 8 * n
    assert plan.components["weights"] == 6 * n  # fp32 master + bf16 autocast copy
    sgd = estimate(PlanRequest(model="smollm2-135m", method="full", gpu="h100", optimizer="sgd"))
    assert sgd.components["optimizer"] == 0
    full = M.flops_per_token(shape, "full", 512, gradient_checkpointing=False)
    peft = M.flops_per_token(shape, "lora", 512, gradient_checkpointing=False)
    assert full - peft == 2 * shape.matmul_params()


def test_dpo_reference_and_two_sequences():
    lora = estimate(PlanRequest(model="llama-3.2-1b", method="lora", gpu="h100"))
    dpo = estimate(PlanRequest(model="llama-3.2-1b", method="dpo", gpu="h100"))
    assert dpo.components["reference"] == 0
    assert dpo.components["logits"] == pytest.approx(2 * lora.components["logits"])
    dpo_full = estimate(PlanRequest(model="llama-3.2-1b", method="dpo", dpo_base="full", gpu="h100"))
    assert dpo_full.components["reference"] == 2 * dpo_full.total_params
    assert "reference" in dpo.to_dict()["components_gb"]


def test_logits_grow_with_vocabulary():
    small_vocab = estimate(PlanRequest(model="smollm2-135m", gpu="h100"))
    plan = small_vocab.to_dict()
    assert plan["components_gb"]["logits"] == pytest.approx(8 * 512 * 49152 * 14 / 1e9, rel=1e-3)


def test_time_and_cost_arithmetic():
    req = PlanRequest(model="llama-3-8b", method="lora", gpu="h100", processes=2, examples=100_000, epochs=2, seq_len=256)
    plan = estimate(req)
    shape = resolve_model("llama-3-8b")
    tokens = 100_000 * 2 * 256
    assert plan.train_tokens == tokens
    flops = tokens * M.flops_per_token(shape, "lora", 256, gradient_checkpointing=False)
    gpu = get_gpu("h100")
    hours = flops / (gpu.bf16_tflops * 1e12 * M.MFU * 2) / 3600
    assert plan.rows[0]["hours"] == pytest.approx(hours, rel=1e-3)
    assert plan.rows[0]["cost_usd"] == pytest.approx(hours * gpu.usd_per_hour * 2, rel=1e-2)
    no_time = estimate(PlanRequest(model="llama-3-8b", gpu="h100"))
    assert no_time.rows[0]["hours"] is None and no_time.rows[0]["cost_usd"] is None


def test_device_memory_adds_context_and_reserve_and_fit_uses_it():
    plan = estimate(PlanRequest(model="llama-3-8b", method="qlora", gpu="rtx-4090", batch_size=1, seq_len=512,
                                gradient_checkpointing=True))
    assert plan.device_bytes == pytest.approx(plan.peak_bytes * 1.1 + 0.5e9)
    assert plan.rows[0]["fits"] is True
    big = estimate(PlanRequest(model="llama-2-70b", method="full", gpu="rtx-4090"))
    assert big.rows[0]["fits"] is False
    every = estimate(PlanRequest(model="gpt2"))
    assert [r["name"] for r in every.rows] == gpu_names()


def test_plan_to_dict_has_the_issue_keys():
    d = estimate(PlanRequest(model="gpt2", gpu="t4", precision="fp16", examples=10)).to_dict()
    for key in ("total_params", "trainable_params", "components_gb", "peak_gb", "device_gb", "gpus",
                "assumptions"):
        assert key in d
    assert set(d["components_gb"]) == {"weights", "gradients", "optimizer", "activations", "logits", "overhead"}
    assert set(d["gpus"][0]) >= {"name", "vram_gb", "fits", "hours", "cost_usd"}
    assert d["assumptions"]["mfu"] == M.MFU


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"model": "no-such-model"}, "model"),
        ({"model": "/nonexistent/config.json"}, "model"),
        ({"model": "gpt2", "gpu": "gtx-9999"}, "gpu"),
        ({"model": "gpt2", "batch_size": 0}, "batch_size"),
        ({"model": "gpt2", "seq_len": -5}, "seq_len"),
        ({"model": "gpt2", "rank": 0}, "rank"),
        ({"model": "gpt2", "method": "magic"}, "method"),
        ({"model": "gpt2", "precision": "int3"}, "precision"),
        ({"model": "gpt2", "optimizer": "lion"}, "optimizer"),
        ({"model": "gpt2", "targets": "q_proj"}, "targets"),
        ({"model": "gpt2", "lora_dropout": 1.5}, "lora_dropout"),
        ({"model": "gpt2", "examples": 10, "train_tokens": 100}, "train_tokens"),
        ({"model": "gpt2", "epochs": 0}, "epochs"),
        ({"model": "gpt2", "virtual_tokens": 0}, "virtual_tokens"),
        ({"model": "gpt2", "rank": 2.5}, "rank"),
        ({"model": "gpt2", "rank": 769}, "rank"),  # above gpt2's hidden size, 768
        ({"model": "gpt2", "rank": 2**60}, "rank"),  # beyond what a JSON number carries exactly
        ({"model": "gpt2", "examples": 999_999_999_999, "epochs": 1e308}, "examples"),  # a token count past 2**53
    ],
)
def test_bad_requests_are_bad_input(kwargs, field):
    with pytest.raises(BadInput) as e:
        estimate(from_mapping(PlanRequest, kwargs))
    assert e.value.field == field


def test_plan_refuses_what_training_refuses():
    """The hyperparameter flags of `plan` carry the training contract's ranges: one value, one verdict."""
    from ftharness.training.spec import validate_candidate
    from ftharness.training.trainer import CandidateSpec

    pairs = {"rank": "r", "lora_dropout": "lora_dropout", "epochs": "epochs", "batch_size": "batch_size",
             "seq_len": "max_length", "grad_accum": "grad_accum"}
    for value in (-1, 0, 0.5, 1, 2, 1.0):
        for plan_name, hp_name in pairs.items():
            if isinstance(value, float) and hp_name not in ("lora_dropout", "epochs"):
                continue
            try:
                from_mapping(PlanRequest, {"model": "gpt2", plan_name: value})
                plan_ok = True
            except BadInput:
                plan_ok = False
            try:
                validate_candidate(CandidateSpec("c", hyperparameters={hp_name: value}))
                train_ok = True
            except BadInput:
                train_ok = False
            assert plan_ok == train_ok, (plan_name, value)


def test_config_json_errors(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    with pytest.raises(BadInput, match="not valid JSON"):
        resolve_model(str(bad))
    bad.write_text('{"model_type": "mamba", "hidden_size": 4}')
    with pytest.raises(BadInput, match="not supported"):
        resolve_model(str(bad))
    bad.write_text('{"model_type": "llama", "hidden_size": 64}')
    with pytest.raises(BadInput, match="intermediate_size"):
        resolve_model(str(bad))


def test_planner_imports_nothing_heavy():
    import subprocess
    import sys

    code = ("import sys, ftharness.planner as p; p.estimate(p.PlanRequest(model='llama-3-8b')); "
            "print(','.join(m for m in ('torch','transformers','peft','trl') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_distill_is_planned_as_its_students_training_plus_the_teachers_labelling():
    common = {"model": "llama-3.2-1b", "gpu": "l4", "examples": 2000, "epochs": 2.0}
    student = estimate(PlanRequest(method="lora", **common)).to_dict()
    distill = estimate(PlanRequest(method="distill", teacher_usd_per_million_tokens=2.5, **common)).to_dict()
    for key in ("peak_gb", "device_gb", "trainable_params", "train_tokens", "gpus"):
        assert distill[key] == student[key], key
    assert student["teacher"] is None
    # one call per example, each at most seq_len (512 by default) tokens, at the stated price
    assert distill["teacher"] == {"examples": 2000, "tokens_at_most": 2000 * 512, "usd_per_million_tokens": 2.5,
                                  "usd_at_most": round(2000 * 512 * 2.5 / 1e6, 4)}
    dora = estimate(PlanRequest(method="distill", student="dora", **common))
    assert dora.trainable_params == estimate(PlanRequest(method="dora", **common)).trainable_params
    with pytest.raises(BadInput) as e:
        estimate(PlanRequest(method="lora", teacher_usd_per_million_tokens=1.0, **common))
    assert e.value.field == "teacher_usd_per_million_tokens"


# --- several processes: what each strategy shards ---------------------------------------------------------

# peak and device bytes of a few plans as the planner gave them before it knew of processes and strategies
SINGLE_GPU_PLANS = [
    ({"model": "llama-3-8b", "method": "full"}, 176665747456.0, 194832322201.6, "optimizer step"),
    ({"model": "llama-3-8b", "method": "qlora", "gradient_checkpointing": True, "batch_size": 1},
     9486880768.0, 10935568844.800001, "backward start (loss)"),
    ({"model": "qwen2.5-7b", "method": "lora", "grad_accum": 4}, 61478972416.0, 68126869657.600006,
     "backward start (loss)"),
    ({"model": "llama-3.2-1b", "method": "dpo", "dpo_base": "full"}, 48860594176.0, 54246653593.600006,
     "backward start (loss)"),
    ({"model": "gpt2", "method": "full", "precision": "fp32", "optimizer": "sgd"}, 7455421440.0, 8700963584.0,
     "backward start (loss)"),
]


@pytest.mark.parametrize(("kwargs", "peak", "device", "phase"), SINGLE_GPU_PLANS)
def test_one_ddp_process_is_the_single_gpu_plan(kwargs, peak, device, phase):
    for plan in (estimate(PlanRequest(**kwargs)), estimate(PlanRequest(**kwargs, processes=1, strategy="ddp"))):
        assert (plan.peak_bytes, plan.device_bytes, plan.peak_phase) == (peak, device, phase)
        assert "gather_buffers" not in plan.components and "ddp_buckets" not in plan.components
        assert plan.to_dict()["processes"] == 1 and plan.to_dict()["strategy"] == "ddp"


def _llama3_8b_units():
    """Llama 3 8B's parameters, one decoder layer's and the embedding's, counted here from its config."""
    h, f, kv, vocab, layers = 4096, 14336, 1024, 128256, 32
    layer = h * h + 2 * h * kv + h * h + 3 * h * f + 2 * h  # q, k, v, o, gate/up/down, two RMSNorms
    n = layers * layer + 2 * vocab * h + h  # untied embedding and head, final norm
    return n, layer, vocab * h, h * f


def test_fully_sharded_full_finetuning_divides_model_states_and_adds_gather_buffers():
    n, layer, edge, biggest_linear = _llama3_8b_units()
    common = {"model": "llama-3-8b", "method": "full", "precision": "bf16", "processes": 8}
    fsdp = estimate(PlanRequest(**common, strategy="fsdp")).components
    # fp32 sharded weights (no persistent bf16 copy), fp32 gradients, AdamW's two fp32 states, all / 8
    assert fsdp["weights"] == pytest.approx(4 * n / 8)
    assert fsdp["gradients"] == pytest.approx(4 * n / 8)
    assert fsdp["optimizer"] == pytest.approx(8 * n / 8)
    # two units unsharded in bf16 (the embedding is Llama 3's largest) + one unit's fp32 gradients
    unit = max(layer, edge)
    assert fsdp["gather_buffers"] == pytest.approx(2 * unit * 2 + unit * 4)

    zero3 = estimate(PlanRequest(**common, strategy="deepspeed-zero3")).components
    # ZeRO (2 + 2 + K)/N: bf16 weights and gradients, fp32 master + AdamW states, all partitioned
    assert zero3["weights"] == pytest.approx(2 * n / 8 + 4 * n / 8)
    assert zero3["gradients"] == pytest.approx(2 * n / 8)
    assert zero3["optimizer"] == pytest.approx(8 * n / 8)
    # DeepSpeed's largest_layer_memory: 4 bytes x the largest module's parameters (16-bit weights + gradients)
    assert zero3["gather_buffers"] == pytest.approx(4 * max(edge, biggest_linear))


def test_fully_sharded_peft_shards_the_frozen_base_and_qloras_4bit_weights():
    n, _, _, _ = _llama3_8b_units()
    shape = resolve_model("llama-3-8b")
    for strategy in ("fsdp", "deepspeed-zero3"):
        lora = estimate(PlanRequest(model="llama-3-8b", method="lora", processes=4, strategy=strategy))
        t = lora.trainable_params
        adapters = t * 4 / 4 if strategy == "fsdp" else t * 2 / 4 + t * 4 / 4  # DeepSpeed: bf16 + fp32 master
        assert lora.components["weights"] == pytest.approx(n * 2 / 4 + adapters)
    qlora = estimate(PlanRequest(model="llama-3-8b", method="qlora", processes=4, strategy="fsdp"))
    q = M.quantised_linear_params(shape)
    # 4-bit data sharded; double-quantisation constants (0.127 bits) whole on every process; the rest bf16
    expected = q * 0.5 / 4 + q * (M.NF4_DQ_BITS - 4) / 8 + (n - q) * 2 / 4 + qlora.trainable_params * 4 / 4
    assert qlora.components["weights"] == pytest.approx(expected)


def test_zero2_shards_only_gradients_and_optimizer_states():
    n, _, _, _ = _llama3_8b_units()
    full = estimate(PlanRequest(model="llama-3-8b", method="full", processes=4, strategy="deepspeed-zero2"))
    assert full.components["weights"] == pytest.approx(2 * n + 4 * n / 4)  # bf16 whole, fp32 master partitioned
    assert full.components["gradients"] == pytest.approx(2 * n / 4)
    assert full.components["optimizer"] == pytest.approx(8 * n / 4)
    assert full.components["gather_buffers"] == 0
    lora = estimate(PlanRequest(model="llama-3-8b", method="lora", processes=4, strategy="deepspeed-zero2"))
    single = estimate(PlanRequest(model="llama-3-8b", method="lora"))
    t = lora.trainable_params
    assert lora.components["weights"] == pytest.approx(n * 2 + t * 2 + t * 4 / 4)  # the frozen base is whole
    assert lora.components["optimizer"] == pytest.approx(single.components["optimizer"] / 4)


def test_ddp_over_several_processes_adds_the_gradient_buckets():
    for kwargs in ({"method": "full"}, {"method": "lora"}):
        one = estimate(PlanRequest(model="llama-3.2-1b", **kwargs))
        four = estimate(PlanRequest(model="llama-3.2-1b", **kwargs, processes=4, strategy="ddp"))
        grads = one.components["gradients"]
        assert four.components["ddp_buckets"] == grads  # a second copy of the gradients, every phase
        for part in ("weights", "gradients", "optimizer", "activations", "logits"):
            assert four.components[part] == one.components[part]
        assert four.peak_bytes == pytest.approx(one.peak_bytes + grads)
        assert "gradient_as_bucket_view" in four.assumptions["strategy"]


def test_sharding_helps_more_with_more_processes_and_time_divides():
    common = {"model": "qwen2.5-7b", "method": "full", "gpu": "h100", "examples": 1000}
    ddp = estimate(PlanRequest(**common, processes=8))
    peaks = [estimate(PlanRequest(**common, processes=p, strategy="fsdp")).peak_bytes for p in (2, 4, 8)]
    assert peaks[0] > peaks[1] > peaks[2] and peaks[2] < ddp.peak_bytes / 3
    fsdp8 = estimate(PlanRequest(**common, processes=8, strategy="fsdp"))
    assert fsdp8.rows[0]["hours"] == ddp.rows[0]["hours"]  # the FLOPs split over 8 GPUs either way
    assert "sharded 1/8" in fsdp8.assumptions["strategy"] and "gather" in fsdp8.assumptions["strategy"]
