"""The toxicity scorer protocol: what a plugin registers through ``register_toxicity_scorers``."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class ToxicityScorer(Protocol):
    """Optional: ``configure(settings: dict) -> ToxicityScorer`` returns a scorer using the suite's
    settings for it (e.g. a local ``checkpoint`` path); the toxicity metric calls it when present."""

    name: str

    def unavailable_reason(self) -> str | None:
        """None when it can score on this machine; else why not and what to do."""

    def score(self, texts: list[str]) -> list[float]:
        """A probability of toxicity in [0, 1] for each text."""
