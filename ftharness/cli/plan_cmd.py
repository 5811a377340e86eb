"""`ftharness plan`: peak training memory, time and cost of one configuration, per GPU.

Imports nothing heavy: the planner is arithmetic over YAML data. ``--method`` takes the names the
installed trainers declare (``ftharness plugins``); the planner says so when it has no model for one.
"""

from __future__ import annotations

import argparse
from typing import Any


def _number(kind: type, low: float, high: float | None = None) -> Any:
    """An argparse ``type`` reading a number of ``kind`` in (low, inf), or in [low, high) when ``high`` is set."""
    noun = "a whole number" if kind is int else "a number"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None
        if high is None and not value > low:
            raise argparse.ArgumentTypeError(f"must be > {low:g}, got {text}")
        if high is not None and not low <= value < high:
            raise argparse.ArgumentTypeError(f"must be in [{low:g}, {high:g}), got {text}")
        return value

    return parse


_positive_int = _number(int, 0)
_positive_float = _number(float, 0)
_dropout = _number(float, 0, 1)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plan",
        help="peak memory, time and cost of a finetune on each GPU",
        description="Predict peak training memory (torch.cuda.max_memory_allocated), device memory, "
        "time and cost of one finetuning configuration, for one GPU or the whole catalogue.",
    )
    p.add_argument("--model", required=True, help="preset name (e.g. llama-3-8b) or a Hugging Face config.json")
    p.add_argument("--method", default="lora",
                   help="a training method the installed trainers declare (`ftharness plugins`; default lora)")
    p.add_argument("--rank", type=_positive_int, default=16, help="LoRA/QLoRA/DoRA rank (default 16)")
    p.add_argument("--targets", default="all-linear", help="q_proj,v_proj,... or all-linear (default)")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="bf16")
    p.add_argument("--optimizer", choices=("adamw", "adamw-8bit", "paged-adamw-8bit", "sgd"), default="adamw")
    p.add_argument("--batch-size", type=_positive_int, default=8, help="per GPU (default 8)")
    p.add_argument("--seq-len", type=_positive_int, default=512, help="tokens per sequence (default 512)")
    p.add_argument("--grad-accum", type=_positive_int, default=1)
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--gpu", help="one catalogue GPU (default: every GPU of the catalogue)")
    p.add_argument("--gpus", type=_positive_int, default=1, help="GPUs, data parallel (default 1)")
    p.add_argument("--attention", choices=("eager", "sdpa", "flash"), default="sdpa")
    p.add_argument("--lora-dropout", type=_dropout, default=0.0)
    p.add_argument("--examples", type=_positive_int, help="training examples (time and cost)")
    p.add_argument("--epochs", type=_positive_float, default=1.0, help="epochs over --examples (default 1)")
    p.add_argument("--train-tokens", type=_positive_int, help="total training tokens (instead of --examples)")
    p.add_argument("--virtual-tokens", type=_positive_int, default=20, help="prefix/prompt tuning (default 20)")
    p.add_argument("--dpo-base", choices=("lora", "qlora", "full"), default="lora",
                   help="what DPO trains (default lora: the reference is the adapter-disabled model)")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ftharness.planner import PlanRequest, estimate
    from ftharness.plugins import get_plugins

    get_plugins().check_method(args.method, field="--method")

    req = PlanRequest(
        model=args.model, method=args.method, rank=args.rank, targets=args.targets, precision=args.precision,
        optimizer=args.optimizer, batch_size=args.batch_size, seq_len=args.seq_len, grad_accum=args.grad_accum,
        gradient_checkpointing=args.gradient_checkpointing, gpu=args.gpu, gpus=args.gpus,
        attention=args.attention, lora_dropout=args.lora_dropout, examples=args.examples, epochs=args.epochs,
        train_tokens=args.train_tokens, virtual_tokens=args.virtual_tokens, dpo_base=args.dpo_base,
    )
    plan = estimate(req).to_dict()
    if args.json:
        from ftharness.cli.render import print_json

        print_json(plan)
    else:
        _render(plan)
    return 0


def _fmt(value: Any, spec: str = ".2f", none: str = "-") -> str:
    return none if value is None else format(value, spec)


def _render(plan: dict[str, Any]) -> None:
    from rich.table import Table

    from ftharness.cli.render import console

    out = console()
    out.print(
        f"[bold]{plan['model']}[/bold] {plan['method']}: {plan['total_params']:,} parameters, "
        f"{plan['trainable_params']:,} trainable "
        f"({100 * plan['trainable_params'] / max(plan['total_params'], 1):.3f} %)"
    )
    parts = Table(title="Memory (GB)", show_header=True)
    parts.add_column("part")
    parts.add_column("GB", justify="right")
    for name, gb in plan["components_gb"].items():
        parts.add_row(name, f"{gb:.2f}")
    parts.add_row("[bold]peak (max_memory_allocated)[/bold]", f"[bold]{plan['peak_gb']:.2f}[/bold]")
    parts.add_row("device (nvidia-smi)", f"{plan['device_gb']:.2f}")
    out.print(parts)
    out.print(f"peak at: {plan['peak_phase']}")
    rows = Table(title="GPUs", show_header=True)
    for col, justify in (("GPU", "left"), ("VRAM GB", "right"), ("fits", "center"), ("hours", "right"),
                         ("cost $", "right")):
        rows.add_column(col, justify=justify)
    for row in plan["gpus"]:
        fits = "[green]yes[/green]" if row["fits"] else "[red]no[/red]"
        rows.add_row(row["name"], f"{row['vram_gb']:g}", fits, _fmt(row["hours"]), _fmt(row["cost_usd"]))
    out.print(rows)
    if plan["train_tokens"] is None:
        out.print("time and cost need --examples (with --epochs) or --train-tokens")
    a = plan["assumptions"]
    out.print(f"assumptions: MFU {a['mfu']}, CUDA context {a['cuda_context_gb']} GB, allocator reserve "
              f"{int(a['allocator_reserve'] * 100)} %, {a['weights']}; {a['multi_gpu']}")
    for w in plan["warnings"]:
        out.print(f"[yellow]warning:[/yellow] {w}")
