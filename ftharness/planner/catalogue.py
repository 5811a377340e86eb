"""The planner's catalogue: model shapes (presets or a local config.json) and GPUs, read from data files.

Entries of ``data/models.yaml`` and ``data/gpus.yaml`` are read as :class:`ModelShape` and :class:`Gpu`
records through :func:`ftharness.typed.from_mapping`, so a broken entry names its file and field.
Nothing heavy is imported here: only PyYAML (C loader when present) and the standard library, so
`ftharness plan` answers without torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from ftharness.errors import BadInput
from ftharness.paths import package_data
from ftharness.typed import close_match, from_mapping, load_mapping, spec

Arch = Literal["llama", "qwen2", "gemma2", "phi3", "gpt2"]
# model_type in a Hugging Face config.json -> the planner's arch (same module names and layer layout)
_MODEL_TYPES = {
    "llama": "llama",
    "mistral": "llama",
    "qwen2": "qwen2",
    "gemma2": "gemma2",
    "phi3": "phi3",
    "gpt2": "gpt2",
}


@dataclass(frozen=True)
class Linear:
    """One linear layer of a transformer block: its PEFT module name, shapes and role."""

    name: str
    d_in: int
    d_out: int
    group: str  # modules sharing one input tensor: "attn_in", "attn_out", "mlp_in", "mlp_out"
    bias: bool = False


@dataclass(frozen=True)
class ModelShape:
    """The shape of a decoder-only transformer: everything the memory and time models read."""

    name: str
    arch: Arch
    hidden: int = spec(ge=1)
    intermediate: int = spec(ge=1)
    layers: int = spec(ge=1)
    heads: int = spec(ge=1)
    kv_heads: int = spec(ge=1)
    vocab: int = spec(ge=1)
    tied: bool = spec()
    max_positions: int = spec(ge=1)
    head_dim: int | None = spec(None, ge=1)
    source: str = ""

    @property
    def hd(self) -> int:
        return self.head_dim or self.hidden // self.heads

    @property
    def q_dim(self) -> int:
        return self.heads * self.hd

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.hd

    @property
    def norms_per_layer(self) -> int:
        return 4 if self.arch == "gemma2" else 2

    @property
    def gated_mlp(self) -> bool:
        return self.arch != "gpt2"

    def block_linears(self) -> list[Linear]:
        """The linear layers of one block with the module names PEFT matches targets against."""
        h, f, q, kv = self.hidden, self.intermediate, self.q_dim, self.kv_dim
        if self.arch == "gpt2":
            return [
                Linear("c_attn", h, 3 * h, "attn_in", True),
                Linear("c_proj", h, h, "attn_out", True),
                Linear("c_fc", h, f, "mlp_in", True),
                Linear("c_proj", f, h, "mlp_out", True),
            ]
        if self.arch == "phi3":
            return [
                Linear("qkv_proj", h, q + 2 * kv, "attn_in"),
                Linear("o_proj", q, h, "attn_out"),
                Linear("gate_up_proj", h, 2 * f, "mlp_in"),
                Linear("down_proj", f, h, "mlp_out"),
            ]
        bias = self.arch == "qwen2"  # Qwen2 has biases on q, k, v only
        return [
            Linear("q_proj", h, q, "attn_in", bias),
            Linear("k_proj", h, kv, "attn_in", bias),
            Linear("v_proj", h, kv, "attn_in", bias),
            Linear("o_proj", q, h, "attn_out"),
            Linear("gate_proj", h, f, "mlp_in"),
            Linear("up_proj", h, f, "mlp_in"),
            Linear("down_proj", f, h, "mlp_out"),
        ]

    def embedding_params(self) -> int:
        """Input embeddings (token, plus learned positions for GPT-2)."""
        pos = self.max_positions * self.hidden if self.arch == "gpt2" else 0
        return self.vocab * self.hidden + pos

    def lm_head_params(self) -> int:
        return 0 if self.tied else self.vocab * self.hidden

    def norm_params_per_layer(self) -> int:
        per_norm = 2 * self.hidden if self.arch == "gpt2" else self.hidden  # LayerNorm has a bias
        return self.norms_per_layer * per_norm

    def linear_params_per_layer(self) -> int:
        return sum(m.d_in * m.d_out + (m.d_out if m.bias else 0) for m in self.block_linears())

    def final_norm_params(self) -> int:
        return 2 * self.hidden if self.arch == "gpt2" else self.hidden

    def total_params(self) -> int:
        """Every parameter, counted as `model.num_parameters()` counts them (tied weights once)."""
        per_layer = self.linear_params_per_layer() + self.norm_params_per_layer()
        return (
            self.embedding_params()
            + self.layers * per_layer
            + self.final_norm_params()
            + self.lm_head_params()
        )

    def matmul_params(self) -> int:
        """Parameters that take part in a matrix product per token (the N of 2N forward FLOPs): the
        blocks' linears and the output projection, not the embedding lookup (Kaplan et al. 2020, sec. 2.1)."""
        return self.layers * self.linear_params_per_layer() + self.vocab * self.hidden

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "arch": self.arch,
            "hidden": self.hidden,
            "intermediate": self.intermediate,
            "layers": self.layers,
            "heads": self.heads,
            "kv_heads": self.kv_heads,
            "head_dim": self.hd,
            "vocab": self.vocab,
            "tied": self.tied,
            "max_positions": self.max_positions,
            "source": self.source,
        }


@dataclass(frozen=True)
class Gpu:
    """One GPU of ``data/gpus.yaml`` (the file's header says what each field means)."""

    name: str
    vram_gb: float = spec(gt=0)
    bf16_tflops: float = spec(gt=0)
    usd_per_hour: float | None = spec(ge=0)
    price_source: str = spec()
    price_date: str | None = spec()
    tflops_source: str = ""
    notes: str = ""


def _data_file(name: str) -> Path:
    return package_data("planner", "data", name)


@lru_cache(maxsize=1)
def _presets() -> dict[str, dict[str, Any]]:
    return load_mapping(_data_file("models.yaml"))


@lru_cache(maxsize=1)
def _gpus() -> dict[str, dict[str, Any]]:
    return load_mapping(_data_file("gpus.yaml"))


def model_names() -> list[str]:
    return list(_presets())


def gpu_names() -> list[str]:
    return list(_gpus())


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(" ", "-")


def _close(name: str, choices: list[str]) -> str:
    near = close_match(_norm(name), choices)
    return f"; did you mean {near}?" if near else f"; known: {', '.join(choices)}"


def _entry(cls: type, file: str, key: str, data: dict[str, Any]) -> Any:
    return from_mapping(cls, {"name": key, **data}, source=_data_file(file), prefix=f"{key}.")


def resolve_model(name_or_config_path: str) -> ModelShape:
    """A preset by name (case and -/_ insensitive), or the shape read from a local HF config.json
    (or a model folder holding one). Unknown names and unreadable files are BadInput(field="model")."""
    raw = str(name_or_config_path)
    presets = _presets()
    key = _norm(raw)
    if key in presets:
        return _entry(ModelShape, "models.yaml", key, presets[key])
    path = Path(raw).expanduser()
    looks_like_path = path.suffix == ".json" or "/" in raw or raw.startswith(".") or path.exists()
    if not looks_like_path:
        raise BadInput(f"unknown model {raw!r}: not a preset nor a config.json path{_close(raw, list(presets))}",
                       field="model")
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise BadInput(f"config file not found: {path}; give a preset name or a Hugging Face config.json",
                       field="model")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadInput(f"not a valid JSON config: {e}", file=path, field="model") from None
    if not isinstance(config, dict):
        raise BadInput("expected a JSON object (a Hugging Face config.json)", file=path, field="model")
    return shape_from_config(config, name=path.parent.name or str(path), source=str(path))


def shape_from_config(config: dict[str, Any], *, name: str, source: str = "") -> ModelShape:
    """Read a transformers config.json dict. Supported model_type: llama, mistral, qwen2, gemma2, phi3,
    gpt2 (the layouts the memory model knows); others are BadInput naming the supported ones."""
    mtype = config.get("model_type")
    arch = _MODEL_TYPES.get(str(mtype))
    if arch is None:
        raise BadInput(
            f"model_type {mtype!r} is not supported by the planner; supported: {', '.join(_MODEL_TYPES)}",
            file=source or None, field="model")
    if arch == "gpt2":
        keys = {"hidden": "n_embd", "layers": "n_layer", "heads": "n_head", "vocab": "vocab_size",
                "max_positions": "n_positions"}
    else:
        keys = {"hidden": "hidden_size", "intermediate": "intermediate_size", "layers": "num_hidden_layers",
                "heads": "num_attention_heads", "vocab": "vocab_size", "max_positions": "max_position_embeddings"}
    data: dict[str, Any] = {"arch": arch}
    for field, key in keys.items():
        value = config.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise BadInput(f"config needs a positive whole number {key!r}, got {value!r}",
                           file=source or None, field="model")
        data[field] = value
    if arch == "gpt2":
        data["intermediate"] = config.get("n_inner") or 4 * data["hidden"]
        data["kv_heads"] = data["heads"]
        data["tied"] = bool(config.get("tie_word_embeddings", True))
    else:
        data["kv_heads"] = config.get("num_key_value_heads") or data["heads"]
        data["tied"] = bool(config.get("tie_word_embeddings", False))
        if config.get("head_dim"):
            data["head_dim"] = int(config["head_dim"])
    return ModelShape(name=name, source=source, **data)


def get_gpu(name: str) -> Gpu:
    """A catalogue GPU by name (case and -/_ insensitive); BadInput(field="gpu") with close matches."""
    gpus = _gpus()
    key = _norm(str(name))
    if key not in gpus:
        raise BadInput(f"unknown GPU {name!r}{_close(str(name), list(gpus))}", field="gpu")
    return _entry(Gpu, "gpus.yaml", key, gpus[key])
