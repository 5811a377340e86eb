"""The options of one evaluation, declared once for both front ends: ``ftharness eval --NAME`` and the
pytest plugin's ``--ftharness-NAME``. What to evaluate (a model on data, or predictions made elsewhere) and
how; each option's help, type and default live here. Light on purpose: the pytest plugin reads it in every
pytest run of an environment with ftharness installed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EvalOption:
    """One option: ``name`` as the flag spells it after its dashes and prefix."""

    name: str
    help: str
    type: Callable[[str], Any] | None = None
    default: Any = None
    source: bool = False  # names what is evaluated (eval lists these in their own group)

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for argparse's ``add_argument`` and pytest's ``addoption`` alike."""
        text = self.help if self.default is None else f"{self.help} (default {self.default})"
        out: dict[str, Any] = {"help": text}
        if self.type is not None:
            out["type"] = self.type
        if self.default is not None:
            out["default"] = self.default
        return out


OPTIONS: tuple[EvalOption, ...] = (
    EvalOption("model", "model to evaluate: local folder, GGUF file, cached hub id, or 'embedded' (default)",
               source=True),
    EvalOption("adapter", "PEFT adapter folder to load on top of the model", source=True),
    EvalOption("base-model", "base model to measure forgetting against (default: the adapter's base)",
               source=True),
    EvalOption("data", "evaluation data for the model (JSONL/JSON: alpaca, prompt-completion or chat)",
               source=True),
    EvalOption("predictions", "JSONL of outputs made elsewhere, scored instead of a model: output, optional "
               "reference, input, slice fields", source=True),
    EvalOption("schema", "JSON Schema the outputs must follow (overrides the suite's)"),
    EvalOption("instruction", "task instruction, given to the model as the system turn"),
    EvalOption("limit", "evaluate only the first N records", type=int),
    EvalOption("max-new-tokens", "generation length limit", type=int, default=256),
)
