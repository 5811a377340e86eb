"""Model loading: what a user can name (folder, GGUF, cached hub id, embedded), adapters, tokenizer setup."""

from __future__ import annotations

import shutil

import pytest

from ftharness.errors import BadInput
from ftharness.models.loading import hub_id, load_model, load_tokenizer, local_model_dir, resolve


def test_embedded_is_the_default(embedded_dir):
    assert local_model_dir(None) == embedded_dir
    assert local_model_dir("embedded") == embedded_dir


def test_folder_loads_with_left_padding_and_pad_token(tiny_model_dir):
    lm = load_model(str(tiny_model_dir))
    assert lm.path == tiny_model_dir and lm.adapter is None and lm.dtype == "float32"
    assert not lm.model.training
    assert lm.tokenizer.padding_side == "left" and lm.tokenizer.pad_token_id is not None
    assert lm.to_dict()["name"] == tiny_model_dir.name


def test_missing_pad_token_reuses_eos_without_resizing(tmp_path, tiny_model_dir):
    folder = tmp_path / "nopad"
    shutil.copytree(tiny_model_dir, folder)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    tok.pad_token = None
    tok.save_pretrained(folder)
    loaded = load_tokenizer(str(folder))
    assert loaded.pad_token == loaded.eos_token and len(loaded) == len(tok)


def test_dtype_is_recorded_and_checked(tiny_model_dir):
    assert load_model(str(tiny_model_dir), dtype="bf16").dtype == "bfloat16"
    assert str(next(load_model(str(tiny_model_dir), dtype="bf16").model.parameters()).dtype) == "torch.bfloat16"
    with pytest.raises(BadInput, match="unknown dtype") as e:
        load_model(str(tiny_model_dir), dtype="int3")
    assert e.value.field == "dtype"


def test_bad_model_specs(tmp_path):
    with pytest.raises(BadInput, match="no such folder"):
        local_model_dir(str(tmp_path / "nope"))
    with pytest.raises(BadInput, match="neither a model"):
        local_model_dir(str(tmp_path))
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(BadInput, match="not this file"):
        local_model_dir(str(tmp_path / "weights.bin"))
    with pytest.raises(BadInput, match="no such GGUF file"):
        local_model_dir(str(tmp_path / "model.gguf"))


def test_hub_id_only_from_the_local_cache(tmp_path, monkeypatch, tiny_model_dir):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(BadInput, match="not in the local Hugging Face cache; ftharness downloads nothing") as e:
        local_model_dir("some-org/some-model")
    assert e.value.field == "model"
    # The cache layout huggingface_hub writes: refs/main names the snapshot folder.
    repo = tmp_path / "hub" / "models--some-org--some-model"
    snapshot = repo / "snapshots" / ("a" * 40)
    shutil.copytree(tiny_model_dir, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    assert local_model_dir("some-org/some-model") == snapshot
    assert load_model("some-org/some-model").name == "some-org/some-model"


def test_hub_id_names_the_hub_model_a_spec_comes_from(tmp_path, tiny_model_dir):
    assert hub_id(None) == hub_id("embedded") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert hub_id("Qwen/Qwen2.5-0.5B") == "Qwen/Qwen2.5-0.5B" and hub_id("gpt2") == "gpt2"
    assert hub_id(str(tiny_model_dir)) is None and hub_id(str(tmp_path / "m.gguf")) is None
    assert hub_id("./models/mine") is None and hub_id("a/b/c") is None


def test_broken_gguf_is_bad_input(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a gguf file at all")
    with pytest.raises(BadInput) as e:
        local_model_dir(str(bad))
    assert e.value.field == "model" and "broken.gguf" in str(e.value)


def test_embedded_gguf_file_maps_to_the_converted_cache(embedded_dir):
    from ftharness.models.embedded import gguf_path

    assert local_model_dir(str(gguf_path())) == embedded_dir


def _tiny_peft(tiny_model_dir, out):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    # init_lora_weights=False draws B at random too, so the adapter changes the outputs.
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(base, config)
    peft_model.save_pretrained(out)
    return peft_model.eval()


def test_adapter_loads_on_its_base(tmp_path, tiny_model_dir):
    import torch

    adapter = tmp_path / "adapter"
    reference = _tiny_peft(tiny_model_dir, adapter)
    ids = torch.tensor([[1, 100, 200, 300, 400]])
    with torch.no_grad():
        expected = reference(input_ids=ids).logits
        base_logits = load_model(str(tiny_model_dir)).model(input_ids=ids).logits
    assert not torch.allclose(expected, base_logits, atol=1e-4)  # the adapter does something

    for lm in (load_model(str(tiny_model_dir), adapter=adapter), load_model(str(adapter))):
        assert lm.adapter == adapter and lm.path == tiny_model_dir
        assert lm.name == f"{tiny_model_dir.name}+adapter"
        assert not lm.model.training
        with torch.no_grad():
            got = lm.model(input_ids=ids).logits
        torch.testing.assert_close(got, expected)


def test_bad_adapters(tmp_path, tiny_model_dir):
    with pytest.raises(BadInput, match="no adapter_config.json") as e:
        load_model(str(tiny_model_dir), adapter=tmp_path)
    assert e.value.field == "adapter"
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    with pytest.raises(BadInput, match="base_model_name_or_path is empty"):
        resolve(str(adapter))
    (adapter / "adapter_config.json").write_text('{"base_model_name_or_path": "')
    with pytest.raises(BadInput, match="not valid JSON"):
        resolve(str(adapter))


@pytest.mark.e2e
def test_gguf_file_is_converted_once_into_the_cache(tmp_path, monkeypatch, embedded_dir):
    """A GGUF file anywhere converts into the cache and gives the embedded conversion's logits."""
    import os
    import time

    import torch
    from transformers import AutoModelForCausalLM

    from ftharness.models.embedded import gguf_path

    monkeypatch.setenv("FTHARNESS_CACHE", str(tmp_path / "cache"))
    copy = tmp_path / "copy.gguf"
    shutil.copyfile(gguf_path(), copy)
    try:
        folder = local_model_dir(str(copy))
        assert folder.parent == tmp_path / "cache" / "models" and folder.name.startswith("gguf-copy-")
        ids = torch.tensor([[1, 4093, 198, 6004, 2]])
        with torch.no_grad():
            got = AutoModelForCausalLM.from_pretrained(folder).eval()(input_ids=ids).logits
            want = AutoModelForCausalLM.from_pretrained(embedded_dir).eval()(input_ids=ids).logits
        torch.testing.assert_close(got, want)
        stamp = os.stat(folder / "config.json").st_mtime_ns
        start = time.perf_counter()
        assert local_model_dir(str(copy)) == folder  # a cache hit, not a second conversion
        assert time.perf_counter() - start < 2 and os.stat(folder / "config.json").st_mtime_ns == stamp
    finally:
        shutil.rmtree(tmp_path / "cache", ignore_errors=True)
