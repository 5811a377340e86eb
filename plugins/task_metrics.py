"""The ``task`` metric: outputs against reference answers.

- ``exact_match`` and ``token_f1``: SQuAD answer normalisation (lower case, punctuation and the articles
  a/an/the removed, whitespace collapsed) and bag-of-tokens F1, as in the SQuAD evaluation script
  (Rajpurkar et al., 2016, "SQuAD: 100,000+ Questions for Machine Comprehension of Text").
- ``rouge_l``: ROUGE-L F-measure (Lin, 2004) from ``rouge-score``, with a Unicode-aware word tokenizer
  (its default drops every non-ASCII letter).
- ``bleu`` and ``chrf``: corpus BLEU (Papineni et al., 2002) and chrF (Popovic, 2015) from ``sacrebleu``
  (Post, 2018), on sacrebleu's 0-100 scale; per-sample scores are sentence-level (BLEU with effective
  order).
- ``field_accuracy``: for references that are JSON objects, the share of their fields (nested objects
  flattened to dotted paths) the output's JSON gets exactly right; ``json_match``: the whole object is
  right. ``details["fields"]`` ranks fields by how often they are wrong.

Samples without a reference are left out (NaN per sample) and counted in details.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ftharness.hookspecs import hookimpl
from ftharness.suites.json_extract import parse_lenient, parse_strict
from ftharness.suites.metric import MetricContext, MetricResult
from ftharness.suites.settings import TypedMetric
from ftharness.typed import spec

TEXT_VALUES = ["exact_match", "token_f1", "rouge_l", "bleu", "chrf"]
JSON_VALUES = ["field_accuracy", "json_match"]
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)
_WORD = re.compile(r"\w+", re.UNICODE)
NAN = math.nan


@dataclass
class TaskSettings:
    normalize_fields: bool = False  # compare JSON string fields after SQuAD normalisation
    top_fields: int = spec(10, ge=0, help="fields listed by accuracy")


def normalize_answer(text: str) -> str:
    """SQuAD v1.1 normalisation: lower, drop punctuation, drop articles, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


class _WordTokenizer:
    """rouge-score's tokenizer interface: lower-cased Unicode words."""

    def tokenize(self, text: str) -> list[str]:
        return _WORD.findall(text.lower())


class TaskMetric(TypedMetric):
    name = "task"
    needs_model = False
    settings_class = TaskSettings
    values = (*TEXT_VALUES, *JSON_VALUES)

    def compute(self, ctx: MetricContext, settings: dict[str, Any]) -> MetricResult:
        s = self.typed(settings)
        return score_task([x.output for x in ctx.samples], [x.reference for x in ctx.samples], s)


def score_task(outputs: list[str], references: list[str | None], settings: TaskSettings | None = None) -> MetricResult:
    import sacrebleu
    from rouge_score import rouge_scorer

    s = settings or TaskSettings()
    n = len(outputs)
    have = [i for i, r in enumerate(references) if r is not None]
    per = {k: [NAN] * n for k in TEXT_VALUES + JSON_VALUES}
    values: dict[str, float] = {}
    missing: dict[str, str] = {}
    details: dict[str, Any] = {"n": n, "with_reference": len(have), "scale": {"bleu": "0-100", "chrf": "0-100"}}
    if not have:
        why = "no evaluated record has a reference answer"
        return MetricResult(values={}, per_sample=per, details={**details, "missing": dict.fromkeys(TEXT_VALUES + JSON_VALUES, why)})

    rouge = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_WordTokenizer())
    for i in have:
        out, ref = outputs[i], references[i] or ""
        per["exact_match"][i] = exact_match(out, ref)
        per["token_f1"][i] = token_f1(out, ref)
        per["rouge_l"][i] = rouge.score(ref, out)["rougeL"].fmeasure
        per["bleu"][i] = sacrebleu.sentence_bleu(out, [ref]).score
        per["chrf"][i] = sacrebleu.sentence_chrf(out, [ref]).score
    for k in ("exact_match", "token_f1", "rouge_l"):
        values[k] = sum(per[k][i] for i in have) / len(have)
    hyps, refs = [outputs[i] for i in have], [references[i] or "" for i in have]
    values["bleu"] = sacrebleu.corpus_bleu(hyps, [refs]).score
    values["chrf"] = sacrebleu.corpus_chrf(hyps, [refs]).score

    right: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    json_rows = 0
    for i in have:
        ref_doc = parse_strict(references[i] or "")
        if not (ref_doc.ok and isinstance(ref_doc.value, dict)):
            continue
        json_rows += 1
        expected = flatten(ref_doc.value)
        got_doc = parse_lenient(outputs[i])
        got = flatten(got_doc.value) if got_doc.ok and isinstance(got_doc.value, dict) else {}
        ok = {k: k in got and same_value(got[k], v, s.normalize_fields) for k, v in expected.items()}
        for k, good in ok.items():
            seen[k] += 1
            right[k] += good
        per["field_accuracy"][i] = sum(ok.values()) / len(ok) if ok else 1.0
        per["json_match"][i] = float(all(ok.values()) and set(got) == set(expected))
    if json_rows:
        values["field_accuracy"] = sum(right.values()) / sum(seen.values()) if seen else 1.0
        values["json_match"] = sum(per["json_match"][i] for i in have if not math.isnan(per["json_match"][i])) / json_rows
        ranked = sorted(seen, key=lambda k: (right[k] / seen[k], k))
        details["fields"] = [
            {"field": k, "accuracy": right[k] / seen[k], "wrong": seen[k] - right[k], "n": seen[k]}
            for k in ranked[: s.top_fields]
        ]
    else:
        for k in JSON_VALUES:
            missing[k] = "no reference answer is a JSON object"
    details["json_references"] = json_rows
    if missing:
        details["missing"] = missing
    return MetricResult(values=values, per_sample=per, details=details)


def flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested objects become dotted paths; lists and scalars are compared whole."""
    out: dict[str, Any] = {}
    for k, v in doc.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def same_value(got: Any, expected: Any, normalize: bool = False) -> bool:
    """JSON equality that keeps types apart (``true`` is not ``1``) but lets ``1`` equal ``1.0``."""
    if isinstance(got, bool) or isinstance(expected, bool):
        return type(got) is type(expected) and got == expected
    if isinstance(got, int | float) and isinstance(expected, int | float):
        return float(got) == float(expected)
    if isinstance(got, str) and isinstance(expected, str):
        return normalize_answer(got) == normalize_answer(expected) if normalize else got == expected
    if isinstance(got, list) and isinstance(expected, list):
        return len(got) == len(expected) and all(same_value(a, b, normalize) for a, b in zip(got, expected, strict=True))
    if isinstance(got, dict) and isinstance(expected, dict):
        return got.keys() == expected.keys() and all(same_value(got[k], expected[k], normalize) for k in got)
    return type(got) is type(expected) and got == expected


@hookimpl
def register_metrics(register) -> None:
    register(TaskMetric())
