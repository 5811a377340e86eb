"""The trl-dpo trainer: DPO through a LoRA adapter, on the base model or on top of an SFT candidate."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
SYSTEM = "Extract the order as JSON."


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.slow
def test_dpo_on_base_and_on_top_of_an_sft_adapter(tiny_model_dir, isolated_cache):
    import torch

    from ftharness.data.loading import load_dataset
    from ftharness.models.loading import load_model
    from ftharness.training.run import train_candidate
    from ftharness.training.trainer import CandidateSpec

    prefs = load_dataset(DATA / "train_tiny_pref.jsonl", require_completion=False)
    sft_data = load_dataset(DATA / "train_tiny.jsonl")
    hp = {"max_steps": 4, "batch_size": 4, "learning_rate": 5e-3, "early_stopping_patience": None}

    dpo = train_candidate(CandidateSpec(name="dpo", trainer="trl-dpo", method="dpo", base_model=str(tiny_model_dir),
                                        hyperparameters=hp), prefs, None, system_prompt=SYSTEM, progress=False)
    r = dpo.result
    assert dpo.kind == "adapter" and (dpo.path / "adapter_model.safetensors").is_file()
    assert r.extra["reference"].startswith("the base model")
    losses = [p["loss"] for p in r.loss_curve if "loss" in p]
    assert losses[0] == pytest.approx(math.log(2), abs=1e-3)  # policy == reference before the first update
    assert losses[-1] < losses[0]
    assert r.extra["rewards/margins"] > 0 and 0.0 <= r.extra["rewards/accuracies"] <= 1.0
    assert any("rewards/margins" in p for p in r.loss_curve) and r.train_tokens > 0

    sft = train_candidate(CandidateSpec(name="sft", method="lora", base_model=str(tiny_model_dir),
                                        hyperparameters={**hp, "learning_rate": 2e-2}),
                          sft_data, None, system_prompt=SYSTEM, progress=False)
    on_sft = train_candidate(CandidateSpec(name="dpo-on-sft", trainer="trl-dpo", method="dpo",
                                           base_model=str(tiny_model_dir), start_from="sft", hyperparameters=hp),
                             prefs, None, system_prompt=SYSTEM, start_from=sft, progress=False)
    assert on_sft.result.extra["reference"].startswith("the start_from candidate")
    assert on_sft.record["start_from"]["key"] == sft.key and on_sft.path != dpo.path
    first = [p["loss"] for p in on_sft.result.loss_curve if "loss" in p][0]
    assert first == pytest.approx(math.log(2), abs=1e-3)  # the reference is the SFT model itself
    # Only the trained adapter is saved (not TRL's frozen reference copy), and it differs from the SFT one.
    from safetensors.torch import load_file

    a, b = load_file(sft.path / "adapter_model.safetensors"), load_file(on_sft.path / "adapter_model.safetensors")
    assert set(a) == set(b) and any(not torch.equal(a[k], b[k]) for k in a)
    lm = load_model(**on_sft.model_args())
    assert lm.adapter is not None


def test_dpo_needs_preference_pairs(tiny_model_dir, isolated_cache):
    from ftharness.data.loading import load_dataset
    from ftharness.errors import BadInput
    from ftharness.training.run import train_candidate
    from ftharness.training.trainer import CandidateSpec

    sft_data = load_dataset(DATA / "train_tiny.jsonl")
    with pytest.raises(BadInput, match="preference pairs") as e:
        train_candidate(CandidateSpec(name="dpo", trainer="trl-dpo", method="dpo", base_model=str(tiny_model_dir),
                                      hyperparameters={"max_steps": 1}), sft_data, None, progress=False)
    assert e.value.line == 1 and e.value.file.endswith("train_tiny.jsonl")
