"""The plugin registry: what the plugins provide, in one table keyed by kind and name.

Plugins load in this order:

1. built-in: every module of the ``ftharness_plugins`` package (``plugins/`` in the repository);
2. third party: entry points of the group ``ftharness``. As in ``llm``, the environment variable
   ``FTHARNESS_LOAD_PLUGINS`` (comma-separated entry-point or distribution names) limits which load; an
   empty value loads none. Built-ins always load;
3. registered in code: :meth:`Plugins.add_plugin` (a program embedding ftharness, a test).

Their ``register_*`` hooks are then called through the plugin manager, as :mod:`ftharness.hookspecs`
describes, one plugin at a time (``pm.subset_hook_caller``), so that each registered object is recorded
with the plugin and the source it came from (:class:`Source`). An object enters the table only if it
follows its kind's Protocol (:data:`KINDS`) and its name is free, or it asked to override; otherwise it is
left out and its plugin is listed as broken with the reason. A plugin that fails to import or whose hook
raises is listed the same way: a broken plugin never takes the CLI down with it, and is never used.

The core asks the registry, never a name test, what a trainer can do: :meth:`Plugins.training_method`
returns a method's :class:`~ftharness.hookspecs.Method` declaration (or says which trainer trains
it), :meth:`Plugins.methods` is the list of method names every command accepts. Whether something can run
on this machine (:meth:`Plugins.unavailable_reason`, :func:`cuda_available`) is asked only when needed,
so loading the plugins imports no torch.
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
from ftharness.errors import BadInput
from ftharness.hookspecs import (
    Engine,
    Method,
    Metric,
    ReportSection,
    Retriever,
    ToxicityScorer,
    Tracker,
    Trainer,
)

ENTRY_POINT_GROUP = "ftharness"
BUILTIN_PACKAGE = "ftharness_plugins"
ALLOW_LIST_ENV = "FTHARNESS_LOAD_PLUGINS"

BUILT_IN = "built-in"
ENTRY_POINT = "entry point"
CODE = "code"


@dataclass(frozen=True)
class Kind:
    """One kind of thing plugins provide: the hook that registers it and the Protocol it must follow."""

    hook: str
    protocol: type
    noun: str


KINDS = {
    "trainers": Kind("register_trainers", Trainer, "trainer"),
    "metrics": Kind("register_metrics", Metric, "metric"),
    "toxicity_scorers": Kind("register_toxicity_scorers", ToxicityScorer, "toxicity scorer"),
    "report_sections": Kind("register_report_sections", ReportSection, "report section"),
    "retrievers": Kind("register_retrievers", Retriever, "retriever"),
    "engines": Kind("register_engines", Engine, "engine"),
    "trackers": Kind("register_trackers", Tracker, "tracker"),
}


@dataclass(frozen=True)
class Source:
    """Where a plugin came from: built in, an entry point of an installed distribution, or code."""

    origin: str  # BUILT_IN | ENTRY_POINT | CODE
    module: str  # the plugin's module
    entry_point: str | None = None
    distribution: str | None = None  # "NAME VERSION" of the distribution declaring the entry point

    def __str__(self) -> str:
        if self.origin == ENTRY_POINT:
            return f"entry point {self.entry_point!r} of {self.distribution} ({self.module})"
        if self.origin == CODE:
            return f"registered in code ({self.module})"
        return f"built-in ({self.module})"

    def to_dict(self) -> dict[str, Any]:
        return {"origin": self.origin, "module": self.module, "entry_point": self.entry_point,
                "distribution": self.distribution}


@dataclass
class Entry:
    """One registered object."""

    kind: str
    name: str
    obj: Any
    plugin: str  # the plugin that registered it
    source: Source
    replaced: Entry | None = None  # what an override replaced
    methods: dict[str, Method] = field(default_factory=dict)  # trainers: their declarations by name


@dataclass
class PluginInfo:
    """One loaded (or broken) plugin: where it came from, what it registered, what went wrong."""

    name: str
    source: Source
    provides: dict[str, list[str]] = field(default_factory=dict)  # kind -> names it registered
    errors: list[str] = field(default_factory=list)  # why it, or something it offered, is not used

    @property
    def broken(self) -> bool:
        return bool(self.errors)


class Plugins:
    """Loaded plugins and what they registered, by kind and name."""

    def __init__(self, *, builtins: bool = True, entry_points: bool = True) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        loaded = []
        if builtins:
            loaded += self._load_builtins()
        if entry_points:
            loaded += self._load_entry_points()
        for name in loaded:  # every plugin first, so that any plugin's hook wrappers see every call
            self._call_hooks(name)

    # loading -------------------------------------------------------------------------------------
    def _load_builtins(self) -> list[str]:
        try:
            package = importlib.import_module(BUILTIN_PACKAGE)
        except ImportError:  # running from a tree without the plugins package installed
            return []
        names = []
        for mod in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            if mod.name.startswith("_"):
                continue
            module = f"{BUILTIN_PACKAGE}.{mod.name}"
            info = self._register(mod.name, Source(BUILT_IN, module), lambda m=module: importlib.import_module(m))
            if not info.broken:
                names.append(info.name)
        return names

    def _load_entry_points(self) -> list[str]:
        allow = os.environ.get(ALLOW_LIST_ENV)
        allowed = None if allow is None else {a.strip() for a in allow.split(",") if a.strip()}
        names = []
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist else "?"
            if allowed is not None and ep.name not in allowed and dist not in allowed:
                continue
            distribution = f"{dist} {ep.dist.version}" if ep.dist else dist
            info = self._register(ep.name, Source(ENTRY_POINT, ep.module, ep.name, distribution), ep.load)
            if not info.broken:
                names.append(info.name)
        return names

    def add_plugin(self, plugin: Any, name: str | None = None) -> PluginInfo:
        """Register a plugin from code (a module or object with ``@hookimpl`` functions) and call its hooks.

        Returns its :class:`PluginInfo`: what it registered, and in ``errors`` whatever was refused.
        """
        module = getattr(plugin, "__name__", None) or type(plugin).__module__
        info = self._register(name or module, Source(CODE, module), lambda: plugin)
        if not info.broken:
            self._call_hooks(info.name)
        return info

    def _register(self, name: str, source: Source, load: Callable[[], Any]) -> PluginInfo:
        """Load a plugin and register it with the plugin manager; its hooks are called later."""
        if name in self.infos:  # a plugin name is taken: list both, load the first only
            key = f"{name} ({source})"
            info = self.infos[key] = PluginInfo(key, source, errors=[
                f"plugin name {name!r} is taken by {self.infos[name].source}; not loaded"])
            return info
        info = self.infos[name] = PluginInfo(name, source)
        try:
            self.pm.register(load(), name=name)
        except Exception as e:  # a broken plugin is reported, never fatal
            info.errors.append(f"failed to load: {type(e).__name__}: {e}")
        return info

    def _call_hooks(self, name: str) -> None:
        """Call each register hook of plugin ``name`` through the plugin manager, and keep what it offers."""
        plugin = self.pm.get_plugin(name)
        info = self.infos[name]
        for kind, spec in KINDS.items():
            impls = getattr(self.pm.hook, spec.hook).get_hookimpls()
            providers = [i for i in impls if not (i.hookwrapper or i.wrapper)]
            if not any(i.plugin is plugin for i in providers):
                continue
            others = [i.plugin for i in providers if i.plugin is not plugin]
            offered: list[tuple[Any, bool]] = []
            try:
                self.pm.subset_hook_caller(spec.hook, others)(register=_collector(offered))
            except Exception as e:
                info.errors.append(f"{spec.hook} failed: {type(e).__name__}: {e}")
                continue
            for obj, override in offered:
                self._add(kind, obj, info, override=override)

    def _add(self, kind: str, obj: Any, info: PluginInfo, *, override: bool) -> None:
        spec = KINDS[kind]
        name = getattr(obj, "name", None)
        label = f"{spec.noun} {name!r}" if isinstance(name, str) else f"{spec.noun} {type(obj).__name__}"
        problem = protocol_problem(obj, spec.protocol)
        methods: dict[str, Method] = {}
        if problem is None and kind == "trainers":
            problem, methods = _method_declarations(obj)
        if problem is not None:
            info.errors.append(f"{label} not registered: {problem}")
            return
        taken = self._entries[kind].get(name)
        if taken is not None and not override:
            info.errors.append(
                f"{label} from {info.source} refused: the name is taken by {taken.source}; "
                "register it with override=True to replace it"
            )
            return
        self._entries[kind][name] = Entry(kind, name, obj, info.name, info.source, replaced=taken,
                                          methods=methods)
        info.provides.setdefault(kind, []).append(name)

    # lookups -------------------------------------------------------------------------------------
    def get(self, kind: str) -> dict[str, Any]:
        """The registered objects of ``kind`` by name."""
        return {name: e.obj for name, e in self._entries[kind].items()}

    def entries(self, kind: str) -> dict[str, Entry]:
        return dict(self._entries[kind])

    def entry(self, kind: str, name: str, *, file: Any = None, field: str | None = None) -> Entry:
        """The registered ``kind`` named ``name``; BadInput listing the installed ones when there is none (as
        lm-evaluation-harness's registry does for an unknown task)."""
        entry = self._entries[kind].get(name)
        if entry is None:
            installed = ", ".join(sorted(self._entries[kind])) or "none"
            raise BadInput(f"unknown {KINDS[kind].noun} {name!r}; installed: {installed}", file=file, field=field)
        return entry

    def trainer(self, name: str, *, file: Any = None, field: str = "trainer") -> Entry:
        """The registered trainer ``name``; BadInput listing the installed ones when there is none."""
        return self.entry("trainers", name, file=file, field=field)

    def training_method(self, trainer: str, method: str, *, start_from: bool = False, file: Any = None,
                        field_prefix: str = "") -> Method:
        """What ``trainer`` declares about ``method``. BadInput when the trainer is unknown, when it does not
        train the method ("peft does not train dpo", naming what it trains and who trains the method), or
        when the candidate has a ``start_from`` and the method trains from the base model only."""
        entry = self.trainer(trainer, file=file, field=f"{field_prefix}trainer")
        declared = entry.methods.get(method)
        if declared is None:
            others = [t for t in self.methods().get(method, {}) if t != trainer]
            elsewhere = (f"{method} is trained by {', '.join(others)}" if others
                         else f"no installed trainer trains {method}")
            raise BadInput(f"{trainer} does not train {method} (it trains {', '.join(entry.methods)}); {elsewhere}",
                           file=file, field=f"{field_prefix}method")
        if start_from and not declared.continues:
            raise BadInput(f"{trainer} trains {method} from the base model only; drop start_from or choose another "
                           "trainer", file=file, field=f"{field_prefix}start_from")
        return declared

    def methods(self) -> dict[str, dict[str, Method]]:
        """Every method name the installed trainers declare, sorted, with each trainer's declaration."""
        out: dict[str, dict[str, Method]] = {}
        for trainer, entry in self._entries["trainers"].items():
            for name, declared in entry.methods.items():
                out.setdefault(name, {})[trainer] = declared
        return dict(sorted(out.items()))

    def check_method(self, method: str, *, file: Any = None, field: str = "method") -> None:
        """BadInput unless some installed trainer trains ``method``."""
        if method not in self.methods():
            raise BadInput(f"unknown method {method!r}; the installed trainers train: {', '.join(self.methods())}",
                           file=file, field=field)

    def trainer_for(self, method: str) -> str | None:
        """The trainer to name for ``method`` in advice: the first registered that trains it without CUDA,
        else the first that trains it; None when none does."""
        declared = self.methods().get(method, {})
        return next((t for t, m in declared.items() if not m.requires_cuda), next(iter(declared), None))

    def unavailable_reason(self, kind: str, name: str, method: str | None = None) -> str | None:
        """Why the registered ``name`` (for a trainer: training ``method``, or any of its methods when None)
        cannot run here; None when it can. Declared needs are checked first, then the object's own."""
        entry = self._entries[kind][name]
        reasons = []
        if kind == "trainers":
            wanted = [entry.methods[method]] if method is not None else list(entry.methods.values())
            if all(m.requires_cuda for m in wanted) and not cuda_available():
                reasons.append("needs an NVIDIA GPU with CUDA; this machine has none" + self._on_cpu(name, wanted))
        check = getattr(entry.obj, "unavailable_reason", None)
        if check is not None:
            try:
                own = check(method) if kind == "trainers" else check()
            except Exception as e:
                own = f"availability check failed: {type(e).__name__}: {e}"
            if own:
                reasons.append(own)
        return "; ".join(reasons) or None

    def _on_cpu(self, trainer: str, wanted: list[Method]) -> str:
        names = {m.name for m in wanted}
        for other, entry in self._entries["trainers"].items():
            if other != trainer and all(n in entry.methods and not entry.methods[n].requires_cuda for n in names):
                return f" (trainer {other} trains {', '.join(sorted(names))} without one)"
        return ""

    def retriever(self, name: str, *, file: Any = None, field: str = "retrieval.retriever") -> Any:
        """The registered retriever ``name``; BadInput listing the installed ones when there is none."""
        return self.entry("retrievers", name, file=file, field=field).obj

    def engine(self, name: str, *, file: Any = None, field: str = "engine") -> Any:
        """The registered engine ``name``; BadInput listing the installed ones when there is none."""
        return self.entry("engines", name, file=file, field=field).obj

    # listing -------------------------------------------------------------------------------------
    def describe(self) -> list[dict[str, Any]]:
        """What ``ftharness plugins`` shows: each plugin, built-ins first, with what it provides, what cannot
        run here and why, what it replaced or what replaced it, and its errors (asks every availability)."""
        out = []
        for info in sorted(self.infos.values(), key=lambda i: (i.source.origin != BUILT_IN, i.name)):
            unavailable: dict[str, str] = {}
            replaced: dict[str, str] = {}
            methods: dict[str, dict[str, Any]] = {}
            for kind, names in info.provides.items():
                for name in names:
                    entry = self._entries[kind][name]
                    if entry.plugin != info.name:
                        replaced[name] = f"replaced by {entry.source}"
                        continue
                    if entry.replaced is not None:
                        replaced[name] = f"replaces {entry.replaced.source}"
                    unavailable.update(self._unavailable(kind, entry))
                    if kind == "trainers":
                        methods[name] = {m: d.to_dict() for m, d in entry.methods.items()}
            out.append({
                "name": info.name,
                "source": info.source.to_dict(),
                "provides": info.provides,
                "methods": methods,
                "unavailable": unavailable,
                "replaced": replaced,
                "errors": list(info.errors),
            })
        return out

    def _unavailable(self, kind: str, entry: Entry) -> dict[str, str]:
        """``{name: why}`` when the whole object cannot run here, else ``{name/method: why}`` per method."""
        whole = self.unavailable_reason(kind, entry.name)
        if whole or kind != "trainers":
            return {entry.name: whole} if whole else {}
        per_method = {m: self.unavailable_reason(kind, entry.name, m) for m in entry.methods}
        return {f"{entry.name}/{m}": why for m, why in per_method.items() if why}


def cuda_available() -> bool:
    """True when torch is installed and sees an NVIDIA GPU (imports torch: call it only when needed). What the
    registry checks a method's ``requires_cuda`` against."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def _collector(offered: list[tuple[Any, bool]]) -> hookspecs.Register[Any]:
    """The ``register`` argument of one hook call: it collects, and the registry checks after the call."""

    def register(obj: Any, *, override: bool = False) -> None:
        offered.append((obj, override))

    return register


def protocol_problem(obj: Any, protocol: type) -> str | None:
    """None when ``obj`` follows ``protocol`` (a runtime-checkable Protocol), else what it lacks."""
    name = getattr(obj, "name", None)
    if isinstance(obj, protocol) and isinstance(name, str) and name:
        methods = [m for m in _members(protocol) if callable(getattr(protocol, m, None))]
        not_callable = [m for m in methods if not callable(getattr(obj, m))]
        if not not_callable:
            return None
        return f"does not follow {protocol.__module__}.{protocol.__qualname__}: not callable: {', '.join(not_callable)}"
    missing = [m for m in _members(protocol) if not hasattr(obj, m)]
    if missing:
        return f"does not follow {protocol.__module__}.{protocol.__qualname__}: missing {', '.join(missing)}"
    return "its name must be a non-empty string"


def _members(protocol: type) -> list[str]:
    """The attributes and methods a Protocol declares (its own and its Protocol bases')."""
    names: set[str] = set()
    for base in protocol.__mro__:
        if base is object or base.__module__ == "typing":
            continue
        names |= set(getattr(base, "__annotations__", {}))
        names |= {k for k, v in vars(base).items() if callable(v) and not k.startswith("_")}
    return sorted(names)


def _method_declarations(trainer: Any) -> tuple[str | None, dict[str, Method]]:
    """(problem, {name: Method}) for a trainer's ``methods``."""
    declared = trainer.methods
    if not isinstance(declared, tuple | list) or not declared:
        return ("`methods` must be a non-empty tuple of ftharness.hookspecs.Method declarations, "
                f"got {declared!r}"), {}
    out: dict[str, Method] = {}
    for m in declared:
        if not isinstance(m, Method):
            return f"`methods` must hold ftharness.hookspecs.Method declarations, got {m!r}", {}
        if m.name in out:
            return f"`methods` declares {m.name!r} twice", {}
        out[m.name] = m
    return None, out


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


def retrievers() -> dict[str, Any]:
    return get_plugins().get("retrievers")


def engines() -> dict[str, Any]:
    return get_plugins().get("engines")
