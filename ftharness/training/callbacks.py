"""transformers ``TrainerCallback`` classes the trainers share: progress bar, early stopping that keeps the
best weights, and the loss curve. Built by functions so that transformers is imported only when training."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from ftharness import faults, ui


def progress_callback(description: str) -> Any:
    """A :func:`ftharness.ui.progress` step over the optimiser steps (a resumed run starts where it stopped),
    noting the latest loss. The step opens on ``on_train_begin`` and closes on ``on_train_end``; one left
    open by an exception is closed with the UI (:func:`ftharness.ui.installed`)."""
    from transformers import TrainerCallback

    class _Progress(TrainerCallback):
        def __init__(self) -> None:
            self._open: contextlib.ExitStack | None = None
            self._step: ui.Step | None = None
            self._done = 0

        def on_train_begin(self, args, state, control, **kw):
            self._open = contextlib.ExitStack()
            self._step = self._open.enter_context(
                ui.progress(description, state.max_steps, completed=state.global_step)
            )
            self._done = state.global_step

        def on_step_end(self, args, state, control, **kw):
            if self._step is not None:
                self._step.advance(state.global_step - self._done)
                self._done = state.global_step

        def on_log(self, args, state, control, logs=None, **kw):
            if self._step is not None and logs:
                parts = [f"{k} {logs[k]:.4f}" for k in ("loss", "eval_loss") if k in logs]
                if parts:
                    self._step.note(" ".join(parts))

        def on_train_end(self, args, state, control, **kw):
            if self._open is not None:
                self._open.close()
                self._open, self._step = None, None

    return _Progress()


def best_eval_callback(patience: int | None, store: Path) -> Any:
    """Early stopping on the eval loss (Prechelt 1998): stop after ``patience`` evaluations without a new
    best, and put the best weights back at the end. The best trainable tensors are saved to ``store`` (in the
    artifact's work folder) so that a resumed run still restores them. A sharded model (FSDP: its parameters
    are DTensors) keeps one file per process, each with its own shards."""
    import os

    import torch
    from transformers import TrainerCallback

    class _BestEval(TrainerCallback):
        def __init__(self) -> None:
            self.restored_from_step: int | None = None
            self.stopped_early = False

        @staticmethod
        def _evals(state) -> list[tuple[int, float]]:
            return [(h["step"], h["eval_loss"]) for h in state.log_history if "eval_loss" in h]

        @staticmethod
        def _store(model) -> tuple[Path, bool]:
            sharded = any(hasattr(p, "to_local") for p in model.parameters())
            if not sharded:
                return store, False
            return store.with_name(f"{store.stem}-rank{os.environ.get('RANK', '0')}{store.suffix}"), True

        def on_evaluate(self, args, state, control, metrics=None, model=None, **kw):
            evals = self._evals(state)
            if not evals or model is None:
                return
            best_i = min(range(len(evals)), key=lambda i: evals[i][1])
            path, sharded = self._store(model)
            if best_i == len(evals) - 1 and (sharded or state.is_world_process_zero):
                trainable = {n: _local(p).detach().cpu().clone() for n, p in model.named_parameters()
                             if p.requires_grad}
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                torch.save({"step": evals[-1][0], "tensors": trainable}, tmp)
                tmp.replace(path)
            if patience is not None and len(evals) - 1 - best_i >= patience:
                control.should_training_stop = True
                self.stopped_early = True

        def on_train_end(self, args, state, control, model=None, **kw):
            evals = self._evals(state)
            path = self._store(model)[0] if model is not None else store
            if not evals or model is None or not path.exists():
                return
            best_i = min(range(len(evals)), key=lambda i: evals[i][1])
            if best_i == len(evals) - 1:
                return
            saved = torch.load(path, map_location="cpu", weights_only=True)
            params = dict(model.named_parameters())
            with torch.no_grad():
                for name, tensor in saved["tensors"].items():
                    local = _local(params[name])
                    local.copy_(tensor.to(local.device, local.dtype))
            self.restored_from_step = int(saved["step"])

    return _BestEval()


def _local(p: Any) -> Any:
    """This process's part of a parameter: its shard under FSDP (a DTensor), else the parameter."""
    return p.to_local() if hasattr(p, "to_local") else p


def fault_callback() -> Any:
    """The ``train-step`` point of the test hook :mod:`ftharness.faults`, reached after each optimiser step."""
    from transformers import TrainerCallback

    class _Fault(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            faults.reached("train-step")

    return _Fault()


def loss_curve(log_history: list[dict[str, Any]]) -> list[dict[str, float]]:
    """``[{"step", "epoch", "loss"}, {"step", "epoch", "eval_loss"}, ...]`` from the Trainer's log history,
    plus whatever reward figures DPO logged on the same entries."""
    keep = ("loss", "eval_loss", "rewards/margins", "rewards/accuracies", "eval_rewards/margins",
            "eval_rewards/accuracies", "learning_rate", "grad_norm")
    curve = []
    for h in log_history:
        if "loss" in h or "eval_loss" in h:
            point = {"step": int(h.get("step", 0)), "epoch": float(h.get("epoch", 0.0))}
            point.update({k: float(h[k]) for k in keep if k in h})
            curve.append(point)
    return curve


def stop_at_step_callback(step: int) -> Any:
    """Stop training after optimizer step ``step``, evaluating (when the run has validation rows) and saving
    a checkpoint there, so a later run can continue from it with the same schedule (successive halving)."""
    from transformers import TrainerCallback

    class _StopAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step >= step:
                control.should_training_stop = True
                control.should_save = True
                control.should_evaluate = args.eval_strategy != "no"
            return control

    return _StopAt()
