"""Loading a causal LM and its tokenizer from what a user can name: nothing (the embedded default), a
local Hugging Face folder, a ``.gguf`` file, a hub id already in the local Hugging Face cache, or a PEFT
adapter folder (base + adapter).

Nothing is downloaded: a hub id that is not cached is bad input, not a download. No model code from a
repository runs unless ``trust_remote_code`` is asked for (README, "Commands").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftharness.errors import BadInput
from ftharness.io import read_json_file

EMBEDDED_ALIASES = ("embedded", "default")
ADAPTER_CONFIG = "adapter_config.json"
DTYPES = {
    "float32": "float32", "fp32": "float32",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float16": "float16", "fp16": "float16",
    "auto": "auto",
}


@dataclass
class LoadedModel:
    """A model ready for generation: eval mode; tokenizer pads on the left and has a pad token."""

    model: Any
    tokenizer: Any
    name: str
    path: Path  # the base model's folder
    adapter: Path | None = None
    dtype: str = "float32"
    device: str = "cpu"
    merged: bool = False  # the adapter's weights were folded into the base weights (merge_adapter)
    # what names these weights across loads (a content hash of the folder, set by whoever loaded them
    # untouched); None: this object alone, so figures cached for it are not reused for another load
    identity: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "adapter": str(self.adapter) if self.adapter else None,
            "merged": self.merged,
            "dtype": self.dtype,
            "device": self.device,
        }


def merge_adapter(lm: LoadedModel) -> bool:
    """Fold ``lm``'s adapter into its base weights in place (PEFT ``merge_and_unload``); True if it did.

    How a LoRA-family adapter is served: the merged model computes ``W + BA`` in one matmul per layer
    instead of three, so it generates faster (the embedded model's 24 bundled rows: 28 s merged against
    44 s attached, identical outputs; ``merged_latency`` in a compare run measures it per task). Adapters
    that cannot be merged (prompt and prefix tuning: virtual tokens, no weight delta) stay attached and
    False is returned. The base was loaded unquantised (:func:`load_model`), so QLoRA adapters merge into
    float weights, as they are shipped.
    """
    if getattr(lm, "adapter", None) is None or getattr(lm, "merged", False) or not hasattr(lm.model, "merge_and_unload"):
        return False
    lm.model = lm.model.merge_and_unload()
    lm.merged = True
    return True


def is_embedded(spec: str | Path | None) -> bool:
    """Whether ``spec`` names the embedded default model (nothing, ``embedded``, ``default`` or its name)."""
    from ftharness.models.embedded import EMBEDDED_NAME

    return spec is None or str(spec).strip() in (*EMBEDDED_ALIASES, EMBEDDED_NAME, "")


def local_model_dir(spec: str | Path | None) -> Path:
    """The local folder holding the model (or adapter) that ``spec`` names.

    None/"embedded" -> the embedded default (converted once); an existing folder as is; a ``.gguf`` file
    converted once into the cache; otherwise a hub id looked up in the local Hugging Face cache only.
    """
    from ftharness.models.embedded import embedded_model_dir, gguf_model_dir

    if is_embedded(spec):
        return embedded_model_dir()
    text = str(spec).strip()
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists() and not (path / ADAPTER_CONFIG).exists():
            raise BadInput(
                "this folder holds neither a model (config.json) nor a PEFT adapter (adapter_config.json)",
                file=path, field="model",
            )
        return path
    if path.suffix.lower() == ".gguf":
        return gguf_model_dir(path)  # BadInput when the file does not exist
    if path.exists():
        raise BadInput("a model is a folder, a .gguf file or a hub id, not this file", file=path, field="model")
    if text.startswith((".", "/", "~")) or text.count("/") > 1:
        raise BadInput("no such folder", file=path, field="model")
    return _hub_cache_dir(text)


def hub_id(spec: str | Path | None) -> str | None:
    """The Hugging Face hub id of the model ``spec`` names, where it names one: the embedded default's
    origin (its GGUF file is a quantised copy of it), or the hub id itself; None for a folder or a file."""
    from ftharness.models.embedded import EMBEDDED_NAME, HUB_ID

    text = "" if spec is None else str(spec).strip()
    if text in (*EMBEDDED_ALIASES, EMBEDDED_NAME, ""):
        return HUB_ID
    path = Path(text).expanduser()
    if path.exists() or path.suffix.lower() == ".gguf" or text.startswith((".", "/", "~")) or text.count("/") > 1:
        return None
    return text


def _hub_cache_dir(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError

    try:
        return Path(snapshot_download(repo_id=repo_id, local_files_only=True))
    except HFValidationError as e:
        raise BadInput(f"{repo_id!r} is neither an existing path nor a valid hub id ({e})", field="model") from e
    except Exception as e:  # LocalEntryNotFoundError and friends: not in the cache
        raise BadInput(
            f"{repo_id!r} is not a local folder or .gguf file, and not in the local Hugging Face cache; "
            "ftharness downloads nothing: download it first (e.g. `hf download "
            f"{repo_id}`) or pass a local folder",
            field="model",
        ) from e


def resolve(spec: str | Path | None, adapter: str | Path | None = None) -> tuple[Path, Path | None]:
    """(base model folder, adapter folder or None) for a model spec and an optional adapter.

    A spec that is itself an adapter folder loads its base from ``base_model_name_or_path``.
    """
    path = local_model_dir(spec)
    adapter_dir: Path | None = None
    if (path / ADAPTER_CONFIG).exists():
        if adapter is not None:
            raise BadInput("the model is already an adapter folder; pass the base model with --model", field="adapter")
        adapter_dir = path
    elif adapter is not None:
        adapter_dir = Path(adapter).expanduser()
        if not (adapter_dir / ADAPTER_CONFIG).exists():
            raise BadInput("not a PEFT adapter folder (no adapter_config.json)", file=adapter_dir, field="adapter")
    if adapter_dir is not None and adapter_dir == path:
        config_file = adapter_dir / ADAPTER_CONFIG
        config = read_json_file(config_file)
        base = config.get("base_model_name_or_path") if isinstance(config, dict) else None
        if not base:
            raise BadInput("base_model_name_or_path is empty; pass the base model with --model and this folder with --adapter",
                           file=config_file, field="base_model_name_or_path")
        path = local_model_dir(base)
        if (path / ADAPTER_CONFIG).exists():
            raise BadInput("the adapter's base is itself an adapter", file=config_file, field="base_model_name_or_path")
    return path, adapter_dir


def model_name(spec: str | Path | None, base: Path, adapter_dir: Path | None = None) -> str:
    """A short display name: the embedded name, a folder's or file's name, or the hub id; "+adapter" when one is on."""
    from ftharness.models.embedded import EMBEDDED_NAME

    text = "" if spec is None else str(spec).strip()
    path = Path(text).expanduser()
    if text in (*EMBEDDED_ALIASES, ""):
        name = EMBEDDED_NAME
    elif path.exists():
        name = path.resolve().name
    else:
        name = text
    if adapter_dir is None:
        return name
    if path.exists() and path.resolve() == adapter_dir.resolve():
        return f"{base.name}+{adapter_dir.name}"
    return f"{name}+{adapter_dir.name}"


def load_tokenizer(spec: str | Path | None = None, *, adapter: str | Path | None = None,
                   trust_remote_code: bool = False) -> Any:
    """The tokenizer of a model spec, set up for batched generation (left padding, a pad token)."""
    base, adapter_dir = resolve(spec, adapter)
    return _tokenizer(base, adapter_dir, trust_remote_code)


def _tokenizer(base: Path, adapter_dir: Path | None, trust_remote_code: bool) -> Any:
    from transformers import AutoTokenizer

    # A trainer may save the tokenizer beside the adapter (e.g. with a pad token set): prefer it.
    source = adapter_dir if adapter_dir is not None and (adapter_dir / "tokenizer_config.json").exists() else base
    try:
        tok = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise BadInput(f"cannot load a tokenizer: {str(e).splitlines()[0]}", file=source, field="model") from e
    tok.padding_side = "left"  # decoder-only generation continues from the right edge
    if tok.pad_token is None:
        # Reuse EOS for padding instead of adding a token, so the embedding matrix is not resized; padded
        # positions are masked out by the attention mask anyway.
        tok.pad_token = tok.eos_token
    return tok


def canonical_dtype(dtype: str) -> str:
    key = str(dtype).lower().replace("torch.", "")
    if key not in DTYPES:
        raise BadInput(f"unknown dtype {dtype!r}; choose one of {', '.join(sorted(set(DTYPES.values())))}", field="dtype")
    return DTYPES[key]


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def layer_names(spec: str | Path | None) -> dict[str, str]:
    """The layers (modules without children) of the model ``spec`` names, by dotted name, with their class
    (``{"model.layers.0.self_attn.q_proj": "Linear", ...}``): the model is built from its config on the meta
    device, so no weight is read or allocated."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    base, _ = resolve(spec)
    try:
        config = AutoConfig.from_pretrained(str(base))
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
    except (OSError, ValueError, KeyError) as e:
        raise BadInput(f"cannot read a causal LM's config from this folder: {str(e).splitlines()[0]}",
                       file=base, field="model") from None
    return {name: type(m).__name__ for name, m in model.named_modules() if name and not any(m.children())}


def load_model(
    spec: str | Path | None = None,
    *,
    adapter: str | Path | None = None,
    dtype: str = "float32",
    trust_remote_code: bool = False,
    device: str | None = None,
) -> LoadedModel:
    """Load a causal LM (and PEFT adapter) for evaluation: eval mode, left-padding tokenizer, pad token set."""
    import torch
    from transformers import AutoModelForCausalLM

    dtype_name = canonical_dtype(dtype)
    base, adapter_dir = resolve(spec, adapter)
    device = device or default_device()
    torch_dtype = "auto" if dtype_name == "auto" else getattr(torch, dtype_name)
    try:
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch_dtype, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise BadInput(f"cannot load a causal LM from this folder: {str(e).splitlines()[0]}", file=base, field="model") from e
    if adapter_dir is not None:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, adapter_dir)
        except (OSError, ValueError, RuntimeError) as e:
            raise BadInput(f"cannot load this adapter onto {base.name}: {str(e).splitlines()[0]}",
                           file=adapter_dir, field="adapter") from e
    model.to(device)
    model.eval()
    tokenizer = _tokenizer(base, adapter_dir, trust_remote_code)
    gen_config = getattr(model, "generation_config", None)
    if gen_config is not None and gen_config.pad_token_id is None:
        gen_config.pad_token_id = tokenizer.pad_token_id
    actual = str(next(model.parameters()).dtype).replace("torch.", "")
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        name=model_name(spec, base, adapter_dir),
        path=base,
        adapter=adapter_dir,
        dtype=actual if dtype_name == "auto" else dtype_name,
        device=device,
    )
