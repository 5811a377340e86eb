"""Reading the user's YAML/JSON files into typed dataclasses, with one clear line for each mistake.

Every user-facing file (scenario, task, candidate, suite) goes through :func:`load_mapping` and
:func:`from_mapping`: unknown fields, wrong types and out-of-range numbers become a
:class:`~ftharness.errors.BadInput` naming the file and the field (and the line, where YAML knows it).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

from ftharness.errors import BadInput

T = TypeVar("T")


def load_mapping(path: str | Path) -> dict[str, Any]:
    """Load a YAML or JSON file whose top level is a mapping."""
    path = Path(path)
    if not path.exists():
        raise BadInput("file not found; check the path", file=path)
    if path.is_dir():
        raise BadInput("is a folder, expected a YAML or JSON file", file=path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise BadInput(f"not UTF-8 text ({e.reason}); save it as UTF-8", file=path) from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise BadInput(f"not valid JSON: {e.msg}", file=path, line=e.lineno) from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            problem = getattr(e, "problem", None) or "syntax error"
            raise BadInput(
                f"not valid YAML: {problem}", file=path, line=(mark.line + 1) if mark else None
            ) from None
    if data is None:
        raise BadInput("file is empty; expected a mapping of fields", file=path)
    if not isinstance(data, dict):
        raise BadInput(f"expected a mapping of fields at the top level, got {_kind(data)}", file=path)
    return data


def from_mapping(cls: type[T], data: dict[str, Any], *, source: str | Path | None = None, prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, checking names, types and ranges.

    Field metadata understood: ``min`` / ``max`` (numbers, inclusive), ``help`` (shown for unknown
    fields' neighbours). Nested dataclasses, ``list[...]``, ``dict[str, ...]``, ``Literal``, optionals
    and unions of simple types are checked; ``Any`` passes through.
    """
    if not isinstance(data, dict):
        raise BadInput(f"expected a mapping, got {_kind(data)}", file=source, field=prefix.rstrip(".") or None)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = get_type_hints(cls)
    unknown = [k for k in data if k not in fields]
    if unknown:
        name = unknown[0]
        known = ", ".join(sorted(fields))
        raise BadInput(f"unknown field; known fields are: {known}", file=source, field=prefix + str(name))
    kwargs = {}
    for name, f in fields.items():
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise BadInput("required field is missing", file=source, field=prefix + name)
            continue
        kwargs[name] = _convert(hints[name], data[name], f.metadata, source, prefix + name)
    return cls(**kwargs)


def _convert(tp: Any, value: Any, meta: Any, source: Any, field: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, meta, source, field)
            except BadInput as e:
                errors.append(e.reason)
        raise BadInput(errors[0] if len(errors) == 1 else " or ".join(errors), file=source, field=field)
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise BadInput(
                f"{value!r} is not one of: {', '.join(map(str, choices))}", file=source, field=field
            )
        return value
    if origin is list:
        if not isinstance(value, list):
            raise BadInput(f"expected a list, got {_kind(value)}", file=source, field=field)
        (item,) = get_args(tp) or (Any,)
        return [_convert(item, v, {}, source, f"{field}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise BadInput(f"expected a mapping, got {_kind(value)}", file=source, field=field)
        _, vt = get_args(tp) or (str, Any)
        return {str(k): _convert(vt, v, {}, source, f"{field}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return from_mapping(tp, value, source=source, prefix=field + ".")
    if tp is bool:
        if not isinstance(value, bool):
            raise BadInput(f"expected true or false, got {_kind(value)}", file=source, field=field)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadInput(f"expected a whole number, got {_kind(value)}", file=source, field=field)
        _check_range(value, meta, source, field)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadInput(f"expected a number, got {_kind(value)}", file=source, field=field)
        _check_range(float(value), meta, source, field)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise BadInput(f"expected text, got {_kind(value)}", file=source, field=field)
        return value
    return value


def _check_range(value: float, meta: Any, source: Any, field: str) -> None:
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and value < lo:
        raise BadInput(f"must be >= {lo}, got {value}", file=source, field=field)
    if hi is not None and value > hi:
        raise BadInput(f"must be <= {hi}, got {value}", file=source, field=field)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({value})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        short = value if len(value) <= 30 else value[:27] + "..."
        return f"text ({short!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def resolve_path(value: str | None, base: str | Path) -> Path | None:
    """Resolve a path written in a file relative to that file's folder."""
    if value is None:
        return None
    p = Path(value).expanduser()
    return p if p.is_absolute() else (Path(base).parent / p)
