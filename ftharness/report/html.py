"""``report.html``: one self-contained page a reviewer opens from a CI artifact.

Rendered with Jinja2 (``templates/report.html.j2``) with autoescaping on, so model outputs and every
other value from the run are escaped; nothing user-derived is marked safe. Charts are inline SVG whose
geometry is computed here and drawn by the template: no scripts, no network, no external files. A
Content-Security-Policy meta tag forbids scripts and remote loads as a second line of defence.
"""

from __future__ import annotations

import math
from typing import Any

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


def leaderboard_columns(results: dict[str, Any], limit: int = 7) -> list[str]:
    """The metrics worth a column: the decision metric, gated metrics, then a few well-known ones."""
    options = results.get("options", [])
    have = {k for o in options for k in (o.get("metrics") or {})}
    cols: list[str] = []
    metric = (results.get("decision") or {}).get("metric")
    for name in [metric, *(g["name"] for o in options for g in o.get("gates") or []), *PREFERRED]:
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
    options: list[dict[str, Any]],
    metric: str,
    ci: dict[str, tuple] | None = None,
    width: int = 420,
    row: int = 26,
) -> dict[str, Any]:
    """Horizontal bars, one per option, scaled to the largest value (or 1 for rates)."""
    values = [(o["name"], (o.get("metrics") or {}).get(metric)) for o in options]
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
        if ci and name in ci and ci[name][0] is not None:
            lo, hi = ci[name]
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


def scatter(
    options: list[dict[str, Any]], metric: str, width: int = 420, height: int = 260
) -> dict[str, Any]:
    """Quality (the decision metric) against per-request cost (prompt tokens), one point per option."""
    pts = []
    for i, o in enumerate(options):
        y = (o.get("metrics") or {}).get(metric)
        x = (o.get("cost") or {}).get("prompt_tokens_mean")
        if isinstance(x, int | float) and isinstance(y, int | float):
            pts.append((o["name"], float(x), float(y), i, o.get("kind")))
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


def loss_chart(options: list[dict[str, Any]], width: int = 420, height: int = 240) -> dict[str, Any] | None:
    """Training (and eval) loss against step for every trained candidate."""
    series = []
    for i, o in enumerate(options):
        curve = (o.get("training") or {}).get("loss_curve") or []
        for key, dash in (("loss", ""), ("eval_loss", "4 3")):
            pts = [
                (float(p["step"]), float(p[key]))
                for p in curve
                if key in p
                and p.get("step") is not None
                and isinstance(p.get(key), int | float)
                and math.isfinite(p[key])
            ]
            if pts:
                series.append(
                    {
                        "name": f"{o['name']} {key.replace('_', ' ')}",
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


def view_model(results: dict[str, Any]) -> dict[str, Any]:
    options = results.get("options", [])
    decision = results.get("decision") or {}
    metric = decision.get("metric") or "format.parse_rate"
    cols = leaderboard_columns(results)
    ci = {
        c["option"]: (c.get("option_ci_low"), c.get("option_ci_high"))
        for c in results.get("comparisons", [])
        if "option_ci_low" in c
    }
    charts = [bar_chart(m, options, m, ci if m == metric else None) for m in cols[:4]]
    gate_names: list[str] = []
    for o in options:
        for g in o.get("gates") or []:
            label = f"{g['name']} {g['op']} {g['threshold']:g}"
            if label not in gate_names:
                gate_names.append(label)
    gate_grid = []
    for o in options:
        by = {f"{g['name']} {g['op']} {g['threshold']:g}": g for g in o.get("gates") or []}
        gate_grid.append(
            {"name": o["name"], "cells": [by.get(n) for n in gate_names], "passed": o.get("passed")}
        )
    slice_tables = []
    fields = sorted({f for o in options for f in (o.get("slices") or {})})
    for f in fields:
        labels = sorted({lab for o in options for lab in (o.get("slices") or {}).get(f, {})})
        rows = []
        for lab in labels:
            cells, n = [], None
            for o in options:
                b = (o.get("slices") or {}).get(f, {}).get(lab)
                n = n or (b or {}).get("n")
                cells.append(_fmt((b or {}).get("values", {}).get(metric)) if b else "n/a")
            rows.append({"label": lab, "n": n, "cells": cells})
        slice_tables.append({"field": f, "rows": rows})
    sections = []
    try:
        from ftharness.plugins import report_sections

        for sec in report_sections().values():
            sections.append({"title": sec.title, "html": _plugin_html(sec, results)})
    except Exception as e:  # a broken plugin section is reported, never fatal
        sections.append({"title": "report sections", "html": None, "error": f"{type(e).__name__}: {e}"})
    from ftharness.report.units import usd

    costs = decision.get("costs") or {}
    monthly = {n: usd(c["monthly_prompt_usd"]) for n, c in costs.items() if "monthly_prompt_usd" in c}
    return {
        "r": results,
        "decision": decision,
        "monthly": monthly,
        "selection": selection_view(results),
        "phases": (results.get("timing") or {}).get("phases") or [],
        "comparisons": [c for c in results.get("comparisons", []) if c.get("verdict") != "reference"],
        "options": options,
        "metric": metric,
        "cols": cols,
        "fmt": _fmt,
        "charts": charts,
        "scatter": scatter(options, metric),
        "loss": loss_chart(options),
        "gate_names": gate_names,
        "gate_grid": gate_grid,
        "slice_tables": slice_tables,
        "memory": [{"name": o["name"], **o["memory"]} for o in options if o.get("memory")],
        "sections": sections,
    }


def selection_view(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each sweep's points with the hyperparameters that vary and the validation metrics worth a column."""
    out = []
    for name, s in (results.get("selection") or {}).items():
        points = s.get("points") or []
        have = {k for p in points for k in (p.get("metrics") or {})}
        cols = [c for c in dict.fromkeys([s.get("metric"), *PREFERRED[:3]]) if c in have]
        varying = {
            k for p in points for k, v in (p.get("hyperparameters") or {}).items()
            if any((q.get("hyperparameters") or {}).get(k) != v for q in points)
        }
        rows = [
            {**p, "swept": ", ".join(f"{k}={(p.get('hyperparameters') or {}).get(k)}" for k in sorted(varying))}
            for p in points
        ]
        out.append({**s, "name": name, "points": rows, "cols": cols})
    return out


def _plugin_html(section: Any, results: dict[str, Any]) -> Any:
    """A plugin section's HTML. Plugins escape their own content (ReportSection's contract)."""
    from markupsafe import Markup

    return Markup(section.render(results))  # noqa: S704 - plugin-rendered, documented as escaped


def render_html(results: dict[str, Any]) -> str:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    from ftharness.paths import package_data

    env = Environment(
        loader=FileSystemLoader(str(package_data("report", "templates"))),
        autoescape=select_autoescape(["html", "j2", "xml"], default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("report.html.j2").render(**view_model(results))
