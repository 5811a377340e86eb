"""User data in, typed dataclasses out: the one validation path for every user-facing file and flag.

Task, candidate, suite and scenario files, ``rules.yaml``, the planner's catalogues, trainer
hyperparameters, the questionnaire's answers and the ``advise`` / ``plan`` flags all become stdlib
dataclasses through :func:`from_mapping` (a YAML/JSON mapping) or :func:`flag_values` (argparse flags).

Types come from the annotations: ``int``, ``float``, ``str``, ``bool``, ``Literal[...]``, ``X | None``,
``list[X]``, ``dict[str, X]``, nested dataclasses, and ``Any`` (passed through unchecked). Constraints and
documentation live in the field: ``x: float = spec(0.1, ge=0, lt=1, help=..., source=...)``.

The rules every field follows:

- an unknown key is refused, naming the known ones (and the closest, when one is close);
- ints are accepted for floats (and become floats); booleans are never numbers; NaN and infinities are
  refused unless the field says ``finite=False``;
- every mistake is a :class:`~ftharness.errors.BadInput` naming the file, the line (YAML files: the line of
  the key) and the dotted field path (``candidates[2].sweep.r[0]``), or the flag (``--lora-dropout``).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import types
import typing
from collections.abc import Callable, Iterable
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

from ftharness.errors import BadInput
from ftharness.io import parse_json, read_json_file, read_user_text

T = TypeVar("T")
# The largest whole number a field takes: 2**53 - 1, the integers a JSON document carries exactly between
# programs (RFC 8259 sec. 6, I-JSON RFC 7493 sec. 2.2) and float arithmetic holds exactly.
MAX_INT = 2**53 - 1
_NONE = type(None)
_CHECKS = ("ge", "gt", "le", "lt")


def spec(
    default: Any = dataclasses.MISSING,
    *,
    factory: Callable[[], Any] | None = None,
    help: str = "",
    source: str | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: Iterable[Any] | None = None,
    min_len: int | None = None,
    finite: bool = True,
) -> Any:
    """A dataclass field with its documentation and constraints.

    ``help``: what the field means (the flag's help); ``source``: where its default comes from;
    ``ge``/``gt``/``le``/``lt``: bounds on a number; ``choices``: the allowed values (for lists the values of
    the items); ``min_len``: the least number of items or characters; ``finite=False`` admits NaN and
    infinities. ``factory`` makes a fresh mutable default (``factory=list``).
    """
    meta: dict[str, Any] = {"help": help, "source": source, "finite": finite, "min_len": min_len,
                            "choices": tuple(choices) if choices is not None else None,
                            "ge": ge, "gt": gt, "le": le, "lt": lt}
    meta = {k: v for k, v in meta.items() if v is not None}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class _Field:
    hint: Any
    meta: Any
    field: dataclasses.Field

    @property
    def required(self) -> bool:
        return self.field.default is dataclasses.MISSING and self.field.default_factory is dataclasses.MISSING

    @property
    def default(self) -> Any:
        if self.field.default_factory is not dataclasses.MISSING:
            return self.field.default_factory()
        return self.field.default


@cache
def _fields(cls: type) -> dict[str, _Field]:
    hints = get_type_hints(cls)
    return {f.name: _Field(hints[f.name], f.metadata, f) for f in dataclasses.fields(cls) if f.init}


def like(cls: type, name: str, default: Any = dataclasses.MISSING, **changes: Any) -> Any:
    """A field with the documentation and constraints of field ``name`` of ``cls``, ``default`` and any
    :func:`spec` keyword changed: a subclass moving a default (``like(Base, "learning_rate", 3e-3,
    source=...)``), a flag mirroring a file's field (``like(LoraSettings, "r", 16)``). A new default drops
    the old one's ``source`` unless a new one is given."""
    f = _fields(cls)[name].field
    meta = dict(f.metadata)
    if default is not dataclasses.MISSING:
        meta.pop("source", None)  # it cited the old default
    meta.update(changes)
    if default is dataclasses.MISSING and f.default_factory is not dataclasses.MISSING:
        return spec(factory=f.default_factory, **meta)
    return spec(f.default if default is dataclasses.MISSING else default, **meta)


# -- where a value sits, for the error message ----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _At:
    source: str | Path | None
    path: str
    line: int | None = None

    def key(self, name: Any, data: Any) -> _At:
        line = getattr(data, "lines", {}).get(name) or self.line
        return _At(self.source, f"{self.path}.{name}" if self.path else str(name), line)

    def index(self, i: int) -> _At:
        return _At(self.source, f"{self.path}[{i}]", self.line)

    def error(self, message: str) -> BadInput:
        return BadInput(message, file=self.source, line=self.line, field=self.path or None)


def _start(source: str | Path | None, prefix: str) -> _At:
    return _At(source, prefix.rstrip("."))


# -- mappings -----------------------------------------------------------------------------------------


def from_mapping(
    cls: type[T], data: Any, *, source: str | Path | None = None, prefix: str = "", kind: str = "field"
) -> T:
    """Build dataclass ``cls`` from ``data``, checking names, types and constraints.

    ``source`` is the file named in errors, ``prefix`` the path of ``data`` inside it (``"metrics.format."``),
    ``kind`` what an unknown key is called (``"hyperparameter for peft/lora"``: "unknown hyperparameter for peft/lora").
    """
    return cls(**_values(cls, data, _start(source, prefix), kind))


def _values(cls: type, data: Any, at: _At, kind: str = "field") -> dict[str, Any]:
    if not isinstance(data, dict):
        raise at.error(f"expected a mapping, got {_kind(data)}")
    fields = _fields(cls)
    for key in data:
        if key not in fields:
            raise at.key(key, data).error(f"unknown {kind}{_did_you_mean(str(key), fields)}; known: "
                                          f"{', '.join(fields) or 'none'}")
    out = {}
    for name, f in fields.items():
        if name in data:
            out[name] = _convert(f.hint, data[name], f.meta, at.key(name, data))
        elif f.required:
            raise at.key(name, data).error("required field is missing")
    return out


def _convert(tp: Any, value: Any, meta: Any, at: _At) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = [a for a in get_args(tp) if a is not _NONE]
        if value is None and len(options) < len(get_args(tp)):
            return None
        fitting = [a for a in options if _fits(a, value)]
        if len(options) > 1 and not fitting:
            raise at.error(f"expected {_describe(tp)}, got {_kind(value)}")
        return _convert((fitting or options)[0], value, meta, at)
    if value is None:
        raise at.error(f"expected {_describe(tp)}, got {_kind(value)}")
    if origin is Literal:
        if value not in get_args(tp):
            raise at.error(_not_one_of(value, get_args(tp)))
        return value
    if origin is list:
        if not isinstance(value, list):
            raise at.error(f"expected a list, got {_kind(value)}")
        _check_len(value, meta, at)
        (item,) = get_args(tp) or (Any,)
        items = {k: v for k, v in meta.items() if k != "min_len"}
        return [_convert(item, v, items, at.index(i)) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise at.error(f"expected a mapping, got {_kind(value)}")
        _check_len(value, meta, at)
        _, item = get_args(tp) or (str, Any)
        out = {str(k): _convert(item, v, {}, at.key(k, value)) for k, v in value.items()}
        return _keep_lines(out, value)
    if dataclasses.is_dataclass(tp):
        return tp(**_values(tp, value, at))
    if tp is bool:
        if not isinstance(value, bool):
            raise at.error(f"expected true or false, got {_kind(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise at.error(f"expected a whole number, got {_kind(value)}")
        if abs(value) > MAX_INT:
            raise at.error(f"must be between -{MAX_INT:_} and {MAX_INT:_}")
        _check_number(value, meta, at)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise at.error(f"expected a number, got {_kind(value)}")
        _check_number(float(value), meta, at)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise at.error(f"expected text, got {_kind(value)}")
        _check_len(value, meta, at)
        if meta.get("choices") is not None and value not in meta["choices"]:
            raise at.error(_not_one_of(value, meta["choices"]))
        return value
    raise TypeError(f"ftharness.typed cannot check values of type {tp!r}")


def _fits(tp: Any, value: Any) -> bool:
    """Whether ``value`` is of the kind ``tp`` wants (which member of a union to check it against)."""
    origin = get_origin(tp)
    if tp is Any:
        return True
    if origin is Literal:
        return value in get_args(tp)
    if origin is list:
        return isinstance(value, list)
    if origin is dict or dataclasses.is_dataclass(tp):
        return isinstance(value, dict)
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def _check_number(value: float, meta: Any, at: _At) -> None:
    if meta.get("finite", True) and not math.isfinite(value):
        raise at.error(f"must be a finite number, got {value}")
    for op in _CHECKS:
        bound = meta.get(op)
        if bound is None:
            continue
        ok = {"ge": value >= bound, "gt": value > bound, "le": value <= bound, "lt": value < bound}[op]
        if not ok:
            sign = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}[op]
            raise at.error(f"must be {sign} {bound:g}, got {value:g}" if isinstance(value, float)
                           else f"must be {sign} {bound:g}, got {value}")
    if meta.get("choices") is not None and value not in meta["choices"]:
        raise at.error(_not_one_of(value, meta["choices"]))


def _check_len(value: Any, meta: Any, at: _At) -> None:
    least = meta.get("min_len")
    if least is not None and len(value) < least:
        what = "character" if isinstance(value, str) else "item"
        raise at.error(f"needs at least {least} {what}{'s' if least > 1 else ''}")


def _not_one_of(value: Any, choices: Iterable[Any]) -> str:
    names = [str(c) for c in choices]
    return f"{value!r} is not one of: {', '.join(names)}{_did_you_mean(str(value), names)}"


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(tp))
    if origin is Literal:
        return "one of: " + ", ".join(map(str, get_args(tp)))
    if origin is list:
        return "a list"
    if origin is dict or dataclasses.is_dataclass(tp):
        return "a mapping"
    names = {int: "a whole number", float: "a number", bool: "true or false", str: "text", _NONE: "null"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({value})"
    if isinstance(value, int) and abs(value) > MAX_INT:
        return "a number out of range"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"text ({_short(value)!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _short(text: str) -> str:
    """Text shown in a message: at most 30 characters."""
    return text if len(text) <= 30 else text[:27] + "..."


def close_match(name: str, known: Iterable[str]) -> str | None:
    """The known name closest to ``name`` (a likely typo), or None."""
    import difflib

    found = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return found[0] if found else None


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    near = close_match(name, known)
    return f" (did you mean {near!r}?)" if near else ""


# -- flags and typed-in answers -------------------------------------------------------------------------


def flag_name(field: str) -> str:
    """``lora_dropout`` -> ``--lora-dropout``."""
    return "--" + field.replace("_", "-")


def add_flags(group: Any, cls: type) -> None:
    """One argparse option per field of ``cls``: ``--field-name``, its help from :func:`spec`, ``--x/--no-x``
    for booleans. Flags default to None, so :func:`flag_values` sees which were given; checking them is
    :func:`flag_values`' job, not argparse's."""
    for name, f in _fields(cls).items():
        text = f.meta.get("help", "")
        if _optional_of(f.hint) is bool:
            group.add_argument(flag_name(name), dest=name, action=argparse.BooleanOptionalAction, default=None,
                               help=text)
            continue
        if not f.required and f.default not in (None, [], {}):
            text += f" (default {f.default})" if text else f"default {f.default}"
        group.add_argument(flag_name(name), dest=name, metavar=_metavar(f.hint, f.meta), default=None,
                           required=f.required, help=text)


def _optional_of(tp: Any) -> Any:
    """``X`` for ``X | None``, else ``tp``."""
    if get_origin(tp) in (typing.Union, types.UnionType):
        options = [a for a in get_args(tp) if a is not _NONE]
        if len(options) == 1:
            return options[0]
    return tp


def _metavar(tp: Any, meta: Any) -> str:
    tp = _optional_of(tp)
    if get_origin(tp) is Literal or meta.get("choices"):
        return "{" + ",".join(map(str, get_args(tp) or meta["choices"])) + "}"
    if get_origin(tp) is list:
        return "A,B,..."
    return {int: "N", float: "NUMBER"}.get(tp, "TEXT")


def flag_values(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The fields of ``cls`` given as flags (not None in ``args``), typed and checked as a file's fields
    are; a mistake is BadInput naming the flag."""
    out = {}
    for name in _fields(cls):
        raw = getattr(args, name, None)
        if raw is not None:
            out[name] = text_value(cls, name, raw, label=flag_name(name))
    return out


def text_value(cls: type, name: str, text: Any, *, label: str | None = None) -> Any:
    """Field ``name`` of ``cls`` from what a person typed (:func:`parse_text`; a value that is already typed,
    such as an argparse boolean, is only checked). A mistake is BadInput naming ``label`` (default: ``name``)."""
    f = _fields(cls)[name]
    at = _At(None, label or name)
    try:
        return _convert(f.hint, parse_text(f.hint, text, at) if isinstance(text, str) else text, f.meta, at)
    except BadInput as e:
        raise BadInput(e.reason, field=at.path) from None


_YES = ("y", "yes", "true", "on", "1")
_NO = ("n", "no", "false", "off", "0")
_WHOLE = re.compile(r"[+-]?(\d+|\d{1,3}(,\d{3})+)")


def parse_text(tp: Any, text: str, at: _At | None = None) -> Any:
    """A value of type ``tp`` read from text a person typed (a flag, an answer): numbers may carry ``_`` or
    thousands commas, booleans are y/n (yes/no, true/false), lists are comma-separated, choices match
    regardless of case. The result still goes through the type's checks (:func:`text_value`)."""
    at = at or _At(None, "")
    text = text.strip()
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in get_args(tp) if a is not _NONE]
        for option in options[:-1]:
            try:
                return parse_text(option, text, at)
            except BadInput:
                continue
        return parse_text(options[-1], text, at)
    if origin is Literal:
        for choice in get_args(tp):
            if str(choice).lower() == text.lower():
                return choice
        return text
    if origin is list:
        (item,) = get_args(tp) or (Any,)
        return [parse_text(item, part, at) for part in text.split(",") if part.strip()]
    if tp is bool:
        if text.lower() in _YES + _NO:
            return text.lower() in _YES
        raise at.error(f"expected y or n (yes/no, true/false), got {text!r}")
    if tp is int:
        plain = text.replace("_", "")
        if not _WHOLE.fullmatch(plain):
            raise at.error(f"expected a whole number, got {_short(text)!r}")
        digits = plain.replace(",", "")
        if len(digits.lstrip("+-")) > len(str(MAX_INT)):  # int() refuses over 4300 digits; far out of range anyway
            raise at.error(f"must be between -{MAX_INT:_} and {MAX_INT:_}")
        return int(digits)
    if tp is float:
        try:
            return float(text.replace("_", ""))
        except ValueError:
            raise at.error(f"expected a number, got {_short(text)!r}") from None
    return text


# -- files ----------------------------------------------------------------------------------------------


class _Located(dict):
    """A mapping read from YAML that remembers the line of each key (for error messages)."""

    lines: dict[Any, int] = {}  # instances set their own; the class default says "none known"


def _keep_lines(out: dict, data: Any) -> dict:
    lines = getattr(data, "lines", None)
    if not lines:
        return out
    located = _Located(out)
    located.lines = {str(k): v for k, v in lines.items()}
    return located


@lru_cache(maxsize=1)
def _yaml_loader() -> type:
    """PyYAML's safe loader (the C one when present) with two changes: mappings remember their keys' lines,
    and ``2e-4`` is a number, as YAML 1.2 reads it (YAML 1.1, PyYAML's default, reads it as text)."""
    import yaml

    class Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
        pass

    def mapping(loader: Any, node: Any) -> dict:
        own = [k for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"]  # before merge keys (<<) flatten
        data = _Located(loader.construct_mapping(node, deep=True))  # refuses unhashable keys
        lines: dict[Any, int] = {}
        for k in own:
            key = loader.construct_object(k, deep=True)
            if key in lines:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first on line {lines[key]}); keep one", k.start_mark)
            lines[key] = k.start_mark.line + 1
        data.lines = {loader.construct_object(k, deep=True): k.start_mark.line + 1 for k, _ in node.value}
        return data

    Loader.add_constructor("tag:yaml.org,2002:map", mapping)
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
    )
    return Loader


def load_mapping(path: str | Path) -> dict[str, Any]:
    """Load a YAML or JSON file whose top level is a mapping (YAML mappings remember their keys' lines)."""
    path = Path(path)
    text = read_user_text(path)
    if path.suffix.lower() == ".json":
        data = parse_json(text, file=path)
    else:
        import yaml

        try:
            data = yaml.load(text, Loader=_yaml_loader())  # a safe loader (see _yaml_loader)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            problem = getattr(e, "problem", None) or "syntax error"
            raise BadInput(
                f"not valid YAML: {problem}", file=path, line=(mark.line + 1) if mark else None
            ) from None
        except RecursionError:
            raise BadInput("not valid YAML: nested too deep", file=path) from None
        except ValueError as e:  # a whole number of more than 4300 digits (int's limit on conversions)
            raise BadInput(f"not valid YAML: {str(e).split(';')[0]}", file=path) from None
    if data is None:
        raise BadInput("file is empty; expected a mapping of fields", file=path)
    if not isinstance(data, dict):
        raise BadInput(f"expected a mapping of fields at the top level, got {_kind(data)}", file=path)
    return data


def load_file(cls: type[T], path: str | Path) -> T:
    """:func:`load_mapping` then :func:`from_mapping`: a whole file as dataclass ``cls``."""
    return from_mapping(cls, load_mapping(path), source=path)


def resolve_path(value: str | None, base: str | Path) -> Path | None:
    """Resolve a path written in a file relative to that file's folder."""
    if value is None:
        return None
    p = Path(value).expanduser()
    return p if p.is_absolute() else (Path(base).parent / p)


def text_or_file(
    text: str | None, file: str | None, *, names: tuple[str, str], source: str | Path | None = None
) -> str | None:
    """The text given inline or the (stripped) content of ``file``, never both ("X or X_file, not both").

    ``file`` is relative to ``source``'s folder when ``source`` is given. ``names`` are the two fields (or
    flags) as the user wrote them, for the messages.
    """
    if text is not None and file is not None:
        raise BadInput(f"give {names[0]} or {names[1]}, not both", file=source, field=names[1])
    if file is None:
        return text
    path = resolve_path(file, source) if source is not None else Path(file).expanduser()
    if path is None or not path.is_file():
        raise BadInput(f"file not found: {path}", file=source, field=names[1])
    return read_user_text(path).strip()


def load_json_schema(path: str | Path, *, source: str | Path | None = None, field: str | None = None) -> dict:
    """Read a JSON Schema file and check it is a valid schema (for the draft its ``$schema`` names).

    A missing file names ``source`` (the file that refers to it) and ``field``; a broken one names itself.
    """
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"JSON Schema file not found: {path}; check the path", file=source or path, field=field)
    schema = read_json_file(path)
    check_json_schema(schema, file=path)
    return schema


def check_json_schema(schema: Any, *, file: str | Path | None = None, field: str | None = None) -> None:
    """BadInput unless ``schema`` is a valid JSON Schema object (for the draft its ``$schema`` names)."""
    from jsonschema import SchemaError
    from jsonschema.validators import validator_for

    if not isinstance(schema, dict):
        raise BadInput(f"a JSON Schema is an object, got {_kind(schema)}", file=file, field=field)
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as e:
        where = "/".join(map(str, e.path)) or "(top)"
        raise BadInput(f"not a valid JSON Schema at {where}: {e.message}", file=file, field=field) from None
