"""Typed records: stdlib dataclasses that say what each field means, written to JSON by one function, read
back by another, and described by a JSON Schema generated from the same classes.

The convention: every field of a record is declared with :func:`doc`, which keeps its meaning in the
field's metadata (``field(metadata={"help": ...})``)::

    @dataclass
    class SliceBucket:
        n: int = doc("samples in the bucket")

That text is the field's ``description`` in the generated schema, and a field without one makes
:func:`json_schema` fail, so a test that compares the published schema with the generated one also
catches an undocumented field.

- :func:`to_json`: a record (or records nested in dicts and lists) as strict JSON values: NaN and
  infinities become null, paths strings, tuples lists. Fields declared ``init=False`` are derived from the
  others; they are written (readers outside Python see them) and recomputed, not read, by
  :func:`from_json`.
- :func:`from_json`: the reverse, guided by the field types. A key the class does not know is ignored and
  a missing key takes the field's default, so documents written by older versions read back; a class may
  also define a staticmethod ``from_older(data) -> data`` that maps an older shape first.
- :func:`json_schema`: the JSON Schema (draft 2020-12) of a record class, or of a union of them: one
  ``$defs`` entry per record class, every field required (the writer always writes every field) and no
  other key allowed.

Field types understood: ``str``, ``int``, ``float``, ``bool``, ``None``, ``Literal[...]``, unions of
these (``X | None``), ``list[X]``, ``tuple[X, ...]``, ``dict[str, X]``, another record, and ``Any``
(any JSON value). A ``float`` field that may hold NaN is declared ``float | None``: NaN is written as null.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_SCALARS = {str: "string", bool: "boolean", int: "integer", float: "number", type(None): "null"}


def doc(help: str, **kwargs: Any) -> Any:
    """A dataclass field whose meaning is ``help``; other arguments go to :func:`dataclasses.field`."""
    return dataclasses.field(metadata={"help": help}, **kwargs)


# -- writing -----------------------------------------------------------------------------------------------


def to_json(obj: Any) -> Any:
    """``obj`` as plain JSON values (dicts, lists, strings, finite numbers, booleans, null)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_json(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if obj is None or isinstance(obj, str | bool):
        return obj
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_json(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not a JSON value; give it a record class")


# -- reading -----------------------------------------------------------------------------------------------


def from_json(tp: Any, data: Any) -> Any:
    """``data`` (parsed JSON) as an instance of ``tp``, a record class or a type built from the ones the
    module docstring lists. Raises ValueError naming the place when the data cannot be that type."""
    return _read(tp, data, tp.__name__ if isinstance(tp, type) else "document")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def _read(tp: Any, value: Any, where: str) -> Any:
    if tp is Any:
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected an object ({tp.__name__}), got {type(value).__name__}")
        older = getattr(tp, "from_older", None)
        if older is not None:
            value = older(dict(value))
        hints, kwargs = _hints(tp), {}
        for f in dataclasses.fields(tp):
            if not f.init:
                continue
            if f.name in value:
                kwargs[f.name] = _read(hints[f.name], value[f.name], f"{where}.{f.name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ValueError(f"{where}: missing {f.name!r}")
        return tp(**kwargs)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if _is_union(tp):
        if value is None and type(None) in args:
            return None
        rest = [a for a in args if a is not type(None)]
        return _read(rest[0], value, where) if len(rest) == 1 else value
    if origin is Literal:
        return value
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ValueError(f"{where}: expected an array, got {type(value).__name__}")
        item = args[0] if args else Any
        out = [_read(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected an object, got {type(value).__name__}")
        item = args[1] if args else Any
        return {k: _read(item, v, f"{where}.{k}") for k, v in value.items()}
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


# -- describing --------------------------------------------------------------------------------------------


def json_schema(root: Any, *, id: str, title: str, description: str) -> dict[str, Any]:
    """The JSON Schema of documents of type ``root`` (a record class or a union of them)."""
    defs: dict[str, tuple[type, dict[str, Any]]] = {}
    top = _schema(root, defs)
    if _is_union(root):  # a document is exactly one of the records
        top = {"oneOf": top["anyOf"]}
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": id,
        "title": title,
        "description": description,
        **top,
        "$defs": {name: schema for name, (_, schema) in sorted(defs.items())},
    }


def _schema(tp: Any, defs: dict[str, tuple[type, dict[str, Any]]]) -> dict[str, Any]:
    if tp is Any:
        return {}
    if tp in _SCALARS:
        return {"type": _SCALARS[tp]}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        _define(tp, defs)
        return {"$ref": f"#/$defs/{tp.__name__}"}
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if _is_union(tp):
        parts = [_schema(a, defs) for a in args]
        if all(set(p) == {"type"} for p in parts):
            return {"type": [p["type"] for p in parts]}
        return {"anyOf": parts}
    if origin is Literal:
        return {"const": args[0]} if len(args) == 1 else {"enum": list(args)}
    if origin in (list, tuple):
        item = args[0] if args else Any
        return {"type": "array", "items": _schema(item, defs)} if item is not Any else {"type": "array"}
    if origin is dict:
        item = args[1] if args else Any
        out: dict[str, Any] = {"type": "object"}
        if item is not Any:
            out["additionalProperties"] = _schema(item, defs)
        return out
    raise TypeError(f"no JSON Schema for the type {tp!r}")


def _define(cls: type, defs: dict[str, tuple[type, dict[str, Any]]]) -> None:
    name = cls.__name__
    if name in defs:
        if defs[name][0] is not cls:
            raise TypeError(f"two record classes are named {name}: {defs[name][0]} and {cls}")
        return
    schema: dict[str, Any] = {"type": "object"}
    defs[name] = (cls, schema)  # entered before its fields: records may refer to each other
    if cls.__doc__ and not cls.__doc__.startswith(f"{name}("):  # not the doc dataclass() generates
        schema["description"] = " ".join(cls.__doc__.replace("``", "`").split())
    hints = _hints(cls)
    properties = {}
    for f in dataclasses.fields(cls):
        text = f.metadata.get("help")
        if not text:
            raise TypeError(f"{name}.{f.name} says nothing about itself: declare it with doc(...)")
        properties[f.name] = {**_schema(hints[f.name], defs), "description": text}
    schema.update(properties=properties, required=list(properties), additionalProperties=False)
