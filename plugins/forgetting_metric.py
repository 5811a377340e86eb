"""The ``forgetting`` metric: how much general ability a candidate lost against its base model.

- Perplexity and bits per byte on a held-out general-text reference (the project's own prose,
  ``ftharness/suites/data/general_text.txt``, paragraphs separated by blank lines), by rolling
  log-likelihood without a chat template (see ``ftharness.suites.loglik``). ``ppl_delta_pct`` and
  ``bpb_delta_pct`` are the candidate's relative change against the base, in percent: positive means the
  candidate models general text worse. Bits per byte is comparable across tokenizers; perplexity only
  between models sharing one.
- Accuracy on a small general-knowledge multiple-choice set the project wrote
  (``general_qa.jsonl``), each choice scored by its log-likelihood after ``Question: ...\\nAnswer:``
  (``qa_accuracy``: highest sum; ``qa_accuracy_norm``: highest per UTF-8 byte of the choice, as
  lm-evaluation-harness's ``acc_norm``). Base and candidate see identical text.
  ``qa_accuracy_delta`` is candidate minus base, in accuracy points (0-1 scale).

Base-model figures are computed once per process for a given model and settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftharness.errors import BadInput
from ftharness.hookspecs import hookimpl
from ftharness.paths import package_data
from ftharness.suites.metric import MetricContext, MetricResult
from ftharness.suites.settings import parse_settings, resolve_setting_path, settings_dict
from ftharness.typed import spec

OWN = ["ppl", "bpb", "qa_accuracy", "qa_accuracy_norm"]
VERSUS = ["base_ppl", "base_bpb", "base_qa_accuracy", "ppl_delta_pct", "bpb_delta_pct", "qa_accuracy_delta"]
NO_BASE = "no base model to compare with; evaluate an adapter (its base is --model) or give --base-model"
_BASE_CACHE: dict[str, dict[str, Any]] = {}


@dataclass
class ForgettingSettings:
    reference: str | None = None  # text file, documents separated by blank lines
    qa: str | None = None  # JSONL: question, choices (list), answer (index)
    window: int = spec(512, ge=2, help="tokens per perplexity window")
    stride: int = spec(256, ge=1, help="tokens between window starts (less than window)")
    token_budget: int = spec(2048, ge=2, help="tokens of the reference scored (at least window)")
    qa_limit: int | None = spec(None, ge=1, help="QA questions asked; null: all")


def load_reference(path: str | None) -> list[str]:
    file = Path(path) if path else package_data("suites", "data", "general_text.txt")
    if not file.is_file():
        raise BadInput("general-text reference not found", file=file, field="metrics.forgetting.reference")
    docs = [d.strip() for d in file.read_text(encoding="utf-8").split("\n\n") if d.strip()]
    if not docs:
        raise BadInput("the general-text reference is empty", file=file)
    return docs


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


def measure(lm: Any, s: ForgettingSettings, label: str) -> dict[str, Any]:
    """Perplexity, bits per byte and QA accuracy of one model."""
    from ftharness.suites.loglik import choice_logprobs, rolling_nll, score_requests

    text = rolling_nll(lm, load_reference(s.reference), window=s.window, stride=s.stride,
                       token_budget=s.token_budget, progress=f"forgetting: general text ({label})")
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

    # the in-memory weights' identity too: two loads of one folder may differ (edited in place in tests)
    return sha256_json({"model": id(getattr(lm, "model", lm)), "path": str(getattr(lm, "path", "")),
                        "adapter": str(getattr(lm, "adapter", None)),
                        "dtype": str(getattr(lm, "dtype", "")), "settings": settings_dict(s)})


def _pct(new: float, old: float) -> float:
    return (new - old) / old * 100.0


class ForgettingMetric:
    name = "forgetting"
    needs_model = True
    needs_base_model = True

    def value_names(self, settings: dict[str, Any]) -> list[str]:
        return OWN + VERSUS

    def check_settings(self, settings: dict[str, Any], *, source: str | Path | None = None) -> dict[str, Any]:
        s = parse_settings(ForgettingSettings, self.name, settings, source)
        s.reference = resolve_setting_path(s.reference, source)
        s.qa = resolve_setting_path(s.qa, source)
        if s.stride >= s.window:
            raise BadInput("need stride < window", file=source, field="metrics.forgetting.stride")
        if s.token_budget < s.window:
            raise BadInput("token_budget must be at least window", file=source, field="metrics.forgetting.token_budget")
        load_reference(s.reference)
        load_qa(s.qa)
        return settings_dict(s)

    def compute(self, ctx: MetricContext, settings: dict[str, Any]) -> MetricResult:
        s = ForgettingSettings(**settings)
        cand = measure(ctx.model, s, ctx.option or "candidate")
        values = {k: cand[k] for k in OWN}
        details: dict[str, Any] = {
            "candidate": {k: cand[k] for k in ("nll", "tokens", "bytes", "ppl", "bpb", "qa_accuracy", "qa_accuracy_norm")},
            "qa_correct": cand["qa_correct"],
            "window": s.window,
            "stride": s.stride,
        }
        if ctx.base_model is None:
            details["missing"] = dict.fromkeys(VERSUS, NO_BASE)
            return MetricResult(values=values, details=details)
        key = _key(ctx.base_model, s)
        if ctx.base_model is ctx.model:
            base = cand
        else:
            base = _BASE_CACHE.get(key) or measure(ctx.base_model, s, "base")
        _BASE_CACHE[key] = base
        values.update(
            base_ppl=base["ppl"],
            base_bpb=base["bpb"],
            base_qa_accuracy=base["qa_accuracy"],
            ppl_delta_pct=_pct(cand["ppl"], base["ppl"]),
            bpb_delta_pct=_pct(cand["bpb"], base["bpb"]),
            qa_accuracy_delta=cand["qa_accuracy"] - base["qa_accuracy"],
        )
        details["base"] = {k: base[k] for k in ("nll", "tokens", "bytes", "ppl", "bpb", "qa_accuracy", "qa_accuracy_norm")}
        details["qa_flipped"] = {
            "lost": sum(1 for b, c in zip(base["qa_correct"], cand["qa_correct"], strict=True) if b and not c),
            "gained": sum(1 for b, c in zip(base["qa_correct"], cand["qa_correct"], strict=True) if c and not b),
        }
        return MetricResult(values=values, details=details)


@hookimpl
def register_metrics(register) -> None:
    register(ForgettingMetric())
