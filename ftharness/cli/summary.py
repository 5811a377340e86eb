"""The terminal view of a run: the decision, the leaderboard, what each distilled candidate's teacher labelled,
each sweep's choice, and where the time went.

Readable at 80 columns (CI logs): the leaderboard keeps the decision metric, the parse rate, prompt
tokens, the monthly prompt cost, training time and gates, with headers that wrap instead of being cut;
a wide terminal also gets the other gated metrics. Every value from the run (option names, paths, model
text) is printed as text, never read as rich markup.
"""

from __future__ import annotations

from typing import Any

from ftharness.report.html import leaderboard_columns, selection_view
from ftharness.report.results import CompareResults

PARSE = "format.parse_rate"


def _num(v: Any, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _minutes(seconds: float | None) -> str:
    if not seconds:
        return "-"
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def print_summary(results: CompareResults, report_path: str | None, console: Any) -> None:
    from rich.panel import Panel
    from rich.text import Text

    d = results.decision
    colour = {"finetune": "green", "rag+finetune": "green", "prompt": "cyan", "rag": "cyan", "none": "red"}[d.verdict]
    body = Text(d.headline, style="bold")
    for r in d.reasons[:6]:
        body.append(f"\n- {r}")
    console.print(Panel(body, title=f"Decision: {d.verdict}", border_style=colour))
    console.print(leaderboard(results, wide=console.width >= 140))
    cd = results.settings.constrained_decoding
    if cd is not None:
        missing = ", ".join(cd.unenforced_keywords) or "none"
        console.print(Text(f"Constrained options decode with {cd.library} {cd.version or ''}; "
                           f"schema keywords it cannot enforce: {missing}.", style="dim"))
    for o in results.options:
        if o.distillation is not None:
            x = o.distillation
            console.print(Text(
                f"{o.name}: teacher {x.teacher} labelled {x.labelled} inputs ({x.excluded} in eval or validation "
                f"left out) in {_minutes(x.wall_s)}{' (cached)' if x.cached else ''}, {x.prompt_tokens + x.new_tokens} "
                f"tokens; kept {x.kept}, dropped {x.dropped} failing the schema.", style="dim"))
    for table in selection_tables(results):
        console.print(table)
    phases = phase_table(results)
    if phases is not None:
        console.print(phases)
    if report_path:
        console.print(Text(f"Report: {report_path}"))


def leaderboard(results: CompareResults, *, wide: bool = False) -> Any:
    from rich import box
    from rich.table import Table

    from ftharness.report.units import usd

    d = results.decision
    cols = [c for c in leaderboard_columns(results, limit=7 if wide else 2) if c in (d.metric, PARSE) or wide]
    table = Table(title="Leaderboard (* recommended)", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("option / answer", overflow="fold", min_width=12)
    for c in cols:
        table.add_column(c.split(".", 1)[-1].replace("_", " "), justify="right")
    table.add_column("prompt tokens", justify="right")
    table.add_column("prompt $ / month", justify="right")
    table.add_column("$ / 1k requests", justify="right")
    table.add_column("trained", justify="right")
    table.add_column("gates")
    for o in results.options:
        ok = sum(1 for g in o.gates if g.passed)
        mark = "[green]pass[/green]" if o.passed else "[red]FAIL[/red]"
        name = _text(o.name + (" *" if o.name == d.recommended else ""))
        name.append(f"\n{o.answer}", style="dim")  # which answer of the decision chart it measures
        table.add_row(
            name,
            *[_num(o.metrics.get(c)) for c in cols],
            _num(o.cost.prompt_tokens_mean, 0),
            usd(d.costs[o.name].monthly_prompt_usd),
            "-" if d.costs[o.name].usd_per_1k_requests is None else usd(d.costs[o.name].usd_per_1k_requests),
            _minutes(o.training.total_wall_s) if o.training is not None else "-",
            f"{mark} {ok}/{len(o.gates)}",
        )
    return table


def _text(value: str) -> Any:
    """User-derived text as a rich Text: printed as is, never parsed as markup."""
    from rich.text import Text

    return Text(value)


def selection_tables(results: CompareResults) -> list[Any]:
    """One table per sweep: each point's validation figures, the chosen one marked."""
    from rich import box
    from rich.table import Table

    tables = []
    for view in selection_view(results):
        s = view.selection
        table = Table(
            title=f"Sweep {view.name}: chosen on {s.n} validation rows by {s.metric}",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
        )
        table.add_column("point", overflow="fold")
        for c in view.cols[:2]:
            table.add_column(c.split(".", 1)[-1].replace("_", " "), justify="right")
        table.add_column("val loss", justify="right")
        table.add_column("trained", justify="right")
        for p in s.points:
            chosen = " (chosen)" if p.name == s.chosen else ""
            table.add_row(
                _text(f"{view.swept[p.name] or p.name}{chosen}"),
                *[_num(p.metrics.get(c)) for c in view.cols[:2]],
                _num(p.validation_loss, 3),
                _minutes(p.training_wall_s),
            )
        tables.append(table)
    return tables


def phase_table(results: CompareResults) -> Any | None:
    """Where the time and memory went, phase by phase, with the run's total."""
    from rich import box
    from rich.table import Table

    phases = results.timing.phases
    if not phases:
        return None
    total = results.timing.run_wall_s
    peak = max((p.peak_memory_bytes or 0 for p in phases), default=0)
    title = f"Time and memory: {_minutes(total)} in all, peak {peak / 1e9:.2f} GB" if total else "Time and memory"
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("phase")
    table.add_column("option", overflow="fold")
    table.add_column("wall", justify="right")
    table.add_column("peak GB", justify="right")
    for p in phases:
        table.add_row(
            _text(p.phase),
            _text(p.option or ""),
            f"{p.wall_s or 0:.1f} s",
            f"{(p.peak_memory_bytes or 0) / 1e9:.2f}",
        )
    return table
