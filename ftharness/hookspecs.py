"""The pluggy contract between the ftharness core and its plugins.

A plugin is a module (or any object) with ``@hookimpl`` functions named as the hooks below. Built-in
plugins live in ``plugins/`` (the ``ftharness_plugins`` package); third-party plugins declare an entry
point in the group ``ftharness``::

    [project.entry-points.ftharness]
    my_trainer = "my_package.my_module"

How the hooks are called (:mod:`ftharness.plugins`): the first time the process asks for its plugins
(:func:`ftharness.plugins.get_plugins`), every plugin is loaded (built-ins, then entry points), then each
``register_*`` hook is called through the plugin manager once per plugin that implements it, in that
loading order; a plugin added in code later has its hooks called when it is added. No hook is
``firstresult``: every implementation runs, and its return value is ignored. Hook wrappers
(``@hookimpl(wrapper=True)``) of any plugin wrap each of those calls.

Each hook receives one argument, ``register`` (a :class:`Register`); the plugin calls it once per object it
provides, as ``llm``'s ``register_models`` does. Before an object enters the registry it is checked:

- it must follow the hook's Protocol (``isinstance`` against the runtime-checkable Protocol; for trainers,
  ``methods`` must hold :class:`~ftharness.training.trainer.Method` declarations);
- its ``name`` must be free in its kind: a name another plugin registered first is refused, naming both
  plugins' sources, unless ``register(obj, override=True)`` asks to replace it (``ftharness plugins`` then
  shows what was replaced).

An object that fails a check is not registered, and ``ftharness plugins`` lists its plugin as broken with
the reason. A hook that raises registers nothing from that call, and its plugin is listed as broken too.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

import pluggy

from ftharness.report.sections import ReportSection
from ftharness.suites.metric import Metric
from ftharness.suites.toxicity import ToxicityScorer
from ftharness.training.trainer import Trainer

PROJECT = "ftharness"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

T_contra = TypeVar("T_contra", contravariant=True)


class Register(Protocol[T_contra]):
    """The ``register`` argument of every hook."""

    def __call__(self, obj: T_contra, *, override: bool = False) -> None:
        """Offer ``obj`` to the registry under ``obj.name``. ``override=True``: replace an object of the same
        kind and name that another plugin registered earlier (refused otherwise)."""


@hookspec
def register_trainers(register: Register[Trainer]) -> None:
    """Register trainers: objects following :class:`ftharness.training.trainer.Trainer`.

    :param register: call ``register(trainer)`` once per trainer. ``trainer.name`` is what a candidate's
        ``trainer:`` names; ``trainer.methods`` declares each method it trains and the facts the core acts
        on (data kind, CUDA, merging: :class:`ftharness.training.trainer.Method`).

    Called once per plugin when plugins load; not firstresult; the return value is ignored.
    """


@hookspec
def register_metrics(register: Register[Metric]) -> None:
    """Register metrics: objects following :class:`ftharness.suites.metric.Metric`.

    :param register: call ``register(metric)`` once per metric. ``metric.name`` is what suites write under
        ``metrics:`` and the prefix of the values gates read (``format.parse_rate``).

    Called once per plugin when plugins load; not firstresult; the return value is ignored.
    """


@hookspec
def register_toxicity_scorers(register: Register[ToxicityScorer]) -> None:
    """Register toxicity scorers: objects following :class:`ftharness.suites.toxicity.ToxicityScorer`.

    :param register: call ``register(scorer)`` once per scorer. ``scorer.name`` is what the toxicity
        metric's ``scorer:`` setting names.

    Called once per plugin when plugins load; not firstresult; the return value is ignored.
    """


@hookspec
def register_report_sections(register: Register[ReportSection]) -> None:
    """Register extra sections of ``report.html``: objects following
    :class:`ftharness.report.sections.ReportSection`.

    :param register: call ``register(section)`` once per section; each registered section is rendered into
        ``report.html`` from the run's results.

    Called once per plugin when plugins load; not firstresult; the return value is ignored.
    """
