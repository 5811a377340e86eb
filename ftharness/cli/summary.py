"""The terminal view of a run: the decision, the leaderboard, what each distilled candidate's teacher labelled,
each sweep's choice, and where the time went.

Whole at 80 columns (CI logs): no line is longer than the console, nothing is cut with an ellipsis, and an
option's or sweep point's name is never wrapped. The leaderboard (:class:`Leaderboard`) lays itself out for
the width it is printed at: short headers (``acc``), a legend under the table naming each column in full
(``acc = task.field_accuracy (decision metric)``), numbers right-aligned, and, when not every column fits,
the least wanted ones left out and named in a line of their own. It always keeps the option names with
their answer, the decision metric and the gates. With option names up to 25 characters, 80 columns also
keep the parse rate, prompt tokens, the monthly prompt cost and training time; 120 columns keep every
column the table had before at any width under 140 (those and the cost of 1,000 requests) and the other
metrics as they fit; about 130 columns hold all seven metrics. Every value from the run (option names,
paths, model text) is printed as text, never read as rich markup.
"""

from __future__ import annotations

from collections.abc import Container, Iterator
from dataclasses import dataclass
from typing import Any, Literal

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
    console.print(leaderboard(results))
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


# Headers for the metrics the bundled suites measure. Any other metric is headed by its value name (the
# part after the dot), or that name's initials when it is longer than 10 characters; the legend under the
# table names every column in full.
SHORT = {
    "task.field_accuracy": "acc",
    "task.exact_match": "exact",
    "task.token_f1": "f1",
    "task.json_match": "json",
    "format.parse_rate": "parse",
    "format.parse_rate_lenient": "lenient",
    "toxicity.max": "tox",
    "forgetting.ppl_delta_pct": "ppl %",
    "forgetting.bpb_delta_pct": "bpb %",
    "forgetting.qa_accuracy_delta": "qa d",
}


def short_name(metric: str, taken: Container[str] = ()) -> str:
    """A metric's column header: short, one line, not one of ``taken`` (a digit is added if it would be)."""
    value = metric.split(".", 1)[-1]
    name = SHORT.get(metric) or (value if len(value) <= 10 else "".join(w[:1] for w in value.split("_") if w))
    base, n = name, 2
    while name in taken:
        name, n = f"{base}{n}", n + 1
    return name


@dataclass
class _Column:
    header: str
    full: str  # the column's name in the legend and in the line of columns left out
    cells: list[Any]
    justify: Literal["left", "right"] = "right"


class Leaderboard:
    """The leaderboard as a rich renderable that fits the width it is printed at.

    The table, then a legend naming each shown column in full (``acc = task.field_accuracy``), then, when
    the width is too small for every column, a sentence naming those left out. Nothing in it is wrapped
    inside a word or cut with an ellipsis: every column is ``no_wrap`` with a short header, and columns go,
    least wanted first, until the rest fit: the metrics beyond the decision metric and the parse rate (last
    listed first), then the cost of 1,000 requests, the monthly prompt cost, training time, prompt tokens
    and the parse rate. The option names, the decision metric and the gates always stay, so only an option
    name longer than the width less about 20 columns can still be cut.
    """

    def __init__(self, results: CompareResults) -> None:
        self.results = results
        self.columns, self.drop_order = self._columns()

    def _columns(self) -> tuple[list[_Column], list[_Column]]:
        from rich.text import Text

        from ftharness.report.units import usd

        results = self.results
        d = results.decision
        options = results.options
        metrics = leaderboard_columns(results, limit=7)
        names: list[Any] = []
        gates: list[Any] = []
        for o in options:
            name = _text(o.name + (" *" if o.name == d.recommended else ""))
            name.append(f"\n{o.answer}", style="dim")  # which answer of the decision chart it measures
            names.append(name)
            mark = Text("pass", style="green") if o.passed else Text("FAIL", style="red")
            gates.append(mark + Text(f" {sum(1 for g in o.gates if g.passed)}/{len(o.gates)}"))
        metric_cols: list[_Column] = []
        taken: set[str] = set()
        for m in metrics:
            header = short_name(m, taken)
            taken.add(header)
            full = f"{m} (decision metric)" if m == d.metric else m
            metric_cols.append(_Column(header, full, [_num(o.metrics.get(m)) for o in options]))
        tokens = _Column("tokens", "prompt tokens per request", [_num(o.cost.prompt_tokens_mean, 0) for o in options])
        month = _Column("$/month", "prompt cost per month", [usd(d.costs[o.name].monthly_prompt_usd) for o in options])
        per_1k = _Column("$/1k", "cost of 1,000 requests", [
            "-" if d.costs[o.name].usd_per_1k_requests is None else usd(d.costs[o.name].usd_per_1k_requests)
            for o in options
        ])
        trained = _Column("trained", "training time", [
            _minutes(o.training.total_wall_s) if o.training is not None else "-" for o in options
        ])
        gate_col = _Column("gates", "gates passed / checked", gates, justify="left")
        name_col = _Column("option / answer", "", names, justify="left")
        columns = [name_col, *metric_cols, tokens, month, per_1k, trained, gate_col]
        first = [c for c, m in zip(metric_cols, metrics, strict=True) if m != d.metric and m != PARSE]
        parse = [c for c, m in zip(metric_cols, metrics, strict=True) if m == PARSE != d.metric]
        return columns, [*reversed(first), per_1k, month, trained, tokens, *parse]

    def table(self, shown: list[_Column]) -> Any:
        from rich import box
        from rich.table import Table

        table = Table(title="Leaderboard (* recommended)", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
        for c in shown:
            table.add_column(c.header, justify=c.justify, no_wrap=True)
        for i in range(len(self.results.options)):
            table.add_row(*[c.cells[i] for c in shown])
        return table

    def fit(self, console: Any, width: int) -> tuple[Any, list[_Column], list[_Column]]:
        """The table at ``width``: the table, the columns shown, the columns left out."""
        from rich.measure import Measurement

        natural = console.options.update_width(10_000)
        shown, left_out = list(self.columns), []
        table = self.table(shown)
        for c in self.drop_order:
            if Measurement.get(console, natural, table).maximum <= width:
                break
            shown.remove(c)
            left_out.append(c)
            table = self.table(shown)
        return table, shown, [c for c in self.columns if c in left_out]

    def __rich_console__(self, console: Any, options: Any) -> Iterator[Any]:
        from rich.text import Text

        width = options.max_width
        table, shown, left_out = self.fit(console, width)
        yield table
        entries = [f"{c.header} = {c.full}" for c in shown if c.full]
        for line in _pack(entries, "; ", width):
            yield Text(line, style="dim")
        if left_out:
            # prose, wrapped at spaces: a metric's name has none, so it is never split
            yield Text(f"Left out at {width} columns: "
                       + ", ".join(c.full for c in left_out) + ".", style="dim")


def _pack(entries: list[str], sep: str, width: int) -> list[str]:
    """The entries joined by ``sep`` (``"; "``) on as few lines of at most ``width`` characters as they fit,
    never splitting an entry; a line that goes on ends with the separator (an entry longer than ``width``
    gets a line of its own)."""
    lines: list[str] = []
    for i, e in enumerate(entries):
        piece = e + (sep.rstrip() if i < len(entries) - 1 else "")
        if lines and len(lines[-1]) + 1 + len(piece) <= width:
            lines[-1] += " " + piece
        else:
            lines.append(piece)
    return lines


def leaderboard(results: CompareResults) -> Leaderboard:
    """Every option's metrics, costs and gates, laid out for the width it is printed at (:class:`Leaderboard`)."""
    return Leaderboard(results)


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
        table.add_column("point", no_wrap=True)
        cols = [*view.cols[:1], *(c for c in view.cols[1:] if c == "format.parse_rate" or c.startswith("forgetting."))]
        taken: list[str] = []
        for c in cols:
            taken.append(short_name(c, taken))
            table.add_column(taken[-1], justify="right", no_wrap=True)
        table.add_column("gates", no_wrap=True)
        table.add_column("steps", justify="right", no_wrap=True)
        table.add_column("trained", justify="right", no_wrap=True)
        for p in s.points:
            chosen = " *" if p.name == s.chosen else ""
            failed = sum(1 for g in p.gates if not g.passed)
            table.add_row(
                _text(f"{(view.swept[p.name] or p.name).replace('learning_rate=', 'lr=')}{chosen}"),
                *[_num(p.metrics.get(c)) for c in cols],
                "-" if not p.gates else ("pass" if not failed else f"FAIL {failed}"),
                "->".join(str(r.steps) for r in p.rungs) if p.rungs else _num(p.global_step, 0),
                _minutes(p.training_wall_s),
            )
        legend = "; ".join(f"{h} = {c}" for h, c in zip(taken, cols, strict=True))
        table.caption = (f"* chosen; {legend}" + (" (forgetting on the selection part)" if any(
            c.startswith("forgetting.") for c in cols) else "") + ("" if s.feasible else
            "; no point passed every gate measurable without the eval set"))
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
    table.add_column("option", no_wrap=True)
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
