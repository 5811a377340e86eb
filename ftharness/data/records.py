"""The one in-memory form every data format is loaded into."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Example:
    """One example, whatever file format it came from.

    ``messages`` is the prompt as chat turns (``{"role", "content"}``), without the answer:
    Alpaca rows become one user turn (instruction, blank line, input), prompt/completion rows one user
    turn, chat rows all turns before the last assistant turn. A task-level instruction is *not* in
    here: the prompt builder (ftharness.baselines) adds it, identically for baselines and candidates.
    """

    messages: list[dict[str, str]]
    completion: str | None = None  # the reference answer / SFT target
    chosen: str | None = None  # preference pairs
    rejected: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # the record's other fields, for slices
    file: str = ""
    line: int = 0
    # Retrieved chunks shown before the input (ftharness.retrieval.augment); the prompt builder
    # (ftharness.baselines) renders them into the last user turn, identically at training and serving time.
    context: str | None = None

    @property
    def input_text(self) -> str:
        """The last user turn: what similarity search and slicing look at."""
        for m in reversed(self.messages):
            if m.get("role") == "user":
                return m.get("content", "")
        return self.messages[-1]["content"] if self.messages else ""


@dataclass
class Dataset:
    examples: list[Example]
    format: str  # "alpaca" | "prompt-completion" | "chat" | "preference"
    file: str = ""
    sha256: str = ""

    def __len__(self) -> int:
        return len(self.examples)
