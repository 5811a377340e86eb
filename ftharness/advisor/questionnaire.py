"""The interactive questionnaire of `ftharness advise`: one question per scenario field.

Answers are checked with the same code as scenario files (:func:`ftharness.config.from_mapping` on the
:class:`~ftharness.advisor.scenario.Scenario` fields), so the range and choice rules live in one place.
A blank answer means "don't know": the advice states what it assumed instead. The caller supplies
``ask`` and ``say`` (the CLI a terminal prompt, tests their answers), so nothing here draws anything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ftharness.advisor.scenario import PROBLEMS, REFRESH, Scenario, validate_catalogue_names
from ftharness.config import from_mapping
from ftharness.errors import BadInput

# (field, question, kind); kind: list | bool | int | float | choice | str
QUESTIONS: tuple[tuple[str, str, str], ...] = (
    ("problems", f"What goes wrong with prompting today? ({', '.join(PROBLEMS)}; comma-separated)", "list"),
    ("prompting_exhausted", "Have you pushed prompting hard (instructions, few-shot, retrieved examples)? (y/n)",
     "bool"),
    ("prompting_score", "Best prompting score on your evaluation set (0..1)", "float"),
    ("target_score", "Score the task needs (0..1)", "float"),
    ("labeled_examples", "How many high-quality labeled examples do you have?", "int"),
    ("preference_pairs", "How many chosen/rejected preference pairs?", "int"),
    ("domain_corpus_tokens", "Tokens of unlabeled in-domain text?", "int"),
    ("knowledge_refresh", f"How often do the facts change? ({', '.join(REFRESH)})", "choice"),
    ("task_changes_often", "Does the task definition itself change often? (y/n)", "bool"),
    ("on_device", "Must the model run on the user's device? (y/n)", "bool"),
    ("latency_ms", "Latency budget per request in ms", "float"),
    ("data_can_leave", "May the training data leave your organisation? (y/n)", "bool"),
    ("model", "Base model (planner preset name or path to a config.json)", "str"),
    ("model_params_b", "No model named: its size in billions of parameters?", "float"),
    ("gpu", "GPU (catalogue name, e.g. A100-80GB)", "str"),
    ("gpu_count", "How many GPUs?", "int"),
    ("budget_usd", "Training budget in US dollars", "float"),
)

_YES = {"y", "yes", "true", "1"}
_NO = {"n", "no", "false", "0"}


def parse_answer(name: str, kind: str, text: str) -> Any:
    """One typed answer (``None`` for blank), checked like a scenario file's field."""
    text = text.strip()
    if not text:
        return None
    if kind == "list":
        value: Any = [p.strip().lower() for p in text.split(",") if p.strip()]
    elif kind == "bool":
        low = text.lower()
        if low not in _YES | _NO:
            raise BadInput(f"answer y or n, got {text!r}", field=name)
        value = low in _YES
    elif kind == "int":
        try:
            value = int(text.replace("_", "").replace(",", ""))
        except ValueError:
            raise BadInput(f"expected a whole number, got {text!r}", field=name) from None
    elif kind == "float":
        try:
            value = float(text)
        except ValueError:
            raise BadInput(f"expected a number, got {text!r}", field=name) from None
    else:
        value = text.lower() if kind == "choice" else text
    checked = from_mapping(Scenario, {name: value})
    if name in ("model", "gpu"):
        validate_catalogue_names(checked)
    return getattr(checked, name)


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
    for name, question, kind in QUESTIONS:
        if _skip(name, answers):
            continue
        for attempt in range(tries):
            try:
                answer = ask(question)
            except EOFError:
                raise BadInput("the questionnaire ended early (end of input); pass --scenario FILE or "
                               "field flags instead") from None
            try:
                value = parse_answer(name, kind, answer)
                break
            except BadInput as e:
                if attempt == tries - 1:
                    raise
                say(str(e))
        if value is not None:
            answers[name] = value
    return answers
