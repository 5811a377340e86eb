"""Shared fixtures: tiny models built here, the embedded model, an isolated cache."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pytest  # noqa: E402


@pytest.fixture
def one_torch_thread():
    """Tiny-model training runs faster on one thread than split over cores (OpenMP overhead dominates)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def embedded_dir():
    """The real embedded model (SmolLM2-135M-Instruct) as a cached safetensors folder."""
    from ftharness.models.embedded import embedded_model_dir

    return embedded_model_dir()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, embedded_dir):
    """A tiny randomly initialised Llama (2 layers, hidden 64) with the embedded model's tokenizer and
    chat template: real code paths, seconds to train."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(embedded_dir)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    out = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def varied_tiny_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny Llama with untied embeddings and a wide initialisation: its greedy outputs differ from
    prompt to prompt (the shared tiny model, initialised at 0.02 with tied embeddings, answers every prompt
    with newlines, which would make equal outputs prove nothing)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=False, initializer_range=0.2,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    out = tmp_path_factory.mktemp("varied-tiny-llama")
    LlamaForCausalLM(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def varied_tiny_lm(varied_tiny_model_dir):
    """:func:`varied_tiny_model_dir` loaded through ``load_model``."""
    from ftharness.models.loading import load_model

    return load_model(str(varied_tiny_model_dir))


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch, embedded_dir):
    """A fresh, empty ftharness cache for trained artifacts and run state; converted models are shared
    (linked) so the embedded model is not converted again."""
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "models").symlink_to(embedded_dir.parent, target_is_directory=True)
    monkeypatch.setenv("FTHARNESS_CACHE", str(cache))
    return cache


@pytest.fixture(scope="session")
def results_validator():
    """A validator for the published results.json schema (``ftharness/report/results.schema.json``)."""
    import json

    from jsonschema.validators import validator_for

    from ftharness.report.schema import SCHEMA_FILE

    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    cls = validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


@pytest.fixture
def check_results(results_validator):
    """``check_results(path_or_document)``: the document, after asserting it follows the published schema."""
    import json
    from pathlib import Path

    from jsonschema.exceptions import best_match

    def check(source):
        doc = json.loads(Path(source).read_text(encoding="utf-8")) if isinstance(source, str | Path) else source
        error = best_match(results_validator.iter_errors(doc))  # the deepest error inside the oneOf
        assert error is None, f"results.json breaks the schema at {error.json_path}: {error.message[:300]}"
        return doc

    return check


@pytest.fixture
def loopback_without_proxy(monkeypatch):
    """The HTTP clients honour HTTP(S)_PROXY, as they should for a hosted API; the tests' servers are on
    loopback."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
