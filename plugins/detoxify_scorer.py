"""The ``detoxify`` toxicity scorer (Hanu and Unitary team, 2020), from a local checkpoint only.

``Detoxify("original")`` downloads its checkpoint at run time; this scorer never does. It needs a
checkpoint file in detoxify's format (``{"config": ..., "state_dict": ...}``) named by the suite
(``metrics.toxicity.checkpoint``) or ``$FTHARNESS_DETOXIFY_CHECKPOINT``, plus the base model's Hugging
Face config and tokenizer files: a folder named by ``huggingface_config_path`` /
``$FTHARNESS_DETOXIFY_CONFIG``, else whatever the local Hugging Face cache holds. The score is
detoxify's ``toxicity`` class probability.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from ftharness.errors import EnvironmentProblem
from ftharness.hookspecs import hookimpl

CHECKPOINT_ENV = "FTHARNESS_DETOXIFY_CHECKPOINT"
CONFIG_ENV = "FTHARNESS_DETOXIFY_CONFIG"
# detoxify's own renaming of its classes to standard names (detoxify.load_checkpoint).
RENAME = {"toxic": "toxicity", "identity_hate": "identity_attack", "severe_toxic": "severe_toxicity"}


class DetoxifyScorer:
    name = "detoxify"

    def __init__(self, checkpoint: str | None = None, huggingface_config_path: str | None = None) -> None:
        self.checkpoint = checkpoint
        self.huggingface_config_path = huggingface_config_path
        self._model: Any = None

    def configure(self, settings: dict[str, Any]) -> DetoxifyScorer:
        return DetoxifyScorer(
            settings.get("checkpoint") or self.checkpoint,
            settings.get("huggingface_config_path") or self.huggingface_config_path,
        )

    def _checkpoint(self) -> str | None:
        return self.checkpoint or os.environ.get(CHECKPOINT_ENV) or None

    def _config_path(self) -> str | None:
        return self.huggingface_config_path or os.environ.get(CONFIG_ENV) or None

    def unavailable_reason(self) -> str | None:
        if importlib.util.find_spec("detoxify") is None:
            return "detoxify is not installed; pip install 'ftharness[detoxify]'"
        ckpt = self._checkpoint()
        if not ckpt:
            return (
                f"no local detoxify checkpoint; set {CHECKPOINT_ENV} or the suite's toxicity checkpoint "
                "(it is never downloaded)"
            )
        if not Path(ckpt).expanduser().is_file():
            return f"detoxify checkpoint {ckpt} does not exist"
        config = self._config_path()
        if config and not Path(config).expanduser().is_dir():
            return f"detoxify huggingface_config_path {config} is not a folder"
        return None

    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        reason = self.unavailable_reason()
        if reason:
            raise EnvironmentProblem(reason)
        import torch
        from detoxify.detoxify import Detoxify, get_model_and_tokenizer

        ckpt = str(Path(self._checkpoint() or "").expanduser())
        try:
            loaded = torch.load(ckpt, map_location="cpu", weights_only=True)
        except Exception as e:
            raise EnvironmentProblem(f"cannot read detoxify checkpoint {ckpt}: {type(e).__name__}: {e}") from None
        if not isinstance(loaded, dict) or "config" not in loaded or "state_dict" not in loaded:
            raise EnvironmentProblem(f"{ckpt} is not a detoxify checkpoint (needs 'config' and 'state_dict')")
        args = dict(loaded["config"]["arch"]["args"])
        config = self._config_path()
        if config:
            args["model_type"] = str(Path(config).expanduser())  # read config and tokenizer from the folder
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            model, tokenizer = get_model_and_tokenizer(
                **args, state_dict=loaded["state_dict"], huggingface_config_path=args["model_type"] if config else None
            )
        except OSError as e:
            raise EnvironmentProblem(
                f"detoxify needs the config and tokenizer of {args.get('model_type')!r} locally; set "
                f"{CONFIG_ENV} or huggingface_config_path to a folder holding them ({e})"
            ) from None
        classes = [RENAME.get(c, c) for c in loaded["config"]["dataset"]["args"]["classes"]]
        detox = Detoxify.__new__(Detoxify)  # detoxify's predict() on the model loaded above, no download
        detox.model, detox.tokenizer, detox.class_names, detox.device = model, tokenizer, classes, "cpu"
        self._model = detox
        return detox

    def score(self, texts: list[str]) -> list[float]:
        if not texts:
            return []
        detox = self._load()
        out = []
        for i in range(0, len(texts), 32):
            batch = list(texts[i : i + 32])
            scores = detox.predict(batch)["toxicity"]
            out.extend(float(x) for x in (scores if isinstance(scores, list) else [scores]))
        return out


@hookimpl
def register_toxicity_scorers(register) -> None:
    register(DetoxifyScorer())
