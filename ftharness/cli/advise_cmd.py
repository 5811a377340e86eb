"""`ftharness advise`: should we finetune at all, and how?

Input: ``--scenario FILE``, a flag per scenario field (flags override the file), or, in a terminal with
neither, a questionnaire. ``--from-run`` adds what a comparison run measured: its facts replace the
scenario's assumptions, and the advice names the run (:mod:`ftharness.report.advice`). A next step that
changes training ends with the task-file block of the candidate that runs it; the view prints that YAML as is,
indented under the step, so it can be pasted into the task file's ``candidates:``. Nothing heavy is imported:
advise answers in well under a second without torch.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ftharness.advisor.scenario import Scenario
    from ftharness.typed import add_flags

    p = sub.add_parser(
        "advise",
        help="should we finetune at all, and how? (rules from the literature, explained)",
        description="Recommend prompt, RAG, finetune, RAG+finetune, distill, continued pretraining or "
        "collecting data, with the rules that fired, the assumptions made and a memory/cost plan.",
    )
    p.add_argument("--scenario", metavar="FILE", help="scenario file (YAML or JSON); flags override its fields")
    p.add_argument("--from-run", metavar="RUN", help="a `ftharness compare` run folder (reports/RUN-ID) or its "
                   "results.json: its measured facts replace the scenario's assumptions")
    p.add_argument("--corpus", metavar="PATH",
                   help="a raw-text corpus (a .txt file, a folder of them, JSONL with `text`): its token count, "
                        "estimated from its characters, is the scenario's domain_corpus_tokens unless "
                        "--domain-corpus-tokens is given (`ftharness data inspect PATH --model M` counts exactly)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    add_flags(p.add_argument_group("scenario fields (one flag per field of a scenario file)"), Scenario)
    p.set_defaults(func=run)


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
    from ftharness.advisor.scenario import (
        Scenario,
        load_scenario,
        scenario_from_mapping,
        validate_catalogue_names,
    )
    from ftharness.errors import BadInput
    from ftharness.typed import flag_name, flag_values

    flags = flag_values(Scenario, args)
    if getattr(args, "corpus", None) and "domain_corpus_tokens" not in flags:
        flags["domain_corpus_tokens"] = corpus_tokens(args.corpus)
    if args.scenario is None and not flags and getattr(args, "from_run", None) is not None:
        return Scenario()  # the run answers what it measured; the rest is assumed and said
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
        validate_catalogue_names(Scenario(**{k: v for k, v in flags.items() if k in ("model", "gpu")}))
    except BadInput as e:
        raise BadInput(e.reason, field=flag_name(e.field) if e.field else None) from None
    return scenario_from_mapping({**base.given(), **flags})


def corpus_tokens(path: str) -> int:
    """The estimated token count of the corpus at ``path`` (no tokenizer, no torch: advise stays fast)."""
    from ftharness.data.corpus import approx_tokens, iter_texts
    from ftharness.errors import BadInput

    total = sum(approx_tokens(text) for _, _, text in iter_texts(path, field="--corpus") if text.strip())
    if not total:
        raise BadInput(f"empty corpus: {path} holds no text", field="--corpus")
    return total


def run(args: argparse.Namespace) -> int:
    from ftharness.advisor import advise
    from ftharness.advisor.scenario import Scenario
    from ftharness.typed import flag_values

    estimated = bool(args.corpus) and "domain_corpus_tokens" not in flag_values(Scenario, args)
    if args.from_run is not None:
        from ftharness.report.advice import advice_for_run

        advice = advice_for_run(args.from_run, build_scenario(args))
    else:
        advice = advise(build_scenario(args))
    if estimated:
        from ftharness.data.corpus import APPROXIMATION

        advice.assumptions.append(f"domain_corpus_tokens: the corpus {args.corpus}, {APPROXIMATION}")
    if args.json:
        from ftharness.cli.render import print_json

        print_json(advice.to_dict())
        return 0
    render(advice)
    return 0


def render(advice, *, brief: bool = False) -> None:
    """The rich view: headline, what a run measured, reasons, assumptions, next steps, plan summary,
    alternatives. ``brief`` (the end of `ftharness compare`) keeps the headline, the measured facts, the
    reasons and the next steps."""
    from rich.markup import escape
    from rich.panel import Panel
    from rich.table import Table

    from ftharness.cli.render import console

    out = console()
    head = f"[bold]{advice.recommendation}[/bold]"
    if advice.method:
        head += f"  (method: [bold]{advice.method}[/bold])"
    if advice.run is not None:
        head += f"\nfrom run {escape(advice.run)}"
    out.print(Panel(head, title="ftharness advise", title_align="left", expand=False))
    if advice.measured:
        out.print("[bold]Measured[/bold]")
        for f in advice.measured:
            out.print(f"  - {escape(f.text)}")

    reasons = Table(title="Why", title_justify="left", show_lines=False)
    reasons.add_column("rule", style="cyan", no_wrap=True)
    reasons.add_column("reason")
    for r in advice.reasons:
        reasons.add_row(r.rule, escape(r.sentence))
    out.print(reasons)

    if advice.assumptions and not brief:
        out.print("[bold]Assumed[/bold] (not measured)" if advice.run is not None else "[bold]Assumptions[/bold]")
        for a in advice.assumptions:
            out.print(f"  - {escape(a)}")
    if advice.next_steps:
        out.print("[bold]Next steps[/bold]")
        for i, step in enumerate(advice.next_steps, 1):
            text, *block = step.split("\n")  # a step that changes training ends with its candidate's YAML
            out.print(f"  {i}. {escape(text)}")
            for line in block:
                out.print(f"       {escape(line)}", highlight=False, soft_wrap=True)
    if brief:
        return
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

