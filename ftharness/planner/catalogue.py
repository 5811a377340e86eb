"""The planner's catalogue: model shapes (presets or a local config.json) and GPUs, read from data files.

Entries of ``data/models.yaml`` and ``data/gpus.yaml`` are read as :class:`ModelShape` and :class:`Gpu`
records through :func:`ftharness.typed.from_mapping`, so a broken entry names its file and field.

Names as people type them: :func:`model_name` and :func:`gpu_name` are the one lookup every command uses
(``plan``, ``advise``'s scenario files, flags and questionnaire, a task file's ``decision.gpu``). A name
matches an entry when both read the same after normalising: case, spaces, dashes and underscores are
ignored (``Llama-3.1-8B`` = ``llama3.1 8b`` = ``llama-3.1-8b``); for GPUs also the vendor and product-line
words of :data:`GPU_VENDOR_WORDS` (``NVIDIA GeForce RTX 4090`` = ``rtx4090`` = ``4090``), and a memory size
(``80GB``) selects among the entries of one card by the size in the entry's name or its ``vram_gb``
(``a100 80GB`` is ``a100-80gb``, ``h100-80gb`` is ``h100``). Names no normalisation derives (``H100 SXM``)
are the entries' ``aliases`` in the data files. A name matching several entries (``a100``) is bad input
listing them; an unknown one names the closest entry.
Nothing heavy is imported here: only PyYAML (C loader when present) and the standard library, so
`ftharness plan` answers without torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from ftharness.errors import BadInput
from ftharness.io import read_json_file
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
    aliases: list[str] = spec(factory=list)

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
    aliases: list[str] = spec(factory=list)


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


# Words that name a vendor or a product line, not one GPU (`nvidia-smi` prints "NVIDIA GeForce RTX 4090").
GPU_VENDOR_WORDS = frozenset({"nvidia", "geforce", "rtx", "tesla", "apple"})
_WORDS = re.compile(r"[a-z]+|[0-9]+(?:\.[0-9]+)*")  # runs of letters, and numbers with their dots


def _words(name: str) -> tuple[str, ...]:
    """``name`` as its runs of letters and numbers: case, spaces, dashes and underscores fall away, and a
    letter-digit boundary separates as a dash does (``llama3.1 8b`` and ``Llama-3.1-8B`` read the same)."""
    return tuple(_WORDS.findall(name.lower()))


def _gpu_words(name: str) -> tuple[tuple[str, ...], float | None]:
    """A GPU name's words without vendor words, and the memory size it states (``80GB``), if any."""
    words = [w for w in _words(name) if w not in GPU_VENDOR_WORDS]
    for i in range(len(words) - 1):
        if words[i + 1] == "gb" and words[i][0].isdigit():
            return (*words[:i], *words[i + 2:]), float(words[i])
    return tuple(words), None


def _matches(name: str, entries: dict[str, dict[str, Any]], *, gpu: bool) -> list[str]:
    """The keys of the entries that ``name`` (or one of their ``aliases``) reads as."""
    if not gpu:
        wanted = _words(name)
        return [key for key, data in entries.items()
                if any(_words(str(n)) == wanted for n in (key, *(data.get("aliases") or ())))]
    wanted, memory = _gpu_words(name)
    found = []
    for key, data in entries.items():
        for n in (key, *(data.get("aliases") or ())):
            words, stated = _gpu_words(str(n))
            if words == wanted and memory in (None, stated if stated is not None else data.get("vram_gb")):
                found.append(key)
                break
    return found


def _lookup(name: str, entries: dict[str, dict[str, Any]], *, gpu: bool) -> str | None:
    """The one key ``name`` means; None when it means none; BadInput(field "gpu" or "model") listing the
    entries when it means several."""
    found = _matches(name, entries, gpu=gpu)
    if len(found) > 1:
        raise BadInput(f"{'GPU' if gpu else 'model'} {name!r} matches {len(found)} catalogue entries; did you "
                       f"mean {' or '.join(found)}?", field="gpu" if gpu else "model")
    return found[0] if found else None


def _close(name: str, choices: list[str]) -> str:
    near = close_match(name.strip().lower().replace("_", "-").replace(" ", "-"), choices)
    return f"; did you mean {near}?" if near else f"; known: {', '.join(choices)}"


def model_name(name: str) -> str | None:
    """The preset ``name`` means (see the module docstring), or None when it names no preset (it may be a
    path); BadInput(field="model") when it could mean several."""
    return _lookup(str(name), _presets(), gpu=False)


def gpu_name(name: str) -> str:
    """The catalogue GPU ``name`` means (see the module docstring); BadInput(field="gpu") when it means
    several (listing them) or none (naming the closest)."""
    key = _lookup(str(name), _gpus(), gpu=True)
    if key is None:
        raise BadInput(f"unknown GPU {name!r}{_close(str(name), gpu_names())}", field="gpu")
    return key


def _entry(cls: type, file: str, key: str, data: dict[str, Any]) -> Any:
    return from_mapping(cls, {"name": key, **data}, source=_data_file(file), prefix=f"{key}.")


def resolve_model(name_or_config_path: str) -> ModelShape:
    """A preset by name (:func:`model_name`), or the shape read from a local HF config.json (or a model
    folder holding one). Unknown and ambiguous names and unreadable files are BadInput(field="model")."""
    raw = str(name_or_config_path)
    presets = _presets()
    key = model_name(raw)
    if key is not None:
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
    config = read_json_file(path)
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
            data["head_dim"] = config["head_dim"]
    return from_mapping(ModelShape, {"name": name, "source": source, **data}, source=source or None)


def get_gpu(name: str) -> Gpu:
    """A catalogue GPU by name (:func:`gpu_name`); BadInput(field="gpu") with the candidates or close matches."""
    key = gpu_name(name)
    return _entry(Gpu, "gpus.yaml", key, _gpus()[key])
