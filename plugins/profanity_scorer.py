"""The offline default toxicity scorer: ``alt-profanity-check``.

It ships a trained linear SVM over TF-IDF features (scikit-learn, calibrated to probabilities), so it
needs no download and scores thousands of texts a second on a CPU. It detects profanity and insults, not
subtler harms: a coarse screen, which is why results name the scorer they came from.
"""

from __future__ import annotations

import importlib.util
import warnings

from ftharness.hookspecs import hookimpl


class ProfanityScorer:
    name = "profanity"

    def unavailable_reason(self) -> str | None:
        if importlib.util.find_spec("profanity_check") is None:
            return "alt-profanity-check is not installed; pip install alt-profanity-check (or ftharness[eval])"
        return None

    def score(self, texts: list[str]) -> list[float]:
        if not texts:
            return []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the pickled model warns about scikit-learn versions
            from profanity_check import predict_prob

            return [float(p) for p in predict_prob(list(texts))]


@hookimpl
def register_toxicity_scorers(register) -> None:
    register(ProfanityScorer())
