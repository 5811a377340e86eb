"""The facts of a scenario that `ftharness advise` decides from.

The field names are a public contract: scenario files, CLI flags and the questionnaire all use
them. Every field may be missing: a missing field is ``None`` here, and the advice states what it assumed
instead. Files, flags and answers go through :mod:`ftharness.typed` with the ranges and help declared here,
so unknown fields, wrong types and out-of-range numbers are one clear line naming the field (or flag).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from ftharness.errors import BadInput
from ftharness.typed import from_mapping, load_mapping, resolve_path, spec

Problem = Literal["format", "style", "behavior", "knowledge", "domain", "cost", "latency", "safety", "preference"]
Refresh = Literal["static", "yearly", "quarterly", "monthly", "weekly", "daily", "realtime"]

PROBLEMS: tuple[str, ...] = get_args(Problem)
REFRESH: tuple[str, ...] = get_args(Refresh)


def _f(help: str, **checks: Any) -> Any:
    return spec(None, help=help, **checks)


@dataclass
class Scenario:
    """One team's situation. ``None`` means "not said"; the advice names what it assumed instead."""

    problems: list[Problem] | None = _f("what is wrong with prompting today: " + ", ".join(get_args(Problem)))
    prompting_exhausted: bool | None = _f("prompting (instructions, few-shot, retrieval of examples) was tried hard")
    prompting_score: float | None = _f("best prompting score on your evaluation set, 0..1", ge=0, le=1)
    target_score: float | None = _f("score the task needs, 0..1", ge=0, le=1)
    labeled_examples: int | None = _f("high-quality input/output examples on hand", ge=0)
    preference_pairs: int | None = _f("chosen/rejected response pairs on hand", ge=0)
    domain_corpus_tokens: int | None = _f("tokens of unlabeled in-domain text", ge=0)
    knowledge_refresh: Refresh | None = _f("how often the facts the answers need change")
    task_changes_often: bool | None = _f("the task definition itself changes often")
    on_device: bool | None = _f("the model must run on the user's device")
    latency_ms: float | None = _f("latency budget per request in milliseconds", ge=0)
    data_can_leave: bool | None = _f("training data may be sent to a third party")
    model: str | None = _f("planner preset name or path to a Hugging Face config.json")
    model_params_b: float | None = _f("model size in billions of parameters, when no model is named", ge=0)
    gpu: str | None = _f("GPU catalogue name (see `ftharness plan`)")
    gpu_count: int | None = _f("number of GPUs", ge=1)
    budget_usd: float | None = _f("training budget in US dollars", ge=0)
    requests_per_month: int | None = _f(
        "requests served per month: prices each measured option (with --from-run; default: the task's)", ge=1
    )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def given(self) -> dict[str, Any]:
        """The fields that were said (not ``None``)."""
        return {k: v for k, v in self.to_dict().items() if v is not None}


def scenario_from_mapping(data: dict[str, Any], *, source: str | Path | None = None) -> Scenario:
    """Check and build a scenario; a ``model`` that names a ``.json`` file is resolved against the
    scenario file's folder (as every path written in a file is)."""
    scenario = from_mapping(Scenario, data, source=source)
    if scenario.problems is not None:
        scenario.problems = list(dict.fromkeys(scenario.problems))  # duplicates mean nothing more
    if source is not None and scenario.model and scenario.model.lower().endswith(".json"):
        resolved = resolve_path(scenario.model, source)
        if resolved is not None and resolved.exists():
            scenario.model = str(resolved)
    validate_catalogue_names(scenario, source=source)
    return scenario


def load_scenario(path: str | Path) -> Scenario:
    """Read a YAML or JSON scenario file (field names as :class:`Scenario`'s)."""
    return scenario_from_mapping(load_mapping(path), source=path)


def validate_catalogue_names(scenario: Scenario, *, source: str | Path | None = None) -> None:
    """Unknown and ambiguous models and GPUs are bad input: checked against the planner's catalogue, whose
    names then replace the ones given (``RTX 4090`` becomes ``rtx-4090``), so the advice names its entries."""
    if scenario.model is None and scenario.gpu is None:
        return
    from ftharness.advisor import planning

    try:
        if scenario.model is not None:
            scenario.model = planning.check_model(scenario.model)
        if scenario.gpu is not None:
            scenario.gpu = planning.check_gpu(scenario.gpu)
    except BadInput as e:
        if source is None:
            raise
        raise BadInput(e.reason, file=source, field=e.field) from None
