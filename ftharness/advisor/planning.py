"""The advisor's window on the planner: checking names, sizing models, and planning one method.

Everything the advisor needs from ``ftharness.planner`` goes through here, so the rules see plain facts
(:class:`Fit`) rather than the planner's objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any


def check_model(name: str) -> str:
    """The catalogue's name of a preset (``name`` itself for a config.json path); BadInput(field="model") for
    a name that is neither, or that could mean several presets."""
    from ftharness.planner.catalogue import model_name, resolve_model

    resolve_model(name)
    return model_name(name) or name


def check_gpu(name: str) -> str:
    """The catalogue's name of a GPU; BadInput(field="gpu") for one it does not know, or could mean several."""
    from ftharness.planner.catalogue import gpu_name

    return gpu_name(name)


@lru_cache(maxsize=64)
def params_b(model: str) -> float:
    """Total parameters of a preset or config, in billions, as the planner counts them."""
    from ftharness.planner.catalogue import resolve_model

    return resolve_model(model).total_params() / 1e9


def presets_by_size() -> list[tuple[str, float]]:
    """Every planner preset with its size in billions, smallest first."""
    from ftharness.planner.catalogue import model_names

    return sorted(((name, params_b(name)) for name in model_names()), key=lambda x: (x[1], x[0]))


def closest_preset(size_b: float) -> tuple[str, float]:
    """The preset whose size is nearest ``size_b`` (on a log scale: 1B vs 3B is as far as 3B vs 9B)."""
    import math

    target = max(size_b, 1e-3)
    return min(presets_by_size(), key=lambda x: abs(math.log(max(x[1], 1e-3) / target)))


def largest_preset_up_to(max_b: float) -> tuple[str, float] | None:
    fitting = [p for p in presets_by_size() if p[1] <= max_b]
    return fitting[-1] if fitting else None


# How the advisor plans a scenario with several GPUs: one training process per GPU, fully sharded (the
# model's states divided among them, as a full finetune of a model near a GPU's size needs; DDP would keep a
# whole copy, and a second copy of the gradients, on each). One GPU: one process, nothing to shard.
MULTI_GPU_STRATEGY = "fsdp"


def strategy_for(gpus: int | None) -> str:
    """The strategy the advisor plans ``gpus`` GPUs with."""
    return MULTI_GPU_STRATEGY if gpus and gpus > 1 else "ddp"


@dataclass(frozen=True)
class Fit:
    """One planned method on the scenario's hardware: the facts the memory and budget rules read."""

    method: str
    model: str
    base: str | None  # what DPO trains (lora / qlora / full); None for other methods
    peak_gb: float
    device_gb: float
    gpu: str | None  # None: no GPU named, the plan lists the whole catalogue
    gpus: int
    vram_gb: float | None
    fits: bool | None  # None when no GPU was named
    hours: float | None
    cost_usd: float | None
    plan: dict[str, Any]


def fit(
    model: str,
    method: str,
    *,
    gpu: str | None,
    gpus: int,
    examples: int | None,
    epochs: float,
    train_tokens: int | None = None,
    gradient_checkpointing: bool = False,
    dpo_base: str = "lora",
) -> Fit:
    """Plan ``method`` on ``model`` and read off whether it fits the named GPU(s) and what it costs."""
    plan = _plan_dict(model, method, gpu, gpus, examples, epochs, train_tokens, gradient_checkpointing, dpo_base)
    row = _gpu_row(plan) if gpu else None
    return Fit(
        method=method,
        model=model,
        base=dpo_base if method == "dpo" else None,
        peak_gb=float(plan["peak_gb"]),
        device_gb=float(plan.get("device_gb", plan["peak_gb"])),
        gpu=gpu,
        gpus=gpus,
        vram_gb=_num(row, "vram_gb"),
        fits=bool(row["fits"]) if row is not None and row.get("fits") is not None else None,
        hours=_num(row, "hours"),
        cost_usd=_num(row, "cost_usd"),
        plan=plan,
    )


def _num(row: dict | None, key: str) -> float | None:
    if row is None or row.get(key) is None:
        return None
    return float(row[key])


@lru_cache(maxsize=256)
def _plan_cached(*key: Any) -> dict[str, Any]:
    from ftharness.planner import PlanRequest, estimate

    model, method, gpu, gpus, examples, epochs, tokens, checkpointing, dpo_base = key
    req = PlanRequest(
        model=model, method=method, gpu=gpu, processes=gpus, strategy=strategy_for(gpus), examples=examples,
        epochs=epochs, train_tokens=tokens, gradient_checkpointing=checkpointing, dpo_base=dpo_base,
    )
    return estimate(req).to_dict()


def _plan_dict(*key: Any) -> dict[str, Any]:
    """A private copy of the cached plan: callers may edit what they get."""
    import copy

    return copy.deepcopy(_plan_cached(*key))


def _gpu_row(plan: dict[str, Any]) -> dict[str, Any] | None:
    """The row of the one GPU the plan was asked about."""
    rows = plan.get("gpus")
    return rows[0] if isinstance(rows, list) and len(rows) == 1 else None
