"""``results.json``: everything a run measured and decided, in one document the HTML, JUnit and
terminal reports are all rendered from (and that other tools can read).

Top-level keys (``schema_version`` 1):
``run_id``, ``task`` (name, file, hash, base model, instruction, schema), ``settings`` (generation,
seed, dtype, batch size, prompt template), ``environment`` (python, platform, library versions),
``data`` (path, sha256, size of each file), ``suites``, ``options`` (per option: kind, spec,
``metrics`` as ``metric.value -> number``, ``per_sample`` scores, ``gates``, ``passed``, ``slices``,
``cost``, ``training``, ``plan``, ``merged_latency``, ``memory``), ``selection`` (per sweep: every
point's validation figures and the finalist chosen on them), ``comparisons`` (paired statistics
against the best prompting baseline), ``decision``, ``samples`` (side-by-side outputs of every option on
the same inputs, with their format errors), ``timing``.
"""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 1


def memory_row(option: dict[str, Any]) -> dict[str, Any] | None:
    """The planner's estimate next to the trainer's measured peak, and whether they are comparable."""
    training, plan = option.get("training"), option.get("plan")
    if not training:
        return None
    measured_gb = float(training.get("peak_memory_bytes") or 0) / 1e9
    kind = str(training.get("memory_kind") or "")
    planned = None
    if isinstance(plan, dict) and "peak_gb" in plan:
        planned = plan["peak_gb"]
    comparable = kind.startswith("cuda")
    note = (
        "measured with torch.cuda.max_memory_allocated: comparable with the plan"
        if comparable
        else "measured as CPU process RSS (whole process: Python, libraries, data), not CUDA allocated "
        "memory: not directly comparable with the plan's accelerator peak"
    )
    return {
        "planned_peak_gb": planned,
        "measured_peak_gb": measured_gb,
        "measured_kind": kind,
        "comparable": comparable,
        "note": note,
        "plan_error": plan.get("error") if isinstance(plan, dict) else None,
    }


def output_check(text: str, schema: dict | None) -> dict[str, Any]:
    """Per-output format verdict for the side-by-side view: strict parse, lenient parse, schema errors."""
    from ftharness.suites.json_extract import parse_lenient, parse_strict

    strict = parse_strict(text)
    found = strict if strict.ok else parse_lenient(text)
    errors: list[str] = []
    paths: list[str] = []
    if not found.ok:
        errors.append(f"no JSON found: {strict.error}" if strict.error else "no JSON found")
    elif schema is not None:
        from jsonschema.validators import validator_for

        cls = validator_for(schema)
        for e in cls(schema, format_checker=cls.FORMAT_CHECKER).iter_errors(found.value):
            errors.append(f"{e.json_path}: {e.message}")
            paths.append(e.json_path)
    if found.ok and not strict.ok:
        errors.insert(0, f"not bare JSON (found by {found.how}; text around it)")
    return {
        "strict_ok": strict.ok and not paths,
        "json_found": found.ok,
        "errors": errors[:6],
        "error_paths": paths,
    }


def side_by_side(
    options: list[dict[str, Any]], samples: dict[str, list[dict]], schema: dict | None, limit: int = 24
) -> list[dict[str, Any]]:
    """One row per eval input: the reference and every option's output on it."""
    names = [o["name"] for o in options]
    rows = []
    by_option = {n: {r["id"]: r for r in samples.get(n, [])} for n in names}
    ids = sorted({i for rows_ in by_option.values() for i in rows_})[:limit]
    for i in ids:
        first = next((by_option[n][i] for n in names if i in by_option[n]), {})
        outs = {}
        for n in names:
            r = by_option[n].get(i)
            if r is None:
                continue
            outs[n] = {
                "text": r["output"],
                "finish_reason": r.get("finish_reason"),
                **output_check(r["output"], schema),
            }
        rows.append(
            {
                "id": i,
                "input": first.get("input", ""),
                "reference": first.get("reference"),
                "meta": first.get("meta", {}),
                "outputs": outs,
            }
        )
    return rows


def assemble(
    *,
    run_id: str,
    task: Any,
    experiment: dict[str, Any],
    comparisons: list[dict[str, Any]],
    decision: dict[str, Any],
    samples: dict[str, list[dict]],
    settings: dict[str, Any],
    environment: dict[str, Any],
    timing: dict[str, Any],
    task_hash: str,
) -> dict[str, Any]:
    options = experiment["options"]
    for o in options:
        o["memory"] = memory_row(o)
    return json_safe(
        {
            "schema_version": SCHEMA_VERSION,
            "run_id": run_id,
            "task": {
                "name": task.name,
                "file": str(task.file),
                "hash": task_hash,
                "base_model": settings.get("base_model"),
                "instruction": task.instruction,
                "schema_file": str(task.schema_path) if task.schema_path else None,
                "schema": task.schema,
                "slices": list(task.spec.slices),
                "gates": [getattr(g, "text", str(g)) for g in task.gates],
                "decision_settings": _asdict(task.spec.decision),
            },
            "settings": settings,
            "environment": environment,
            "data": experiment.get("data", {}),
            "suites": experiment.get("suites", []),
            "options": options,
            "selection": experiment.get("selection", {}),
            "comparisons": comparisons,
            "decision": decision,
            "samples": side_by_side(options, samples, task.schema),
            "timing": timing,
        }
    )


def _asdict(obj: Any) -> Any:
    import dataclasses

    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj


def json_safe(obj: Any) -> Any:
    """Strict JSON: NaN/inf become None, paths and dataclasses become plain values."""
    return _clean(obj)


def _clean(obj: Any) -> Any:
    import math
    from pathlib import Path

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "to_dict"):
        return _clean(obj.to_dict())
    return obj
