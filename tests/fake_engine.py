"""A fake engine for tests: a real :class:`ftharness.hookspecs.Engine`, registered through the registry,
whose model is a rule.

The fake backends of the compare tests load fake models (``base_model``, ``load_trained``) and hold the
rule that answers (their ``generate(lm, prompts, constrained)`` method). :func:`use_rule_engine` registers
an engine under the built-in's name (``override=True``) that renders each conversation with ``render`` and
asks the live fake backend (``backend_cls.live``, set when the experiment builds it) for the answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ftharness.hookspecs import hookimpl


def contents(messages: list[dict[str, str]]) -> str:
    """A conversation as its turns' texts, one a line."""
    return "\n".join(m["content"] for m in messages)


class RuleServed:
    weights_reason = None

    def __init__(self, engine: RuleEngine, target: Any) -> None:
        self.engine, self.target = engine, target
        self.weights = target.load() if target.load is not None else None

    def generate(self, conversations: list[list[dict[str, str]]], settings: Any) -> list[Any]:
        constrained = "json-schema" if settings.json_schema is not None else None
        return self.engine.rule(self.weights, [self.engine.render(m) for m in conversations], constrained)

    def record(self) -> dict[str, Any]:
        return {"served": "as trained" if self.target.artifact is not None else "base model",
                "schema": "not enforced: a rule", "weights": "a fake model"}

    def close(self) -> None:
        self.weights = None


class RuleEngine:
    """``rule(model, prompts, constrained)`` answers rendered prompts for the model ``target.load()`` gave."""

    def __init__(self, name: str, rule: Callable[[Any, list[str], str | None], list[Any]],
                 render: Callable[[list[dict[str, str]]], str] = contents) -> None:
        self.name, self.rule, self.render = name, rule, render

    def unavailable_reason(self) -> str | None:
        return None

    def start(self, target: Any) -> RuleServed:
        return RuleServed(self, target)


def register_engine(engine: Any, *, override: bool = True) -> Any:
    """Add ``engine`` to the process's plugins (the built-ins a test's ``builtin_plugins`` left)."""
    import ftharness.plugins as plugins

    class Plugin:
        @hookimpl
        def register_engines(self, register: Any) -> None:
            register(engine, override=override)

    info = plugins.get_plugins().add_plugin(Plugin(), name=f"test-engine-{engine.name}")
    assert not info.errors, info.errors
    return engine


def use_rule_engine(backend_cls: type, render: Callable[[list[dict[str, str]]], str] = contents) -> RuleEngine:
    """The ``local`` engine replaced by one that asks the live fake backend's ``generate``."""
    return register_engine(RuleEngine("local", lambda lm, prompts, c: backend_cls.live.generate(lm, prompts, c),
                                      render))
