"""The ``forgetting`` metric: how much general ability a candidate lost against its base model.

- Perplexity and bits per byte on one part of a general-text reference (``ftharness.data.general``: by
  default the bundled prose of the Python documentation, PSF licence; its ``test`` part, about 23k tokens
  of the embedded model, unless ``part: selection`` asks for the part sweeps choose on), by rolling
  log-likelihood without a chat template (see ``ftharness.suites.loglik``). ``ppl_delta_pct`` and
  ``bpb_delta_pct`` are the candidate's relative change against the base, in percent: positive means the
  candidate models general text worse. Bits per byte is comparable across tokenizers; perplexity only
  between models sharing one. Each comes with a paired percentile bootstrap interval over documents
  (``ftharness.suites.bootstrap.paired_ratio_ci``), which a gate on it reads: passed when the whole
  interval meets the threshold, failed when none of it does, inconclusive otherwise.
- Accuracy on a small general-knowledge multiple-choice set the project wrote
  (``general_qa.jsonl``), each choice scored by its log-likelihood after ``Question: ...\\nAnswer:``
  (``qa_accuracy``: highest sum; ``qa_accuracy_norm``: highest per UTF-8 byte of the choice, as
  lm-evaluation-harness's ``acc_norm``). Base and candidate see identical text.
  ``qa_accuracy_delta`` is candidate minus base, in accuracy points (0-1 scale), with a paired bootstrap
  interval over questions. The QA set has no selection part: a ``part: selection`` run skips it.

Base-model figures are computed once per process for a given model and settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ftharness.data.general import documents
from ftharness.errors import BadInput
from ftharness.hookspecs import hookimpl
from ftharness.paths import package_data
from ftharness.suites.bootstrap import RESAMPLES, bootstrap_ci, paired_ratio_ci, ratio_change_pct
from ftharness.suites.metric import MetricContext, MetricResult
from ftharness.suites.settings import TypedMetric, resolve_setting_path, settings_dict
from ftharness.typed import spec

OWN = ["ppl", "bpb", "qa_accuracy", "qa_accuracy_norm"]
QA = ("qa_accuracy", "qa_accuracy_norm", "base_qa_accuracy", "qa_accuracy_delta")
NO_QA = "the QA set has no selection part: it is scored on the eval run only"
VERSUS = ["base_ppl", "base_bpb", "base_qa_accuracy", "ppl_delta_pct", "bpb_delta_pct", "qa_accuracy_delta"]
NO_BASE = "no base model to compare with; evaluate an adapter (its base is --model) or give --base-model"
_BASE_CACHE: dict[str, dict[str, Any]] = {}


@dataclass
class ForgettingSettings:
    reference: str | None = spec(None, help="general text: JSONL (text, id?, part?) or a text file, documents "
                                            "separated by blank lines; null: the bundled reference")
    part: Literal["test", "selection"] = spec(
        "test", help="the reference's part scored: test (the gate on the eval run) or selection (what a sweep "
                     "chooses on; the QA set is skipped)")
    qa: str | None = None  # JSONL: question, choices (list), answer (index)
    # 1024 / 512: the bundled reference's documents (up to ~1,400 tokens) then mostly fit one window, so
    # 4 % more tokens run through the model than are scored, where 512 / 256 ran 32 % more
    window: int = spec(1024, ge=2, help="tokens per perplexity window")
    stride: int = spec(512, ge=1, help="tokens between window starts (less than window)")
    token_budget: int = spec(2048, ge=2, help="padded tokens per scoring batch (at least window)")
    qa_limit: int | None = spec(None, ge=1, help="QA questions asked; null: all")
    confidence: float = spec(0.95, gt=0.5, lt=1, help="coverage of the bootstrap intervals")
    bootstrap_samples: int = spec(RESAMPLES, ge=100, help="bootstrap resamples per interval")


def load_reference(path: str | None, part: str = "test") -> list[str]:
    return documents(path, part, field="metrics.forgetting.reference")


def load_qa(path: str | None) -> list[dict[str, Any]]:
    file = Path(path) if path else package_data("suites", "data", "general_qa.jsonl")
    if not file.is_file():
        raise BadInput("QA set not found", file=file, field="metrics.forgetting.qa")
    from ftharness.data.loading import read_records

    items = []
    for i, r in read_records(file):
        choices = r.get("choices")
        if not (isinstance(r.get("question"), str) and isinstance(choices, list)
                and len(choices) >= 2 and all(isinstance(c, str) and c for c in choices)):
            raise BadInput("needs 'question' (text) and 'choices' (two or more texts)", file=file, line=i)
        answer = r.get("answer")
        if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(choices):
            raise BadInput("'answer' must be the index of the right choice", file=file, line=i, field="answer")
        items.append(r)
    if not items:
        raise BadInput("the QA set is empty", file=file)
    return items


def fitted_window(lm: Any, s: ForgettingSettings) -> tuple[int, int]:
    """The window and stride scored with: the settings', the window cut to the positions the model allows
    (and the stride to half of it) where the model allows fewer."""
    from ftharness.training.sequences import max_positions

    limit = max_positions(getattr(getattr(lm, "model", None), "config", None))
    if limit is None or limit >= s.window:
        return s.window, s.stride
    return limit, min(s.stride, max(1, limit // 2))


def measure(lm: Any, s: ForgettingSettings, label: str) -> dict[str, Any]:
    """Perplexity, bits per byte and QA accuracy of one model."""
    from ftharness.suites.loglik import choice_logprobs, rolling_nll, score_requests

    window, stride = fitted_window(lm, s)
    text = rolling_nll(lm, load_reference(s.reference, s.part), window=window, stride=stride,
                       token_budget=s.token_budget, progress=f"forgetting: general text, {s.part} part ({label})")
    if s.part == "selection":
        return text
    items = load_qa(s.qa)[: s.qa_limit]
    requests, spans = [], []
    for item in items:
        reqs = choice_logprobs(lm, f"Question: {item['question']}\nAnswer:", [" " + c for c in item["choices"]])
        spans.append((len(requests), len(reqs)))
        requests.extend(reqs)
    scored = score_requests(lm, requests, token_budget=s.token_budget, progress=f"forgetting: QA ({label})")
    correct, correct_norm, picks = [], [], []
    for item, (at, n) in zip(items, spans, strict=True):
        lps = [scored[at + k][0] for k in range(n)]
        norm = [lp / len((" " + c).encode("utf-8")) for lp, c in zip(lps, item["choices"], strict=True)]
        pick, pick_norm = max(range(n), key=lps.__getitem__), max(range(n), key=norm.__getitem__)
        picks.append(pick)
        correct.append(float(pick == item["answer"]))
        correct_norm.append(float(pick_norm == item["answer"]))
    return {
        **text,
        "qa_accuracy": sum(correct) / len(correct),
        "qa_accuracy_norm": sum(correct_norm) / len(correct_norm),
        "qa_correct": correct,
        "qa_picks": picks,
    }


def _key(lm: Any, s: ForgettingSettings) -> str:
    from ftharness.io import sha256_json

    # the weights' identity: their content hash where the loader vouches for it (LoadedModel.identity),
    # else the in-memory object, as two loads of one folder may differ (edited in place in tests)
    identity = getattr(lm, "identity", None) or id(getattr(lm, "model", lm))
    return sha256_json({"model": identity, "path": str(getattr(lm, "path", "")),
                        "adapter": str(getattr(lm, "adapter", None)),
                        "dtype": str(getattr(lm, "dtype", "")), "settings": settings_dict(s)})


class ForgettingMetric(TypedMetric):
    name = "forgetting"
    needs_model = True
    needs_base_model = True
    settings_class = ForgettingSettings
    values = (*OWN, *VERSUS)
    lower_is_better = frozenset({"ppl", "bpb", "base_ppl", "base_bpb", "ppl_delta_pct", "bpb_delta_pct"})
    # what a sweep may read: the selection part, which shares no document with the test part gated on
    selection_settings = {"part": "selection"}  # noqa: RUF012 (read-only)

    def finish(self, s: ForgettingSettings, source: str | Path | None) -> None:
        s.reference = resolve_setting_path(s.reference, source)
        s.qa = resolve_setting_path(s.qa, source)
        if s.stride >= s.window:
            raise BadInput("need stride < window", file=source, field="metrics.forgetting.stride")
        if s.token_budget < s.window:
            raise BadInput("token_budget must be at least window", file=source, field="metrics.forgetting.token_budget")
        load_reference(s.reference, s.part)
        load_qa(s.qa)

    def compute(self, ctx: MetricContext, settings: dict[str, Any]) -> MetricResult:
        s = self.typed(settings)
        cand = measure(ctx.model, s, ctx.option or "candidate")
        window, stride = fitted_window(ctx.model, s)
        values = {k: cand[k] for k in OWN if k in cand}
        shown = ("nll", "tokens", "bytes", "ppl", "bpb", "qa_accuracy", "qa_accuracy_norm")
        details: dict[str, Any] = {
            "candidate": {k: cand[k] for k in shown if k in cand},
            "part": s.part,
            "documents": len(cand["per_text_nll"]),
            "window": window,
            "stride": stride,
        }
        if "qa_correct" in cand:
            details["qa_correct"] = cand["qa_correct"]
        missing = dict.fromkeys(QA, NO_QA) if s.part == "selection" else {}
        if ctx.base_model is None:
            details["missing"] = {**missing, **dict.fromkeys(VERSUS, NO_BASE)}
            return MetricResult(values=values, details=details)
        key = _key(ctx.base_model, s)
        if ctx.base_model is ctx.model:
            base = cand
        else:
            base = _BASE_CACHE.get(key) or measure(ctx.base_model, s, "base")
        _BASE_CACHE[key] = base
        values.update(base_ppl=base["ppl"], base_bpb=base["bpb"],
                      **ratio_change_pct(cand["per_text_nll"], base["per_text_nll"], cand["per_text_tokens"]))
        intervals = paired_ratio_ci(cand["per_text_nll"], base["per_text_nll"], cand["per_text_tokens"],
                                    confidence=s.confidence, n_resamples=s.bootstrap_samples)
        details["base"] = {k: base[k] for k in shown if k in base}
        if "qa_correct" in cand:
            values.update(base_qa_accuracy=base["qa_accuracy"],
                          qa_accuracy_delta=cand["qa_accuracy"] - base["qa_accuracy"])
            diffs = [c - b for c, b in zip(cand["qa_correct"], base["qa_correct"], strict=True)]
            intervals["qa_accuracy_delta"] = bootstrap_ci(diffs, confidence=s.confidence,
                                                          n_resamples=s.bootstrap_samples)
            details["qa_flipped"] = {
                "lost": sum(1 for b, c in zip(base["qa_correct"], cand["qa_correct"], strict=True) if b and not c),
                "gained": sum(1 for b, c in zip(base["qa_correct"], cand["qa_correct"], strict=True) if c and not b),
            }
        if missing:
            details["missing"] = missing
        return MetricResult(values=values, details=details,
                            intervals={k: [lo, hi] for k, (lo, hi) in intervals.items()})


@hookimpl
def register_metrics(register) -> None:
    register(ForgettingMetric())
