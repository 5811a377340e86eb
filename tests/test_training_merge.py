"""Merging a LoRA candidate into a standalone model, and combining adapters into a candidate of their own."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
SYSTEM = "Extract the order as JSON."


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def two_loras(tiny_model_dir, isolated_cache):
    from ftharness.data.loading import load_dataset
    from ftharness.training.run import train_candidate
    from ftharness.training.trainer import CandidateSpec

    data = load_dataset(DATA / "train_tiny.jsonl")
    spec = CandidateSpec(name="a", method="lora", base_model=str(tiny_model_dir),
                         hyperparameters={"max_steps": 2, "batch_size": 4, "learning_rate": 5e-2})
    a = train_candidate(spec, data, None, system_prompt=SYSTEM, progress=False)
    b = train_candidate(replace(spec, name="b", seed=1), data, None, system_prompt=SYSTEM, progress=False)
    return a, b


def _logits(model, ids):
    import torch

    with torch.no_grad():
        return model(input_ids=ids, use_cache=False).logits.float()


@pytest.mark.slow
def test_merged_model_gives_the_adapter_logits_and_adapters_combine(two_loras, tmp_path, tiny_model_dir):
    import torch

    from ftharness.errors import BadInput
    from ftharness.models.loading import load_model
    from ftharness.training.merging import merge_artifact

    a, b = two_loras
    out = merge_artifact(a, tmp_path / "merged")
    assert (out / "config.json").is_file() and not (out / "adapter_config.json").exists()
    adapter = load_model(**a.model_args())
    merged = load_model(str(out))
    base = load_model(str(tiny_model_dir))
    ids = torch.tensor([adapter.tokenizer("Hi, Mo here. I ordered 2 x kettle.")["input_ids"]])
    la, lm, lb = _logits(adapter.model, ids), _logits(merged.model, ids), _logits(base.model, ids)
    assert torch.allclose(la, lm, atol=1e-5), float((la - lm).abs().max())
    assert not torch.allclose(la, lb, atol=1e-3)  # the adapter did change the model
    with pytest.raises(BadInput, match="not empty"):
        merge_artifact(a, out)

    # The same two adapters combined (PEFT add_weighted_adapter) into candidates of their own.
    for ctype in ("linear", "ties", "dare_ties"):
        _check_combination(a, b, ctype, tiny_model_dir)


def _check_combination(a, b, ctype, tiny_model_dir):
    import torch

    from ftharness.models.loading import load_model
    from ftharness.training.merging import combine_adapters
    from ftharness.training.trainer import CandidateSpec

    spec = CandidateSpec(name=f"combo-{ctype}", method="combine",
                         hyperparameters={"weights": [0.7, 0.3], "combination_type": ctype})
    combo = combine_adapters(spec, [a, b])
    assert combo.kind == "adapter" and (combo.path / "adapter_model.safetensors").is_file()
    assert (combo.path / "candidate.json").is_file() and not combo.cached
    assert combo.record["combined_from"][0]["key"] == a.key
    lm = load_model(**combo.model_args())
    ids = torch.tensor([lm.tokenizer("Hi, Mo here.")["input_ids"]])
    logits = _logits(lm.model, ids)
    assert torch.isfinite(logits).all()
    base = _logits(load_model(str(tiny_model_dir)).model, ids)
    assert not torch.allclose(logits, base, atol=1e-4)
    again = combine_adapters(spec, [a, b])
    assert again.cached and again.path == combo.path
