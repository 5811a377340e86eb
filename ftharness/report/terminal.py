"""The terminal view of a run: the decision and the leaderboard, with rich."""

from __future__ import annotations

from typing import Any

from ftharness.report.html import leaderboard_columns


def _num(v: Any, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def print_summary(results: dict[str, Any], report_path: str | None = None, console: Any = None) -> None:
    from rich.panel import Panel
    from rich.table import Table

    if console is None:
        from ftharness.cli.render import console as make

        console = make()
    d = results.get("decision") or {}
    colour = {"finetune": "green", "prompt": "cyan", "none": "red"}.get(d.get("verdict", ""), "white")
    body = f"[bold]{d.get('headline', '')}[/bold]"
    for r in d.get("reasons", [])[:6]:
        body += f"\n- {r}"
    console.print(Panel(body, title=f"Decision: {d.get('verdict', '?')}", border_style=colour))
    # A narrow terminal (CI logs are often 80 columns) gets the decision metric and the gated ones only.
    cols = leaderboard_columns(results, limit=7 if console.width >= 140 else 4)
    table = Table(title="Leaderboard", show_lines=False)
    table.add_column("option", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    for c in cols:
        table.add_column(c.replace(".", " ", 1) if console.width >= 140 else c.split(".", 1)[-1], justify="right")
    table.add_column("prompt tok", justify="right")
    table.add_column("s/request", justify="right")
    table.add_column("train", justify="right")
    table.add_column("gates")
    for o in results.get("options", []):
        t = o.get("training") or {}
        gates = o.get("gates") or []
        ok = sum(1 for g in gates if g.get("passed"))
        mark = "[green]pass[/green]" if o.get("passed") else "[red]FAIL[/red]"
        table.add_row(
            o["name"] + (" *" if o["name"] == d.get("recommended") else ""),
            o.get("kind", ""),
            *[_num((o.get("metrics") or {}).get(c)) for c in cols],
            _num((o.get("cost") or {}).get("prompt_tokens_mean"), 0),
            _num((o.get("cost") or {}).get("latency_s_mean")),
            f"{t.get('total_wall_s', 0) / 60:.1f} min" if t else "-",
            f"{mark} {ok}/{len(gates)}",
        )
    console.print(table)
    if report_path:
        console.print(f"Report: {report_path}")
