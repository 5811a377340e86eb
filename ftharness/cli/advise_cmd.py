"""`ftharness advise`: should we finetune at all, and how?

Input: ``--scenario FILE``, a flag per scenario field (flags override the file), or, in a terminal with
neither, a questionnaire. Nothing heavy is imported: advise answers in well under a second without torch.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

# field -> (flag kind, help); the names are the scenario contract (advisor/scenario.py)
_FLAGS: dict[str, tuple[str, str]] = {
    "problems": ("list", "comma-separated: format,style,behavior,knowledge,domain,cost,latency,safety,preference"),
    "prompting_exhausted": ("bool", "prompting (instructions, few-shot, retrieved examples) was pushed hard"),
    "prompting_score": ("float", "best prompting score on your evaluation set, 0..1"),
    "target_score": ("float", "score the task needs, 0..1"),
    "labeled_examples": ("int", "high-quality labeled examples on hand"),
    "preference_pairs": ("int", "chosen/rejected preference pairs on hand"),
    "domain_corpus_tokens": ("int", "tokens of unlabeled in-domain text"),
    "knowledge_refresh": ("str", "how often facts change: static|yearly|quarterly|monthly|weekly|daily|realtime"),
    "task_changes_often": ("bool", "the task definition itself changes often"),
    "on_device": ("bool", "the model must run on the user's device"),
    "latency_ms": ("float", "latency budget per request in milliseconds"),
    "data_can_leave": ("bool", "training data may be sent to a third party"),
    "model": ("str", "planner preset name or path to a Hugging Face config.json"),
    "model_params_b": ("float", "model size in billions of parameters, when no model is named"),
    "gpu": ("str", "GPU catalogue name (see `ftharness plan`)"),
    "gpu_count": ("int", "number of GPUs"),
    "budget_usd": ("float", "training budget in US dollars"),
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "advise",
        help="should we finetune at all, and how? (rules from the literature, explained)",
        description="Recommend prompt, RAG, finetune, RAG+finetune, distill, continued pretraining or "
        "collecting data, with the rules that fired, the assumptions made and a memory/cost plan.",
    )
    p.add_argument("--scenario", metavar="FILE", help="scenario file (YAML or JSON); flags override its fields")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    fields = p.add_argument_group("scenario fields")
    for name, (kind, help_text) in _FLAGS.items():
        if kind == "bool":
            fields.add_argument(_flag(name), dest=name, action=argparse.BooleanOptionalAction, default=None,
                                help=help_text)
        else:
            fields.add_argument(_flag(name), dest=name, metavar=kind.upper() if kind != "str" else "VALUE",
                                default=None, help=help_text)
    p.set_defaults(func=run)


def _flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """The fields given as flags, typed; a bad value is BadInput naming the flag."""
    from ftharness.errors import BadInput

    out: dict[str, Any] = {}
    for name, (kind, _) in _FLAGS.items():
        raw = getattr(args, name, None)
        if raw is None:
            continue
        if kind == "list":
            out[name] = [p.strip().lower() for p in raw.split(",") if p.strip()]
        elif kind == "int":
            try:
                out[name] = int(raw)
            except ValueError:
                raise BadInput(f"expected a whole number, got {raw!r}", field=_flag(name)) from None
        elif kind == "float":
            try:
                out[name] = float(raw)
            except ValueError:
                raise BadInput(f"expected a number, got {raw!r}", field=_flag(name)) from None
        else:
            out[name] = raw
    return out


def _terminal_prompt() -> tuple[Any, Any]:
    """``(ask, say)`` for the questionnaire: a prompt and red notes on stderr (stdout stays for ``--json``)."""
    from rich.prompt import Prompt
    from rich.text import Text

    from ftharness.cli.render import console

    err = console(stderr=True)
    err.print("[bold]ftharness advise[/bold]: answer what you know; leave blank for 'don't know'.")
    return (lambda q: Prompt.ask(Text(q), console=err, default="", show_default=False),
            lambda m: err.print(Text(m, style="red")))


def build_scenario(args: argparse.Namespace, *, interactive: bool | None = None):
    """The scenario from the file, the flags (which win), or the questionnaire."""
    import dataclasses

    from ftharness.advisor.scenario import Scenario, load_scenario, scenario_from_mapping
    from ftharness.errors import BadInput

    flags = _flag_values(args)
    if args.scenario is None and not flags:
        if interactive is None:
            interactive = sys.stdin.isatty()
        if not interactive:
            raise BadInput(
                "no scenario given: pass --scenario FILE or field flags (e.g. --problems format "
                "--labeled-examples 800); the questionnaire needs a terminal"
            )
        from ftharness.advisor.questionnaire import run_questionnaire

        return scenario_from_mapping(run_questionnaire(*_terminal_prompt()))
    base = load_scenario(args.scenario) if args.scenario is not None else Scenario()
    if not flags:
        return base
    try:
        given = scenario_from_mapping(flags)
    except BadInput as e:
        field = e.field or ""
        head, bracket, rest = field.partition("[")
        raise BadInput(e.reason, field=_flag(head) + bracket + rest if head in _FLAGS else field) from None
    return dataclasses.replace(base, **{k: getattr(given, k) for k in flags})


def run(args: argparse.Namespace) -> int:
    from ftharness.advisor import advise

    advice = advise(build_scenario(args))
    if args.json:
        from ftharness.cli.render import print_json

        print_json(advice.to_dict())
        return 0
    render(advice)
    return 0


def render(advice) -> None:
    """The rich view: headline, reasons, assumptions, next steps, plan summary, alternatives."""
    from rich.markup import escape
    from rich.panel import Panel
    from rich.table import Table

    from ftharness.cli.render import console

    out = console()
    head = f"[bold]{advice.recommendation}[/bold]"
    if advice.method:
        head += f"  (method: [bold]{advice.method}[/bold])"
    out.print(Panel(head, title="ftharness advise", title_align="left", expand=False))

    reasons = Table(title="Why", title_justify="left", show_lines=False)
    reasons.add_column("rule", style="cyan", no_wrap=True)
    reasons.add_column("reason")
    for r in advice.reasons:
        reasons.add_row(r.rule, escape(r.sentence))
    out.print(reasons)

    if advice.assumptions:
        out.print("[bold]Assumptions[/bold]")
        for a in advice.assumptions:
            out.print(f"  - {escape(a)}")
    if advice.next_steps:
        out.print("[bold]Next steps[/bold]")
        for i, step in enumerate(advice.next_steps, 1):
            out.print(f"  {i}. {escape(step)}")
    if advice.fit is not None:
        out.print("[bold]Plan[/bold]")
        out.print(f"  {escape(_plan_summary(advice))}")
    if advice.alternatives:
        alts = Table(title="Alternatives considered", title_justify="left")
        alts.add_column("option", style="cyan", no_wrap=True)
        alts.add_column("why not")
        for a in advice.alternatives:
            alts.add_row(a.option, escape(a.why_not))
        out.print(alts)


def _plan_summary(advice) -> str:
    f = advice.fit
    text = f"{f.method} on {f.model}: peak {f.peak_gb:.1f} GB ({f.device_gb:.1f} GB on the device)"
    if f.gpu is None:
        rows = f.plan.get("gpus") or []
        fitting = [str(r.get("name")) for r in rows if r.get("fits")]
        return text + (f"; fits: {', '.join(fitting)}" if fitting else "; fits no catalogue GPU")
    where = f"{f.gpus}x {f.gpu}" if f.gpus > 1 else f.gpu
    text += f"; {where} ({f.vram_gb:g} GB): " + ("fits" if f.fits else "does NOT fit")
    if f.hours is not None:
        text += f", about {f.hours:.1f} h" if f.hours >= 1 else f", about {max(f.hours * 60, 1):.0f} min"
    if f.cost_usd is not None:
        text += f", about ${f.cost_usd:,.0f}" if f.cost_usd >= 10 else f", about ${f.cost_usd:.2f}"
    return text
