"""Checking a metric's settings from a suite file with the same strict loader as every user file.

:class:`TypedMetric` is what a metric plugin with one settings dataclass derives from: it declares
``settings_class`` and ``values`` and gets ``check_settings`` (the strict read, then its own ``finish``
for what one field cannot say: paths resolved against the suite file, files that must load) and
``value_names``. A metric whose value names depend on its settings overrides ``value_names``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar, TypeVar

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


class TypedMetric:
    """The settings half of a metric plugin (``ftharness.hookspecs.Metric``): ``settings_class`` (a
    dataclass; each field's default, range and help in the field) and ``values`` (what ``compute`` can
    produce) declared, the rest derived."""

    name: str
    settings_class: ClassVar[type] = object
    values: ClassVar[tuple[str, ...]] = ()
    lower_is_better: ClassVar[frozenset[str]] = frozenset()  # the values that improve as they fall

    def value_names(self, settings: dict[str, Any]) -> list[str]:
        return list(self.values)

    def check_settings(self, settings: dict[str, Any], *, source: str | Path | None = None) -> dict[str, Any]:
        typed = parse_settings(self.settings_class, self.name, settings, source)
        self.finish(typed, source)
        return settings_dict(typed)

    def finish(self, settings: Any, source: str | Path | None) -> None:
        """Resolve and check what the typed fields cannot (BadInput naming ``source``); in place."""

    def typed(self, settings: dict[str, Any]) -> Any:
        """The checked settings ``compute`` receives, as ``settings_class``."""
        return self.settings_class(**settings)
