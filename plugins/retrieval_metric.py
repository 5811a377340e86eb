"""The ``retrieval`` metric: did retrieval find the right documents, and does the answer stand on them?

It reads what a retrieving option's prompt held (``Sample.retrieved`` and ``Sample.context``); an option
that retrieves nothing gives it nothing to measure, so the ``rag`` suite does not run on such options
(``needs_retrieval``; the option's record says why).

- ``recall_at_k``: per row, the share of its gold documents (the data's ``doc_id`` or ``doc_ids``) that at
  least one retrieved chunk comes from (Manning et al. 2008, *Introduction to Information Retrieval*,
  section 8.3, recall at a cut-off of ``k``).
- ``mrr``: per row, 1 / the rank of the first chunk of a gold document, 0 when none was retrieved; the
  mean is the mean reciprocal rank (Voorhees 1999, "The TREC-8 Question Answering Track Report").
- ``reference_in_context``: per row, 1 when the reference answer (SQuAD-normalised: lower case, no
  punctuation or articles) occurs in the retrieved context: whether retrieval delivered the fact at all,
  which needs no gold ids.
- ``groundedness``: per row, the share of the answer's content words (word tokens, stopwords and
  one-character tokens dropped) that occur in the retrieved context. Lexical, like the overlap measures of
  answer attribution (Rashkin et al. 2023, "Measuring Attribution in Natural Language Generation Models"
  discuss what such measures miss): it cannot see a paraphrase, a negation, numbers put to the wrong use,
  or a fact copied from a retrieved chunk about another document; an answer with no content word is not
  scored.

Rows without gold ids are left out of recall and MRR (``details["missing"]`` says so when no row has them);
rows without a reference are left out of ``reference_in_context``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ftharness.data.knowledge import gold_ids
from ftharness.hookspecs import hookimpl
from ftharness.suites.metric import MetricContext, MetricResult
from ftharness.suites.settings import TypedMetric

VALUES = ["recall_at_k", "mrr", "reference_in_context", "groundedness"]
_WORD = re.compile(r"\w+", re.UNICODE)
NAN = math.nan


@dataclass
class RetrievalSettings:
    """The retrieval metric takes no settings: what it reads is fixed by the option's retrieval block."""


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def content_words(text: str) -> list[str]:
    stop = _stopwords()
    return [w for w in _WORD.findall(text.lower()) if len(w) > 1 and w not in stop]


def score_retrieval(samples: list[Any]) -> MetricResult:
    from ftharness_plugins.task_metrics import normalize_answer

    n = len(samples)
    per: dict[str, list[float]] = {k: [NAN] * n for k in VALUES}
    for i, s in enumerate(samples):
        hits = s.retrieved or []
        context = s.context or ""
        gold = gold_ids(s.meta)
        if gold:
            found = {h["doc_id"] for h in hits}
            per["recall_at_k"][i] = sum(1 for g in gold if g in found) / len(gold)
            ranks = [r for r, h in enumerate(hits, start=1) if h["doc_id"] in gold]
            per["mrr"][i] = 1.0 / ranks[0] if ranks else 0.0
        if s.reference is not None and normalize_answer(s.reference):
            per["reference_in_context"][i] = float(normalize_answer(s.reference) in normalize_answer(context))
        words = content_words(s.output)
        if words:
            have = set(_WORD.findall(context.lower()))
            per["groundedness"][i] = sum(1 for w in words if w in have) / len(words)
    values: dict[str, float | None] = {}
    missing: dict[str, str] = {}
    why = {"recall_at_k": "no row has doc_id or doc_ids (the gold documents)",
           "mrr": "no row has doc_id or doc_ids (the gold documents)",
           "reference_in_context": "no row has a reference answer",
           "groundedness": "no answer has a content word"}
    counts = {}
    for k in VALUES:
        scored = [v for v in per[k] if not math.isnan(v)]
        counts[k] = len(scored)
        if scored:
            values[k] = sum(scored) / len(scored)
        else:
            missing[k] = why[k]
    details: dict[str, Any] = {"n": n, "scored": counts, "k": max((len(s.retrieved or []) for s in samples), default=0)}
    if missing:
        details["missing"] = missing
    return MetricResult(values=values, per_sample=per, details=details)


class RetrievalMetric(TypedMetric):
    name = "retrieval"
    needs_model = False
    needs_retrieval = True
    settings_class = RetrievalSettings
    values = tuple(VALUES)

    def compute(self, ctx: MetricContext, settings: dict[str, Any]) -> MetricResult:
        return score_retrieval(ctx.samples)


@hookimpl
def register_metrics(register) -> None:
    register(RetrievalMetric())
