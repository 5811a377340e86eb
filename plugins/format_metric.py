"""The ``format`` metric: do outputs parse as JSON and follow the JSON Schema?

``parse_rate`` (= ``parse_rate_strict``): the whole output, stripped, is one JSON document that validates.
``parse_rate_lenient``: the first fenced ```json block, else the first balanced JSON object/array in the
text, validates. ``json_rate_strict`` / ``json_rate_lenient``: the same without the schema.
``schema_fail_rate``: share of outputs where lenient extraction found JSON that fails the schema.
The most common schema errors are counted by (JSON path, validator keyword), once per output.
Validation uses ``jsonschema`` with the validator its ``$schema`` names and format checking on.
Without a schema (neither ``--schema``/the task nor the suite names one) validity means "is JSON".
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ftharness.hookspecs import hookimpl
from ftharness.suites.json_extract import parse_lenient, parse_strict
from ftharness.suites.metric import MetricContext, MetricResult
from ftharness.suites.settings import TypedMetric, resolve_setting_path
from ftharness.typed import load_json_schema, spec

VALUES = [
    "parse_rate",
    "parse_rate_strict",
    "parse_rate_lenient",
    "json_rate_strict",
    "json_rate_lenient",
    "schema_fail_rate",
]


@dataclass
class FormatSettings:
    schema: str | None = None  # a JSON Schema file; the run's schema (--schema, the task) takes precedence
    top_errors: int = spec(5, ge=0, help="most common schema errors kept")


class FormatMetric(TypedMetric):
    name = "format"
    needs_model = False
    settings_class = FormatSettings
    values = tuple(VALUES)
    lower_is_better = frozenset({"schema_fail_rate"})

    def finish(self, s: FormatSettings, source: str | Path | None) -> None:
        s.schema = resolve_setting_path(s.schema, source)
        if s.schema:
            load_json_schema(s.schema, source=source, field="metrics.format.schema")

    def compute(self, ctx: MetricContext, settings: dict[str, Any]) -> MetricResult:
        s = self.typed(settings)
        schema = ctx.schema
        source = "run" if schema is not None else None
        if schema is None and s.schema:
            schema, source = load_json_schema(s.schema), s.schema
        return score_format([x.output for x in ctx.samples], schema, top_errors=s.top_errors, schema_source=source)


def score_format(
    outputs: list[str], schema: dict | None, *, top_errors: int = 5, schema_source: str | None = None
) -> MetricResult:
    check = _checker(schema)
    per: dict[str, list[float]] = {k: [] for k in VALUES}
    errors: Counter[tuple[str, str]] = Counter()
    examples: dict[tuple[str, str], str] = {}
    how: Counter[str] = Counter()
    for text in outputs:
        strict, lenient = parse_strict(text), parse_lenient(text)
        strict_errs = check(strict.value) if strict.ok else None
        lenient_errs = check(lenient.value) if lenient.ok else None
        per["json_rate_strict"].append(float(strict.ok))
        per["json_rate_lenient"].append(float(lenient.ok))
        per["parse_rate_strict"].append(float(strict.ok and not strict_errs))
        per["parse_rate_lenient"].append(float(lenient.ok and not lenient_errs))
        per["schema_fail_rate"].append(float(lenient.ok and bool(lenient_errs)))
        how[lenient.how if lenient.ok else "none"] += 1
        for key, message in {(e[0], e[1]): e[2] for e in lenient_errs or []}.items():
            errors[key] += 1
            examples.setdefault(key, message)
    per["parse_rate"] = list(per["parse_rate_strict"])
    n = len(outputs)
    values = {k: sum(v) / n for k, v in per.items()} if n else {}
    common = [
        {"path": path, "validator": validator, "count": count, "example": examples[(path, validator)]}
        for (path, validator), count in errors.most_common(top_errors)
    ]
    details = {
        "n": n,
        "schema": schema_source if schema is not None else None,
        "validity": "json schema" if schema is not None else "parses as JSON (no schema given)",
        "lenient_found_by": dict(how),
        "common_schema_errors": common,
        "first_failures": [i for i, ok in enumerate(per["parse_rate_strict"]) if not ok][:10],
    }
    return MetricResult(values=values, per_sample=per, details=details)


def _checker(schema: dict | None):
    """A function giving ``[(json_path, validator, message)]`` for a document ([] when valid)."""
    if schema is None:
        return lambda doc: []
    validator = _validator(_freeze(schema))

    def check(doc: Any) -> list[tuple[str, str, str]]:
        return [(e.json_path, str(e.validator), e.message) for e in validator.iter_errors(doc)]

    return check


def _freeze(obj: Any) -> Any:
    import json

    return json.dumps(obj, sort_keys=True)


@lru_cache(maxsize=8)
def _validator(frozen: str):
    import json

    from jsonschema.validators import validator_for

    schema = json.loads(frozen)
    cls = validator_for(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


@hookimpl
def register_metrics(register) -> None:
    register(FormatMetric())
