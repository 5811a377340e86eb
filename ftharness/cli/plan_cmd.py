"""`ftharness plan`: peak training memory, time and cost of one configuration, per GPU.

Imports nothing heavy: the planner is arithmetic over YAML data. One flag per field of
:class:`ftharness.planner.PlanRequest`, read and checked by :mod:`ftharness.typed`. ``--method`` takes the
names the installed trainers declare (``ftharness plugins``); the planner says so when it has no model for one.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ftharness.planner import PlanRequest
    from ftharness.typed import add_flags

    p = sub.add_parser(
        "plan",
        help="peak memory, time and cost of a finetune on each GPU",
        description="Predict peak training memory (torch.cuda.max_memory_allocated), device memory, "
        "time and cost of one finetuning configuration, for one GPU or the whole catalogue.",
    )
    add_flags(p, PlanRequest)
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ftharness.errors import BadInput
    from ftharness.planner import PlanRequest, estimate
    from ftharness.plugins import get_plugins
    from ftharness.typed import flag_name, flag_values

    req = PlanRequest(**flag_values(PlanRequest, args))
    get_plugins().check_method(req.method, field="--method")
    try:
        plan = estimate(req).to_dict()
    except BadInput as e:  # a field of the request is the flag the user typed
        if e.field is None or e.field not in vars(args):
            raise
        raise BadInput(e.reason, file=e.file, line=e.line, field=flag_name(e.field)) from None
    if args.json:
        from ftharness.cli.render import print_json

        print_json(plan)
    else:
        _render(plan)
    return 0


def _fmt(value: Any, spec: str = ".2f", none: str = "-") -> str:
    return none if value is None else format(value, spec)


def _render(plan: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    from ftharness.cli.render import console

    out = console()
    out.print(
        f"[bold]{escape(plan['model'])}[/bold] {plan['method']}: {plan['total_params']:,} parameters, "
        f"{plan['trainable_params']:,} trainable "
        f"({100 * plan['trainable_params'] / max(plan['total_params'], 1):.3f} %)"
    )
    processes = plan["processes"]
    out.print(f"processes {processes}, strategy {plan['strategy']}: {escape(plan['assumptions']['strategy'])}")
    title = "Memory (GB)" if processes == 1 else "Memory per process (GB)"
    parts = Table(title=title, show_header=True)
    parts.add_column("part")
    parts.add_column("GB", justify="right")
    for name, gb in plan["components_gb"].items():
        parts.add_row(name, f"{gb:.2f}")
    parts.add_row("[bold]peak (max_memory_allocated)[/bold]", f"[bold]{plan['peak_gb']:.2f}[/bold]")
    parts.add_row("device (nvidia-smi)", f"{plan['device_gb']:.2f}")
    out.print(parts)
    out.print(f"peak at: {plan['peak_phase']}")
    rows = Table(title="GPUs" if processes == 1 else f"GPUs ({processes} each: wall-clock hours, cost of all)",
                 show_header=True)
    for col, justify in (("GPU", "left"), ("VRAM GB", "right"), ("fits", "center"), ("hours", "right"),
                         ("cost $", "right")):
        rows.add_column(col, justify=justify)
    for row in plan["gpus"]:
        fits = "[green]yes[/green]" if row["fits"] else "[red]no[/red]"
        rows.add_row(row["name"], f"{row['vram_gb']:g}", fits, _fmt(row["hours"]), _fmt(row["cost_usd"]))
    out.print(rows)
    if plan["train_tokens"] is None:
        out.print("time and cost need --examples (with --epochs), --train-tokens, or --corpus-tokens (with --epochs)")
    teacher = plan.get("teacher")
    if teacher is not None:
        cost = (f"at most ${teacher['usd_at_most']:,.2f}" if teacher["usd_at_most"] is not None
                else "cost: give --teacher-usd-per-million-tokens" if teacher["tokens_at_most"] is not None
                else "cost: give --examples and --teacher-usd-per-million-tokens")
        calls = f"{teacher['examples']:,} teacher calls, " if teacher["examples"] is not None else ""
        tokens = f"at most {teacher['tokens_at_most']:,} tokens; " if teacher["tokens_at_most"] is not None else ""
        out.print(f"teacher labelling (on top of the student's training): {calls}{tokens}{cost}")
    a = plan["assumptions"]
    out.print(f"assumptions: MFU {a['mfu']}, CUDA context {a['cuda_context_gb']} GB, allocator reserve "
              f"{int(a['allocator_reserve'] * 100)} %, {a['weights']}")
    for w in plan["warnings"]:
        out.print(f"[yellow]warning:[/yellow] {escape(w)}")
