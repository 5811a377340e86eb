"""``report.html``: one self-contained page a reviewer opens from a CI artifact.

Rendered with Jinja2 (``templates/report.html.j2``) with autoescaping on, so model outputs and every
other value from the run are escaped; nothing user-derived is marked safe. Charts are inline SVG whose
geometry is computed here and drawn by the template: no scripts, no network, no external files. A
Content-Security-Policy meta tag forbids scripts and remote loads as a second line of defence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ftharness.jsonrecord import doc, to_json
from ftharness.report.records import Interval, OptionRecord, Selection
from ftharness.report.results import CompareResults

PALETTE = [
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#76b7b2",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
]
PREFERRED = [
    "format.parse_rate",
    "format.parse_rate_lenient",
    "task.field_accuracy",
    "task.exact_match",
    "toxicity.max",
    "forgetting.ppl_delta_pct",
]


def leaderboard_columns(results: CompareResults, limit: int = 7) -> list[str]:
    """The metrics worth a column: the decision metric, gated metrics, then a few well-known ones."""
    options = results.options
    have = {k for o in options for k in o.metrics}
    cols: list[str] = []
    for name in [results.decision.metric, *(g.name for o in options for g in o.gates), *PREFERRED]:
        if name and name in have and name not in cols:
            cols.append(name)
    return cols[:limit]


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "n/a"
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def bar_chart(
    title: str,
    options: list[OptionRecord],
    metric: str,
    ci: dict[str, Interval] | None = None,
    width: int = 420,
    row: int = 26,
) -> dict[str, Any]:
    """Horizontal bars, one per option, scaled to the largest value (or 1 for rates), with each option's
    interval where ``ci`` has one."""
    values = [(o.name, o.metrics.get(metric)) for o in options]
    finite = [abs(v) for _, v in values if isinstance(v, int | float) and math.isfinite(v)]
    top = max(finite, default=1.0)
    scale_max = 1.0 if top <= 1.0 else top
    left, right = 130, 60
    inner = width - left - right
    bars = []
    for i, (name, v) in enumerate(values):
        y = 10 + i * row
        w = 0 if not isinstance(v, int | float) or not math.isfinite(v) else inner * abs(v) / scale_max
        bar = {
            "name": name,
            "x": left,
            "y": y,
            "w": round(w, 1),
            "h": row - 8,
            "label": _fmt(v),
            "colour": PALETTE[i % len(PALETTE)],
            "ci": None,
        }
        interval = (ci or {}).get(name)
        if interval is not None and interval.low is not None and interval.high is not None:
            lo, hi = interval.low, interval.high
            bar["ci"] = {
                "x1": round(left + inner * max(lo, 0) / scale_max, 1),
                "x2": round(left + inner * min(hi, scale_max) / scale_max, 1),
                "y": y + (row - 8) / 2,
            }
        bars.append(bar)
    return {
        "title": title,
        "metric": metric,
        "width": width,
        "height": 20 + len(values) * row,
        "bars": bars,
        "label_x": left - 6,
        "value_x": left + inner + 4,
    }


def scatter(options: list[OptionRecord], metric: str, width: int = 420, height: int = 260) -> dict[str, Any]:
    """Quality (the decision metric) against per-request cost (prompt tokens), one point per option."""
    pts = []
    for i, o in enumerate(options):
        y = o.metrics.get(metric)
        if y is not None:
            pts.append((o.name, o.cost.prompt_tokens_mean, float(y), i, o.kind))
    left, bottom, top, right = 50, 36, 16, 90  # room on the right for the labels
    xmax = max((p[1] for p in pts), default=1.0) * 1.1 or 1.0
    ymax = max(1.0, max((p[2] for p in pts), default=1.0))
    ymin = min(0.0, min((p[2] for p in pts), default=0.0))
    span = (ymax - ymin) or 1.0
    iw, ih = width - left - right, height - top - bottom
    points = [
        {
            "name": n,
            "cx": round(left + iw * x / xmax, 1),
            "cy": round(top + ih * (1 - (y - ymin) / span), 1),
            "colour": PALETTE[i % len(PALETTE)],
            "shape": "square" if kind == "candidate" else "circle",
            "title": f"{n}: {_fmt(y)} at {x:.0f} prompt tokens",
        }
        for n, x, y, i, kind in pts
    ]
    return {
        "width": width,
        "height": height,
        "points": points,
        "left": left,
        "top": top,
        "iw": iw,
        "ih": ih,
        "x_label": "prompt tokens per request (cost)",
        "y_label": metric,
        "x_ticks": [{"x": round(left + iw * f, 1), "label": f"{xmax * f:.0f}"} for f in (0, 0.5, 1)],
        "y_ticks": [
            {"y": round(top + ih * (1 - f), 1), "label": f"{ymin + span * f:.2g}"} for f in (0, 0.5, 1)
        ],
    }


def loss_chart(options: list[OptionRecord], width: int = 420, height: int = 240) -> dict[str, Any] | None:
    """Training (and validation) loss against step for every trained candidate."""
    series = []
    for i, o in enumerate(options):
        curve = o.training.loss_curve if o.training is not None else []
        for key, dash in (("loss", ""), ("eval_loss", "4 3")):
            pts = [
                (float(p["step"]), float(p[key]))
                for p in curve
                if p.get("step") is not None and p.get(key) is not None and math.isfinite(p[key])
            ]
            if pts:
                series.append(
                    {
                        "name": f"{o.name} {key.replace('_', ' ')}",
                        "pts": pts,
                        "dash": dash,
                        "colour": PALETTE[i % len(PALETTE)],
                    }
                )
    if not series:
        return None
    left, bottom, top, right = 50, 36, 16, 20
    iw, ih = width - left - right, height - top - bottom
    xmax = max(x for s in series for x, _ in s["pts"]) or 1.0
    ymax = max(y for s in series for _, y in s["pts"]) or 1.0
    for s in series:
        s["points"] = " ".join(
            f"{left + iw * x / xmax:.1f},{top + ih * (1 - y / ymax):.1f}" for x, y in s["pts"]
        )
        del s["pts"]
    return {
        "width": width,
        "height": height,
        "series": series,
        "left": left,
        "top": top,
        "iw": iw,
        "ih": ih,
        "x_ticks": [{"x": round(left + iw * f, 1), "label": f"{xmax * f:.0f}"} for f in (0, 0.5, 1)],
        "y_ticks": [{"y": round(top + ih * (1 - f), 1), "label": f"{ymax * f:.2g}"} for f in (0, 0.5, 1)],
    }


@dataclass(kw_only=True)
class SweepView:
    """One sweep as the report and the terminal show it."""

    name: str = doc("the sweep's name")
    selection: Selection = doc("its points and the finalist")
    cols: list[str] = doc("the validation metrics worth a column: the decision metric, then well-known ones")
    swept: dict[str, str] = doc("by point name, the hyperparameters that vary across the sweep ('lr=0.001')")
    rungs: int = doc("halving: the rungs of the longest-trained point (0: grid)", default=0)
    chart: dict[str, Any] | None = doc("the points on the decision metric against a gated model metric",
                                       default=None)


def selection_view(results: CompareResults) -> list[SweepView]:
    """Each sweep's points with the hyperparameters that vary and the validation metrics worth a column."""
    out = []
    for name, s in results.selection.items():
        have = {k for p in s.points for k in p.metrics}
        cols = [c for c in dict.fromkeys([s.metric, *PREFERRED[:3]]) if c in have]
        varying = sorted(
            {k for p in s.points for k, v in p.hyperparameters.items()
             if any(q.hyperparameters.get(k) != v for q in s.points)}
        )
        replays = {p.name: p.replay_fraction for p in s.points}
        if len(set(replays.values())) > 1:
            varying_text = {n: f"replay={r or 0:g}" for n, r in replays.items()}
        else:
            varying_text = {}
        swept = {p.name: ", ".join([*(f"{k}={p.hyperparameters.get(k)}" for k in varying),
                                    *([varying_text[p.name]] if p.name in varying_text else [])]) for p in s.points}
        gated = next((g.name for p in s.points for g in p.gates if g.name.startswith("forgetting.")), None)
        if gated and gated not in cols:
            cols.append(gated)
        out.append(SweepView(name=name, selection=s, cols=cols, swept=swept,
                             rungs=max((len(p.rungs) for p in s.points), default=0),
                             chart=sweep_chart(s, gated) if gated else None))
    return out


def sweep_chart(s: Selection, x_metric: str, width: int = 420, height: int = 260) -> dict[str, Any] | None:
    """A sweep's points: the decision metric on validation (y) against ``x_metric`` on the selection part
    (x), with the gates on either as dashed lines."""
    pts = [(p, p.metrics.get(x_metric), p.metrics.get(s.metric)) for p in s.points]
    pts = [(p, float(x), float(y)) for p, x, y in pts
           if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)]
    if not pts:
        return None
    thresholds = {g.name: g.threshold for p in s.points for g in p.gates if g.name in (x_metric, s.metric)}
    xs = [x for _, x, _ in pts] + ([thresholds[x_metric]] if x_metric in thresholds else [])
    ys = [y for _, _, y in pts] + ([thresholds[s.metric]] if s.metric in thresholds else [])
    x0, x1 = min(0.0, *xs), max(xs) or 1.0
    y0, y1 = min(0.0, *ys), max(ys) or 1.0
    x1, y1 = (x1 if x1 > x0 else x0 + 1.0), (y1 if y1 > y0 else y0 + 1.0)
    left, bottom, top, right = 50, 36, 16, 90
    iw, ih = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return round(left + iw * (x - x0) / (x1 - x0), 1)

    def sy(y: float) -> float:
        return round(top + ih * (1 - (y - y0) / (y1 - y0)), 1)

    lines = []
    if x_metric in thresholds:
        lines.append({"x1": sx(thresholds[x_metric]), "x2": sx(thresholds[x_metric]), "y1": top, "y2": top + ih,
                      "label": f"gate {x_metric} at {thresholds[x_metric]:g}"})
    if s.metric in thresholds:
        lines.append({"x1": left, "x2": left + iw, "y1": sy(thresholds[s.metric]), "y2": sy(thresholds[s.metric]),
                      "label": f"gate {s.metric} at {thresholds[s.metric]:g}"})
    return {
        "width": width, "height": height, "left": left, "top": top, "iw": iw, "ih": ih,
        "x_label": x_metric, "y_label": s.metric, "gate_lines": lines,
        "points": [{"cx": sx(x), "cy": sy(y), "name": p.name, "chosen": p.name == s.chosen,
                    "feasible": bool(p.feasible), "title": f"{p.name}: {s.metric} {y:.3g}, {x_metric} {x:.3g}"}
                   for p, x, y in pts],
        "x_ticks": [{"x": sx(x0 + (x1 - x0) * f), "label": f"{x0 + (x1 - x0) * f:.3g}"} for f in (0, 0.5, 1)],
        "y_ticks": [{"y": sy(y0 + (y1 - y0) * f), "label": f"{y0 + (y1 - y0) * f:.2g}"} for f in (0, 0.5, 1)],
    }


def trend_chart(results: CompareResults, earlier: list[Any], width: int = 420, height: int = 240
                ) -> dict[str, Any] | None:
    """Each option's decision metric across the task's earlier runs (history entries, oldest first) and this
    one: a slow drift shows before a gate fails. None without an earlier run that measured it."""
    metric = results.decision.metric
    runs = [(e.run_id, e.summary.get("options", {})) for e in earlier if e.run_id != results.run_id]
    runs.append((results.run_id, {o.name: o.metrics for o in results.options}))
    series = []
    for i, o in enumerate(results.options):
        pts = [(j, float(v)) for j, (_, opts) in enumerate(runs)
               if isinstance(v := opts.get(o.name, {}).get(metric), int | float) and math.isfinite(v)]
        if len(pts) > 1:
            series.append({"name": o.name, "pts": pts, "colour": PALETTE[i % len(PALETTE)]})
    if not series:
        return None
    left, bottom, top, right = 50, 36, 16, 20
    iw, ih = width - left - right, height - top - bottom
    xmax = max(1, len(runs) - 1)
    ys = [y for s_ in series for _, y in s_["pts"]]
    y0, y1 = min(0.0, *ys), max(ys) or 1.0
    y1 = y1 if y1 > y0 else y0 + 1.0
    for s_ in series:
        s_["points"] = " ".join(f"{left + iw * x / xmax:.1f},{top + ih * (1 - (y - y0) / (y1 - y0)):.1f}"
                                for x, y in s_["pts"])
        s_["last"] = s_["pts"][-1][1]
        del s_["pts"]
    return {
        "width": width, "height": height, "series": series, "left": left, "top": top, "iw": iw, "ih": ih,
        "metric": metric, "runs": [r for r, _ in runs],
        "x_ticks": [{"x": round(left + iw * j / xmax, 1), "label": str(j + 1)} for j in range(len(runs))][-12:],
        "y_ticks": [{"y": round(top + ih * (1 - f), 1), "label": f"{y0 + (y1 - y0) * f:.2g}"} for f in (0, 0.5, 1)],
    }


def gate_label(g: Any) -> str:
    """'format.parse_rate >= 0.98': a gate as its column names it."""
    return f"{g.name} {g.op} {g.threshold:g}"


def view_model(results: CompareResults, earlier: list[Any] | None = None) -> dict[str, Any]:
    options = results.options
    decision = results.decision
    metric = decision.metric
    cols = leaderboard_columns(results)
    charts = [bar_chart(m, options, m, results.intervals if m == metric else None) for m in cols[:4]]
    gate_names = list(dict.fromkeys(gate_label(g) for o in options for g in o.gates))
    gate_grid = []
    for o in options:
        by = {gate_label(g): g for g in o.gates}
        gate_grid.append({"name": o.name, "cells": [by.get(n) for n in gate_names], "passed": o.passed})
    slice_tables = []
    for f in sorted({f for o in options for f in o.slices}):
        labels = sorted({lab for o in options for lab in o.slices.get(f, {})})
        rows = []
        for lab in labels:
            buckets = [o.slices.get(f, {}).get(lab) for o in options]
            n = next((b.n for b in buckets if b is not None), None)
            cells = [_fmt(b.values.get(metric)) if b is not None else "n/a" for b in buckets]
            rows.append({"label": lab, "n": n, "cells": cells})
        slice_tables.append({"field": f, "rows": rows})
    document = to_json(results)  # what plugin sections and the provenance blocks read: results.json itself
    sections = []
    try:
        from ftharness.plugins import report_sections

        for sec in report_sections().values():
            sections.append({"title": sec.title, "html": _plugin_html(sec, document)})
    except Exception as e:  # a broken plugin section is reported, never fatal
        sections.append({"title": "report sections", "html": None, "error": f"{type(e).__name__}: {e}"})
    from ftharness.report.advice import advice_for_results
    from ftharness.report.units import usd

    return {
        "r": results,
        "advice": advice_for_results(results, "results.json"),
        "decision": decision,
        "monthly": {n: usd(c.monthly_prompt_usd) for n, c in decision.costs.items()},
        "per_1k": {n: "-" if c.usd_per_1k_requests is None else usd(c.usd_per_1k_requests)
                   for n, c in decision.costs.items()},
        "selection": selection_view(results),
        "phases": results.timing.phases,
        "comparisons": results.comparisons,
        "answers": {o.name: o.answer for o in options},
        "retrieval": [o for o in options if o.retrieval is not None],
        "options": options,
        "metric": metric,
        "cols": cols,
        "fmt": _fmt,
        "charts": charts,
        "scatter": scatter(options, metric),
        "loss": loss_chart(options),
        "trend": trend_chart(results, earlier or []),
        "gate_names": gate_names,
        "gate_grid": gate_grid,
        "slice_tables": slice_tables,
        "memory": [(o.name, o.memory) for o in options if o.memory is not None],
        "distilled": [o for o in options if o.distillation is not None],
        "sections": sections,
        "provenance": {
            "settings": document["settings"],
            "data": document["data"],
            "environment": document["environment"],
            "task": {k: document["task"][k] for k in ("instruction", "gates", "decision_settings", "file", "hash")},
            "timing": document["timing"],
        },
    }


def _plugin_html(section: Any, results: dict[str, Any]) -> Any:
    """A plugin section's HTML from the results.json document. Plugins escape their own content
    (ReportSection's contract)."""
    from markupsafe import Markup

    return Markup(section.render(results))  # noqa: S704 - plugin-rendered, documented as escaped


def templates() -> Any:
    """The jinja environment of the report templates (autoescaped, strict: an unknown name is an error)."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    from ftharness.paths import package_data

    return Environment(
        loader=FileSystemLoader(str(package_data("report", "templates"))),
        autoescape=select_autoescape(["html", "j2", "xml"], default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(results: CompareResults, earlier: list[Any] | None = None) -> str:
    """report.html; ``earlier``: the task's earlier runs from the history (oldest first), for the trend."""
    return templates().get_template("report.html.j2").render(**view_model(results, earlier))
