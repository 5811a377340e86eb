"""Every method of the peft trainer on a tiny model: the loss falls, the artifact reloads with the same logits
as the model in memory at the end of training, the trainable-parameter count matches the planner, and a
second request reuses the cache."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
SYSTEM = "Extract the order as JSON."
# Learning rates high enough for a random 2-layer model to move in a few steps.
LR = {"lora": 2e-2, "qlora": 2e-2, "dora": 2e-2, "ia3": 3e-1, "prefix": 5e-2, "prompt-tuning": 1e-1,
      "full": 1e-3, "partial": 2e-3}
PLANNED = ("lora", "qlora", "dora", "ia3", "prefix", "prompt-tuning", "full")  # methods the planner models


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def logits_at_end(probe):
    """A TrainerCallback that records the model's logits on ``probe`` when training ends."""
    import torch
    from transformers import TrainerCallback

    class Grab(TrainerCallback):
        logits = None

        def on_train_end(self, args, state, control, model=None, **kw):
            was = model.training
            model.eval()
            with torch.no_grad():
                self.logits = model(input_ids=probe, use_cache=False).logits.float().clone()
            model.train(was)

    return Grab()


def _data():
    from ftharness.data.loading import load_dataset

    data = load_dataset(DATA / "train_tiny.jsonl")
    train = type(data)(data.examples[:8], data.format, data.file, data.sha256)
    evald = type(data)(data.examples[8:10], data.format, data.file, data.sha256)
    return train, evald


def _reload(artifact, method):
    if method != "qlora":
        from ftharness.models.loading import load_model

        return load_model(**artifact.model_args()).model
    # QLoRA trained against the 4-bit base: reload it the same way to compare logits.
    from ftharness_plugins.peft_trainer import load_base
    from peft import PeftModel

    from ftharness.training.spec import validate_candidate

    hp = validate_candidate(artifact.spec)
    base, _ = load_base(artifact.base_model_path, "qlora", hp)
    return PeftModel.from_pretrained(base, str(artifact.path)).eval()


@pytest.mark.slow
@pytest.mark.parametrize("method", ["lora", "qlora", "dora", "ia3", "prefix", "prompt-tuning", "full", "partial"])
def test_method_trains_reloads_matches_plan_and_caches(method, tiny_model_dir, isolated_cache):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ftharness.training.run import train_candidate
    from ftharness.training.sequences import completion_loss, sft_rows
    from ftharness.training.trainer import CandidateSpec

    train, evald = _data()
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    probe = torch.tensor([tok("Hi, Mo here. I ordered 2 x kettle.")["input_ids"]])
    grab = logits_at_end(probe)
    spec = CandidateSpec(name=f"tiny-{method}", method=method, base_model=str(tiny_model_dir), hyperparameters={
        "max_steps": 4, "batch_size": 4, "learning_rate": LR[method], "early_stopping_patience": None})
    art = train_candidate(spec, train, evald, system_prompt=SYSTEM, progress=False, callbacks=[grab])

    assert not art.cached
    assert (art.path / "candidate.json").is_file() and (art.path / "loss_curve.json").is_file()
    assert not (art.path / "work").exists()  # checkpoints are cleared once complete
    if method in ("full", "partial"):
        assert art.kind == "model" and (art.path / "config.json").is_file()
    else:
        assert art.kind == "adapter"
        assert (art.path / "adapter_config.json").is_file() and (art.path / "adapter_model.safetensors").is_file()
    r = art.result
    assert r.train_tokens > 0 and r.tokens_per_s > 0 and r.wall_s > 0
    assert r.peak_memory_bytes >= r.extra["start_memory_bytes"] > 0 and r.memory_kind == "rss"
    assert [p["step"] for p in r.loss_curve if "loss" in p] == [1, 2, 3, 4]
    assert any("eval_loss" in p for p in r.loss_curve)

    # The saved artifact gives the logits the model had in memory.
    reloaded = _reload(art, method)
    with torch.no_grad():
        logits = reloaded(input_ids=probe, use_cache=False).logits.float()
    atol = 1e-2 if method == "qlora" else 1e-5  # 4-bit dequantisation runs again on reload
    assert torch.allclose(logits, grab.logits, atol=atol), float((logits - grab.logits).abs().max())

    # The loss on the training data fell.
    rows, _ = sft_rows(tok, train.examples, SYSTEM, max_length=256)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    before, after = completion_loss(base, rows), completion_loss(reloaded, rows)
    assert after < before - 0.02, (before, after)

    # Trainable parameters equal the planner's count for the same configuration.
    if method in PLANNED:
        from ftharness.planner import PlanRequest, estimate

        targets = "k_proj,v_proj,down_proj" if method == "ia3" else "all-linear"  # PEFT's IA3 default for Llama
        plan = estimate(PlanRequest(model=str(tiny_model_dir / "config.json"), method=method, rank=16,
                                    targets=targets, virtual_tokens=20))
        assert plan.trainable_params == r.trainable_params

    # The same request again is served from the cache.
    again = train_candidate(spec, train, evald, system_prompt=SYSTEM, progress=False)
    assert again.cached and again.path == art.path and again.result.train_tokens == r.train_tokens
