"""Small file helpers every reader and writer shares: user text and strict JSON in, atomic writes, JSONL
streaming, content hashes, file locks.

Every JSON or JSONL file a user hands the harness (data, predictions, schemas, configs, task files in
JSON) and every JSON document a model outputs is read by :func:`loads_json`, after :func:`read_user_text`:
one reading, so one set of rules, RFC 8259 without Python's extensions. A file the harness wrote itself
is read back with plain ``json``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftharness import faults
from ftharness.errors import BadInput

# How deep a JSON document may nest. Python's json parser recurses once per level and stops near the
# interpreter's recursion limit (1000), and so do the encoder and every recursive walk of the harness; a
# hundred levels is far beyond any record, schema or answer (ftharness design choice).
MAX_JSON_DEPTH = 100


class JsonRefused(ValueError):
    """Text that parses under Python's ``json`` but is not a JSON document the harness accepts."""


def read_user_text(path: str | Path) -> str:
    """A user's text file, UTF-8 with or without a byte-order mark; BadInput (naming the file, and the
    line of a byte that is not UTF-8) when it is missing, a folder, unreadable or not UTF-8."""
    path = Path(path)
    if not path.exists():
        raise BadInput("file not found; check the path", file=path)
    if path.is_dir():
        raise BadInput("is a folder, expected a file", file=path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise BadInput(f"cannot be read ({e.strerror}); check its permissions", file=path) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise BadInput(f"not UTF-8 text (byte {e.start}: {e.reason}); save it as UTF-8", file=path,
                       line=line) from None


def _refuse_constant(name: str) -> Any:
    raise JsonRefused(f"{name} is not JSON (RFC 8259 has no NaN or Infinity); write a number or null")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise JsonRefused(f"duplicate key {key!r} in one object; keep one")
        out[key] = value
    return out


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_constant=_refuse_constant)


def check_json_value(value: Any) -> Any:
    """``value`` as parsed, after checking what the parser lets through: nesting deeper than
    :data:`MAX_JSON_DEPTH` and lone UTF-16 surrogates (``"\\ud800"``), which are not text (RFC 8259 sec.
    8.2) and cannot be written back as UTF-8. Raises :class:`JsonRefused`."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item)
            continue
        if not isinstance(item, dict | list):
            continue
        if depth > MAX_JSON_DEPTH:
            raise JsonRefused(f"nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, dict):
            for key in item:
                _check_text(key)
            stack.extend((v, depth + 1) for v in item.values())
        else:
            stack.extend((v, depth + 1) for v in item)
    return value


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise JsonRefused(f"holds a lone surrogate {text[e.start]!r}, which is not text (RFC 8259 sec. 8.2); "
                          "escape both halves of the pair or the character itself") from None


def decode_json(text: str, pos: int = 0) -> tuple[Any, int]:
    """One strict JSON value from ``text`` at ``pos`` and where it ends (``JSONDecoder.raw_decode``):
    json.JSONDecodeError for a syntax error, :class:`JsonRefused` for a duplicate key, NaN or Infinity,
    a lone surrogate or nesting deeper than :data:`MAX_JSON_DEPTH`."""
    try:
        value, end = _DECODER.raw_decode(text, pos)
    except RecursionError:
        raise JsonRefused(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (json.JSONDecodeError, JsonRefused):
        raise
    except ValueError as e:  # a number of more than 4300 digits (int's limit on conversions)
        raise JsonRefused(str(e).split(";")[0]) from None
    return check_json_value(value), end


def loads_json(text: str) -> Any:
    """``json.loads`` under :func:`decode_json`'s rules: the whole text is one JSON document."""
    value, end = decode_json(text, _skip_space(text, 0))
    if _skip_space(text, end) != len(text):
        raise json.JSONDecodeError("Extra data", text, _skip_space(text, end))
    return value


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def parse_json(text: str, *, file: str | Path | None = None, line: int | None = None) -> Any:
    """:func:`loads_json` with any mistake a BadInput naming ``file`` and the line (``line``: the line
    ``text`` starts on, a JSONL record's; None for a whole file)."""
    try:
        return loads_json(text)
    except json.JSONDecodeError as e:
        raise BadInput(f"not valid JSON: {e.msg} (column {e.colno})", file=file,
                       line=(line or 1) + e.lineno - 1) from None
    except JsonRefused as e:
        raise BadInput(f"not valid JSON: {e}", file=file, line=line) from None


def read_json_file(path: str | Path) -> Any:
    """A user's JSON file (:func:`read_user_text`, then :func:`parse_json`)."""
    return parse_json(read_user_text(path), file=path)


def check_folder(path: str | Path, *, field: str | None = None) -> Path:
    """``path`` as a folder to write into (made later, by its writer): BadInput naming ``field`` when it, or
    the nearest of its parents that exists, is not a folder or cannot be written to."""
    path = Path(path)
    for existing in (path, *path.parents):
        if existing.exists():
            if not existing.is_dir():
                raise BadInput("is a file, not a folder; give a folder to write into", file=existing, field=field)
            if not os.access(existing, os.W_OK | os.X_OK):
                raise BadInput("cannot write into this folder (permissions)", file=existing, field=field)
            break
    return path


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` so that readers see the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(path, json_text(data))


def json_text(data: Any) -> str:
    """The text every JSON file the harness writes has: indented, keys in their order, a final newline."""
    return json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n"


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def append_jsonl(path: str | Path, records: Iterable[dict]) -> None:
    """Append records and flush, so that a killed run keeps every line it wrote. A kill can still cut the
    last line short: whoever appends to the file again calls :func:`repair_jsonl` first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r, ensure_ascii=False, default=_json_default) + "\n" for r in records)
    with open(path, "a", encoding="utf-8") as f:
        if faults.hit("jsonl-append"):  # test hook: die half-way through the write, as a kill -9 can
            f.write(text[: len(text) // 2])
            f.flush()
            faults.act()
        f.write(text)
        f.flush()


def _complete_lines(path: Path) -> tuple[list[dict], int]:
    """The records of the file's complete, readable lines up to the first that is not, and the byte
    length of those lines."""
    out: list[dict] = []
    good = 0
    with open(path, "rb") as f:
        for raw in f:
            if not raw.endswith(b"\n"):
                break  # the last line, cut short by a kill before its newline
            line = raw.strip()
            if line:
                try:
                    out.append(json.loads(line))
                except (json.JSONDecodeError, UnicodeDecodeError):
                    break  # a line cut short by a kill: everything before it is good
            good += len(raw)
    return out, good


def read_jsonl(path: str | Path) -> list[dict]:
    """Read a JSONL file the harness wrote itself (user files go through ftharness.data): every complete
    line up to the first that is not (a line cut short by a kill)."""
    path = Path(path)
    if not path.exists():
        return []
    return _complete_lines(path)[0]


def repair_jsonl(path: str | Path) -> list[dict]:
    """:func:`read_jsonl`, and the file cut back to those lines when a kill left a torn line behind, so
    that the next :func:`append_jsonl` starts on a line of its own (never glued to the fragment)."""
    path = Path(path)
    if not path.exists():
        return []
    records, good = _complete_lines(path)
    if good < path.stat().st_size:
        with open(path, "rb") as f:
            kept = f.read(good)
        atomic_write_text(path, kept.decode("utf-8"))
    return records


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_json(data: Any) -> str:
    """A stable hash of JSON-able data (sorted keys): cache keys for specs and settings."""
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class FileLock:
    """An exclusive ``flock`` held on ``path`` until :meth:`release` (or until the process ends, however
    it ends: the operating system drops the lock of a killed process, so no lock is ever left stale).
    While held, the file names the holder: ``{"pid", "since", "command"}`` (:func:`lock_holder`)."""

    path: Path
    fd: int

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the descriptor releases the lock
            self.fd = -1

    def __enter__(self) -> FileLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def try_lock(path: str | Path) -> FileLock | None:
    """Take the lock on ``path`` (created if missing) now, or None when another process holds it."""
    fd = _open_lock_file(Path(path))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return _held(Path(path), fd)


def wait_lock(path: str | Path, on_wait: Callable[[dict[str, Any] | None], None] | None = None) -> FileLock:
    """Take the lock on ``path``, waiting for its holder to release it (or die). ``on_wait(holder)`` is
    called once, before waiting, when another process holds it."""
    lock = try_lock(path)
    if lock is not None:
        return lock
    if on_wait is not None:
        on_wait(lock_holder(path))
    fd = _open_lock_file(Path(path))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:  # interrupted while waiting
        os.close(fd)
        raise
    return _held(Path(path), fd)


def lock_holder(path: str | Path) -> dict[str, Any] | None:
    """Who holds (or last held) the lock on ``path``, as its holder wrote it; None when unknown."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def describe_holder(holder: dict[str, Any] | None) -> str:
    """``pid 123 (since 2025-01-01 10:00:00): ftharness compare task.yaml``, or what is known of it."""
    if not holder:
        return "another process"
    return f"pid {holder.get('pid')} (since {holder.get('since')}): {holder.get('command')}"


def _open_lock_file(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


def _held(path: Path, fd: int) -> FileLock:
    """The lock just taken on ``fd``, its file rewritten to name this process."""
    holder = {"pid": os.getpid(), "since": time.strftime("%Y-%m-%d %H:%M:%S"), "command": shlex.join(sys.argv)}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
    return FileLock(path=path, fd=fd)
