"""The plugin manager: built-in plugins from ``ftharness_plugins``, third-party ones by entry point.

As in ``llm``, the environment variable ``FTHARNESS_LOAD_PLUGINS`` (comma-separated entry-point or
distribution names) limits which third-party plugins load; set it to an empty string to load none.
Built-in plugins always load. A plugin that fails to import or to register is recorded as broken and
skipped: it never takes the CLI down with it.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata
from typing import Any

import pluggy

from ftharness import hookspecs

ENTRY_POINT_GROUP = "ftharness"
BUILTIN_PACKAGE = "ftharness_plugins"
ALLOW_LIST_ENV = "FTHARNESS_LOAD_PLUGINS"
KINDS = {
    "trainers": "register_trainers",
    "metrics": "register_metrics",
    "toxicity_scorers": "register_toxicity_scorers",
    "report_sections": "register_report_sections",
}


@dataclass
class PluginInfo:
    """What ``ftharness plugins`` shows for one plugin."""

    name: str
    source: str  # "built-in" or "DIST VERSION"
    provides: dict[str, list[str]] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)  # provided name -> why it cannot run here
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "provides": self.provides,
            "unavailable": self.unavailable,
            "error": self.error,
        }


class Plugins:
    """Loaded plugins and what they registered, by kind and name."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("ftharness")
        self.pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self._registry: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
        self._load_builtins()
        self._load_entry_points()
        self._collect()

    # loading -------------------------------------------------------------------------------------
    def _load_builtins(self) -> None:
        try:
            package = importlib.import_module(BUILTIN_PACKAGE)
        except ImportError:  # running from a tree without the plugins package installed
            return
        for mod in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            if mod.name.startswith("_"):
                continue
            self._register(mod.name, "built-in", lambda n=mod.name: importlib.import_module(f"{BUILTIN_PACKAGE}.{n}"))

    def _load_entry_points(self) -> None:
        allow = os.environ.get(ALLOW_LIST_ENV)
        allowed = None if allow is None else {a.strip() for a in allow.split(",") if a.strip()}
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist else "?"
            if allowed is not None and ep.name not in allowed and dist not in allowed:
                continue
            version = ep.dist.version if ep.dist else ""
            self._register(ep.name, f"{dist} {version}".strip(), ep.load)

    def _register(self, name: str, source: str, load: Callable[[], Any]) -> None:
        info = PluginInfo(name=name, source=source)
        self.infos[name] = info
        try:
            self.pm.register(load(), name=name)
        except Exception as e:  # a broken plugin is reported, never fatal
            info.error = f"failed to load: {type(e).__name__}: {e}"

    def _collect(self) -> None:
        for kind, hook_name in KINDS.items():
            hook = getattr(self.pm.hook, hook_name)
            for impl in hook.get_hookimpls():
                info = self.infos.setdefault(impl.plugin_name, PluginInfo(impl.plugin_name, "registered"))
                found: list[Any] = []
                try:
                    impl.function(register=found.append)
                except Exception as e:
                    info.error = f"{hook_name} failed: {type(e).__name__}: {e}"
                    continue
                for obj in found:
                    name = getattr(obj, "name", None) or type(obj).__name__
                    self._registry[kind][name] = obj
                    info.provides.setdefault(kind, []).append(name)
                    reason = _unavailable_reason(obj)
                    if reason:
                        info.unavailable[name] = reason

    # lookups -------------------------------------------------------------------------------------
    def get(self, kind: str) -> dict[str, Any]:
        return dict(self._registry[kind])


def _unavailable_reason(obj: Any) -> str | None:
    check = getattr(obj, "unavailable_reason", None)
    if check is None:
        return None
    try:
        return check()
    except Exception as e:
        return f"availability check failed: {type(e).__name__}: {e}"


@lru_cache(maxsize=1)
def get_plugins() -> Plugins:
    """The process-wide plugin set, loaded once."""
    return Plugins()


def reset_plugins() -> None:
    """Forget loaded plugins (tests that install a plugin call this)."""
    get_plugins.cache_clear()


def trainers() -> dict[str, Any]:
    return get_plugins().get("trainers")


def metrics() -> dict[str, Any]:
    return get_plugins().get("metrics")


def toxicity_scorers() -> dict[str, Any]:
    return get_plugins().get("toxicity_scorers")


def report_sections() -> dict[str, Any]:
    return get_plugins().get("report_sections")
