"""What an engine is given to serve one option, and how an option names its engine.

An engine (:class:`ftharness.hookspecs.Engine`, a registered plugin) turns an :class:`EngineTarget` into a
served model (:class:`ftharness.hookspecs.Served`) that generates the option's answers. The experiment
builds the target and never asks which engine it is: the local transformers engine, a hosted endpoint and
a server the harness starts are one seam.

An option names its engine in ``engine:``: a name (``engine: local``) or a mapping with ``kind`` and the
engine's settings (``engine: {kind: server, launcher: vllm, tensor_parallel_size: 2}``). Without one it
takes the task's ``engine:``, else ``local``; a baseline of ``kind: endpoint`` is served by ``openai``
with its ``endpoint:`` block as the settings. :func:`engine_choice` reads that, once, at task load.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftharness.errors import BadInput

DEFAULT_ENGINE = "local"


@dataclass(frozen=True)
class EngineChoice:
    """The engine an option is served by, and its settings as the engine's ``check_settings`` typed them."""

    name: str
    settings: Any = None
    # as the task file wrote it (a name, or {kind, ...settings}); None for the default local engine. It joins
    # the option's spec, so an option served elsewhere is evaluated again
    written: str | dict[str, Any] | None = None


@dataclass
class EngineTarget:
    """One option's model, as :meth:`Engine.start <ftharness.hookspecs.Engine.start>` receives it.

    The loaders are called only by an engine that needs them, so an engine that never reads the weights
    never loads them.
    """

    option: str  # the option's name (what a started server's log is named after)
    settings: Any = None  # EngineChoice.settings
    # the model in this process (ftharness.models.loading.LoadedModel), as trained (its adapter attached);
    # None for a model that only a server holds (a hosted endpoint)
    load: Callable[[], Any] | None = None
    # a folder of weights a server process can load: the base model's, or the candidate's with its adapter
    # merged and saved; None as for ``load``
    folder: Callable[[], Path] | None = None
    artifact: Any | None = None  # the trained candidate (ftharness.training.run.Artifact); None: the base model
    # the base model's folder (what an engine serving base + adapter loads); called only when needed (a GGUF
    # base is converted the first time it is asked for)
    base_folder: Callable[[], Path] | None = None
    work_dir: Path | None = None  # where the engine may write (a started server's log)
    file: Path | None = None  # the task file, for errors
    field: str = "engine"  # the option's engine field, for errors


def engine_choice(written: str | dict[str, Any] | None, default: str | dict[str, Any] | None, *,
                  file: Path | None, field: str, plugins: Any) -> EngineChoice:
    """The engine ``written`` (an option's ``engine:``) or ``default`` (the task's) names, its settings
    checked by the engine. BadInput naming the field for an unknown engine or bad settings."""
    value = written if written is not None else default
    if value is None:
        value = DEFAULT_ENGINE
    if isinstance(value, str):
        name, settings = value, {}
    elif isinstance(value, dict):
        settings = dict(value)
        name = settings.pop("kind", None)
        if not isinstance(name, str) or not name:
            raise BadInput("an engine mapping needs `kind:` (the engine's name: local, server, ...)", file=file,
                           field=field)
    else:
        raise BadInput(f"engine: is a name or a mapping with kind:, not {type(value).__name__}", file=file,
                       field=field)
    engine = plugins.engine(name, file=file, field=field)
    check = getattr(engine, "check_settings", None)
    if callable(check):
        typed = check(settings, source=file, field=field)
    elif settings:
        raise BadInput(f"engine {name!r} takes no settings; drop {', '.join(sorted(settings))}", file=file,
                       field=field)
    else:
        typed = None
    written_as = {"kind": name, **settings} if settings else (name if name != DEFAULT_ENGINE else None)
    return EngineChoice(name, typed, written_as)
