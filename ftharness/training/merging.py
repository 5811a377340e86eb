"""Merging adapters: into a standalone model folder, and into one adapter from several (a candidate of its own).

- :func:`merge_artifact` folds a PEFT adapter into its base weights (``merge_and_unload``) and saves a plain
  Hugging Face model folder that loads without PEFT (serving without adapter overhead).
- :func:`combine_adapters` builds one adapter from several LoRA candidates with PEFT's
  ``add_weighted_adapter``: ``linear`` (weighted sum, same rank), ``ties`` (Yadav et al. 2023, TIES-Merging:
  trim to ``density``, elect sign, disjoint mean), ``dare_ties`` / ``dare_linear`` (Yu et al. 2023, DARE:
  random drop with rescale), ``cat``, ``svd``. The result is cached like a trained artifact, keyed by the
  parts' keys and the combination settings.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from ftharness import ui
from ftharness.errors import BadInput
from ftharness.io import atomic_write_json, check_folder, sha256_json
from ftharness.paths import artifacts_dir
from ftharness.training.run import FORMAT, KEY_LENGTH, Artifact, library_versions, load_artifact
from ftharness.training.trainer import CandidateSpec, TrainResult


def _load_peft(base: Path, adapter: Path, *, dtype: str = "float32") -> tuple[Any, Any]:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=getattr(torch, dtype))
    model = PeftModel.from_pretrained(model, str(adapter))
    return model, AutoTokenizer.from_pretrained(str(base))


def check_merge_target(out_dir: str | Path) -> Path:
    """``out_dir`` as a folder a merged model can be written to: missing or empty, under a folder (BadInput
    naming ``--merge-to`` otherwise). ``ftharness train`` checks it before training, not after."""
    out_dir = check_folder(out_dir, field="--merge-to")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise BadInput("the output folder exists and is not empty; choose another", file=out_dir, field="--merge-to")
    return out_dir


def merge_artifact(artifact: Artifact, out_dir: str | Path, *, dtype: str = "float32") -> Path:
    """Write ``artifact`` merged into its base model as a standalone folder at ``out_dir`` (atomically).

    QLoRA adapters are merged into the unquantised base weights (the usual way to ship them); the merged
    model therefore matches the adapter on the float base, not the 4-bit model it was trained against.
    """
    out_dir = check_merge_target(out_dir)
    if artifact.kind != "adapter":
        raise BadInput("this candidate is already a full model folder; nothing to merge", file=artifact.path)
    ui.status(f"merging {artifact.spec.name} into its base model at {out_dir}")
    model, tokenizer = _load_peft(artifact.base_model_path, artifact.path, dtype=dtype)
    merged = model.merge_and_unload()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        merged.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        atomic_write_json(tmp / "merged_from.json", {"artifact": str(artifact.path), "key": artifact.key,
                                                      "spec": dataclasses.asdict(artifact.spec)})
        if out_dir.exists():
            out_dir.rmdir()
        tmp.rename(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def combine_adapters(spec: CandidateSpec, parts: list[Artifact]) -> Artifact:
    """One adapter from ``parts`` (LoRA artifacts on the same base) with ``spec.hyperparameters``:
    ``weights`` (default equal), ``combination_type`` (default ``linear``), ``density`` (ties/dare)."""
    from ftharness.training.spec import combine_settings

    settings = combine_settings(spec)
    if len(parts) < 2:
        raise BadInput("combining needs at least two adapters", field="combine")
    weights = settings.weights if settings.weights is not None else [1.0 / len(parts)] * len(parts)
    if len(weights) != len(parts):
        raise BadInput(f"{len(weights)} weights for {len(parts)} adapters", field="hyperparameters.weights")
    ctype = settings.combination_type
    density = settings.density
    if ctype.startswith(("ties", "dare", "magnitude")) and density is None:
        density = 0.5  # TIES-Merging's reported sweet spot: keep the top 20-50 % (Yadav et al. 2023)
    bases = {str(p.base_model_path) for p in parts}
    if any(p.kind != "adapter" for p in parts) or len(bases) != 1:
        raise BadInput("only adapters trained on the same base model can be combined", field="combine")
    from ftharness.plugins import get_plugins

    plugins = get_plugins()
    for p in parts:
        trained = p.record.get("spec", {})
        trainer, method = trained.get("trainer", p.spec.trainer), trained.get("method", p.spec.method)
        if not plugins.training_method(trainer, method, field_prefix="combine.").combinable:
            combinable = sorted(m for m, by in plugins.methods().items() if any(d.combinable for d in by.values()))
            raise BadInput(f"{method} adapters cannot be combined (combinable: {', '.join(combinable)})",
                           field="combine")
    key = sha256_json({"format": FORMAT, "combine": [p.key for p in parts], "weights": weights, "type": ctype,
                       "density": density})[:KEY_LENGTH]
    out_dir = artifacts_dir() / key
    if (out_dir / "candidate.json").is_file():
        return load_artifact(out_dir, spec)

    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ftharness.training.measure import Measure
    from ftharness.training.sft import count_parameters

    base = parts[0].base_model_path
    with Measure() as measured:
        model = AutoModelForCausalLM.from_pretrained(str(base))
        names = [f"part{i}" for i in range(len(parts))]
        model = PeftModel.from_pretrained(model, str(parts[0].path), adapter_name=names[0])
        for name, part in zip(names[1:], parts[1:], strict=True):
            model.load_adapter(str(part.path), adapter_name=name)
        kwargs: dict[str, Any] = {"combination_type": ctype}
        if density is not None:
            kwargs["density"] = float(density)
        try:
            model.add_weighted_adapter(names, weights, "combined", **kwargs)
        except ValueError as e:
            raise BadInput(f"PEFT cannot combine these adapters: {e}", field="hyperparameters") from None
        model.set_adapter("combined")
        for name in names:
            model.delete_adapter(name)
        out_dir.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(str(out_dir), selected_adapters=["combined"], safe_serialization=True)
        # PEFT saves a non-default adapter in a subfolder: move it to the artifact root (the PEFT layout).
        sub = out_dir / "combined"
        if sub.is_dir():
            for f in sub.iterdir():
                f.replace(out_dir / f.name)
            sub.rmdir()
        AutoTokenizer.from_pretrained(str(base)).save_pretrained(str(out_dir))
        trainable, total = count_parameters(model)
    m = measured.result
    result = TrainResult(wall_s=m.wall_s, train_tokens=0, tokens_per_s=0.0, peak_memory_bytes=m.peak_memory_bytes,
                         memory_kind=m.memory_kind, trainable_params=trainable, total_params=total,
                         extra={"combination_type": ctype, "weights": weights, "density": density,
                                "parts": [p.key for p in parts]})
    record = {
        "format": FORMAT, "key": key, "kind": "adapter", "spec": dataclasses.asdict(spec),
        "hyperparameters": {"weights": weights, "combination_type": ctype, "density": density},
        "seed": spec.seed, "base_model": {"path": str(base), **parts[0].record.get("base_model", {})},
        "combined_from": [{"key": p.key, "name": p.spec.name, "path": str(p.path)} for p in parts],
        "libraries": library_versions(), "finished_at": time.time(), "result": result.to_dict(),
    }
    record["base_model"]["path"] = str(base)
    atomic_write_json(out_dir / "loss_curve.json", [])
    atomic_write_json(out_dir / "candidate.json", record)
    return Artifact(path=out_dir, spec=spec, result=result, cached=False, key=key, kind="adapter",
                    base_model_path=base, record=record)
