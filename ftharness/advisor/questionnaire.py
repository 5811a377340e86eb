"""The interactive questionnaire of `ftharness advise`: one question per scenario field.

Answers are read and checked by :func:`ftharness.typed.text_value` against the
:class:`~ftharness.advisor.scenario.Scenario` fields, as scenario files and flags are, so the range and
choice rules live in one place. A blank answer means "don't know": the advice states what it assumed
instead. The caller supplies ``ask`` and ``say`` (the CLI a terminal prompt, tests their answers), so
nothing here draws anything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ftharness.advisor.scenario import PROBLEMS, REFRESH, Scenario, validate_catalogue_names
from ftharness.errors import BadInput
from ftharness.typed import text_value

# (field, question)
QUESTIONS: tuple[tuple[str, str], ...] = (
    ("problems", f"What goes wrong with prompting today? ({', '.join(PROBLEMS)}; comma-separated)"),
    ("prompting_exhausted", "Have you pushed prompting hard (instructions, few-shot, retrieved examples)? (y/n)"),
    ("prompting_score", "Best prompting score on your evaluation set (0..1)"),
    ("target_score", "Score the task needs (0..1)"),
    ("labeled_examples", "How many high-quality labeled examples do you have?"),
    ("preference_pairs", "How many chosen/rejected preference pairs?"),
    ("domain_corpus_tokens", "Tokens of unlabeled in-domain text?"),
    ("knowledge_refresh", f"How often do the facts change? ({', '.join(REFRESH)})"),
    ("task_changes_often", "Does the task definition itself change often? (y/n)"),
    ("on_device", "Must the model run on the user's device? (y/n)"),
    ("latency_ms", "Latency budget per request in ms"),
    ("data_can_leave", "May the training data leave your organisation? (y/n)"),
    ("model", "Base model (planner preset name or path to a config.json)"),
    ("model_params_b", "No model named: its size in billions of parameters?"),
    ("gpu", "GPU (catalogue name, e.g. A100-80GB)"),
    ("gpu_count", "How many GPUs?"),
    ("budget_usd", "Training budget in US dollars"),
    ("requests_per_month", "Requests served per month"),
)


def parse_answer(name: str, text: str) -> Any:
    """One typed answer (``None`` for blank), checked like a scenario file's field."""
    if not text.strip():
        return None
    value = text_value(Scenario, name, text)
    if name in ("model", "gpu"):
        validate_catalogue_names(Scenario(**{name: value}))
    return value


def _skip(name: str, answers: dict[str, Any]) -> bool:
    if name == "model_params_b":
        return answers.get("model") is not None
    if name == "gpu_count":
        return answers.get("gpu") is None
    return False


def run_questionnaire(
    ask: Callable[[str], str],
    say: Callable[[str], None],
    *,
    tries: int = 3,
) -> dict[str, Any]:
    """Ask every question; return the answered fields as a scenario mapping.

    ``ask(question) -> answer`` puts a question to the person (the CLI's is a prompt on stderr, so stdout
    stays clean for ``--json``); ``say(message)`` reports a rejected answer before asking again, at most
    ``tries`` times per question.
    """
    answers: dict[str, Any] = {}
    for name, question in QUESTIONS:
        if _skip(name, answers):
            continue
        for attempt in range(tries):
            try:
                answer = ask(question)
            except EOFError:
                raise BadInput("the questionnaire ended early (end of input); pass --scenario FILE or "
                               "field flags instead") from None
            try:
                value = parse_answer(name, answer)
                break
            except BadInput as e:
                if attempt == tries - 1:
                    raise
                say(str(e))
        if value is not None:
            answers[name] = value
    return answers
