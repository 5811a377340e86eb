"""Checking a metric's settings from a suite file with the same strict loader as every user file."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

from ftharness.typed import from_mapping, resolve_path

T = TypeVar("T")


def parse_settings(cls: type[T], metric: str, settings: dict[str, Any], source: str | Path | None) -> T:
    """``settings`` as dataclass ``cls``; unknown or mistyped fields name ``metrics.METRIC.FIELD``."""
    return from_mapping(cls, settings, source=source, prefix=f"metrics.{metric}.")


def settings_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)


def resolve_setting_path(value: str | None, source: str | Path | None) -> str | None:
    """A path written in a suite file, resolved against the suite file's folder."""
    if value is None:
        return None
    if source is None:
        return str(Path(value).expanduser())
    return str(resolve_path(value, source))
