"""`ftharness data inspect`: what a data file holds before anyone trains on it.

Counts (which the advisor reads: ``labeled_examples``, ``preference_pairs``), length distributions,
empty and repeated fields, exact and near duplicates, and train/eval overlap (leakage). A raw-text corpus
(:mod:`ftharness.data.corpus`) gets its own summary (:func:`inspect_corpus`): documents, their lengths,
exact duplicates, and its token count as the advisor's ``domain_corpus_tokens``.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

from ftharness.data import corpus as corpora
from ftharness.data import dedup
from ftharness.data.loading import FIELDS, load_dataset, read_records
from ftharness.data.records import Dataset, Example
from ftharness.errors import BadInput

MAX_LISTED = 20  # pairs listed in full; counts are always complete


def percentile(values: list[int], q: float) -> int:
    """Nearest-rank percentile (the smallest value with at least q % of the values at or below it)."""
    if not values:
        return 0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def distribution(values: list[int]) -> dict[str, float]:
    if not values:
        return {"count": 0, "p50": 0, "p90": 0, "p99": 0, "max": 0, "mean": 0.0, "total": 0}
    return {
        "count": len(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values),
        "mean": round(sum(values) / len(values), 1),
        "total": sum(values),
    }


def prompt_text(example: Example) -> str:
    return "\n".join(m["content"] for m in example.messages)


def example_text(example: Example) -> str:
    parts = [prompt_text(example), example.completion or ""]
    if example.rejected is not None:
        parts.append(example.rejected)
    return "\n".join(parts)


class LengthCounter:
    """Lengths in the model's tokens (prompt rendered with its template) or, without a model, in words."""

    def __init__(self, tokenizer: Any = None, model: str | None = None) -> None:
        self.tokenizer = tokenizer
        if tokenizer is None:
            self.unit = "words (whitespace-separated; pass --model for token counts)"
        else:
            self.unit = f"tokens of {model or 'the model'}'s tokenizer (prompts rendered with its chat template, no task instruction)"

    def prompt(self, example: Example) -> int:
        if self.tokenizer is None:
            return len(prompt_text(example).split())
        from ftharness.models.generation import encode_prompt
        from ftharness.models.prompts import render_prompt

        return len(encode_prompt(self.tokenizer, render_prompt(self.tokenizer, example.messages)))

    def text(self, text: str) -> int:
        if self.tokenizer is None:
            return len(text.split())
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])


def field_stats(path: str | Path) -> dict[str, dict[str, int]]:
    """Per top-level field of the raw records: how often present, empty ("", [], {}, null) and repeated
    (a value equal to an earlier record's; e.g. a shared instruction, or the same input twice)."""
    import json

    present: Counter[str] = Counter()
    empty: Counter[str] = Counter()
    repeated: Counter[str] = Counter()
    seen: dict[str, set[str]] = {}
    for _, record in read_records(path):
        for key, value in record.items():
            present[key] += 1
            if value is None or (isinstance(value, (str, list, dict)) and not (value.strip() if isinstance(value, str) else value)):
                empty[key] += 1
                continue
            blob = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            bucket = seen.setdefault(key, set())
            if blob in bucket:
                repeated[key] += 1
            bucket.add(blob)
    return {k: {"present": present[k], "empty": empty[k], "repeated": repeated[k]} for k in present}


def inspect_dataset(
    path: str | Path | Dataset,
    eval_path: str | Path | Dataset | None = None,
    *,
    model: str | None = None,
    tokenizer: Any = None,
    format: str = "auto",
    near_threshold: float = dedup.THRESHOLD,
) -> dict[str, Any]:
    """A JSON-able summary of a data file (and of its overlap with an evaluation file)."""
    if tokenizer is None and model is not None:
        from ftharness.models.loading import load_tokenizer

        tokenizer = load_tokenizer(model)
    lengths = LengthCounter(tokenizer, model)
    data = path if isinstance(path, Dataset) else load_dataset(path, format=format)
    report = _summary(data, lengths, near_threshold)
    if eval_path is not None:
        evals = eval_path if isinstance(eval_path, Dataset) else load_dataset(eval_path, format=format)
        report["eval"] = _summary(evals, lengths, near_threshold)
        report["leakage"] = _leakage(data, evals, near_threshold)
    return report


def _summary(data: Dataset, lengths: LengthCounter, threshold: float) -> dict[str, Any]:
    ex = data.examples
    prompts = [lengths.prompt(e) for e in ex]
    completions = [lengths.text(e.completion) for e in ex if e.completion is not None]
    length_stats = {"prompt": distribution(prompts), "completion": distribution(completions)}
    if data.format == "preference":
        length_stats["rejected"] = distribution([lengths.text(e.rejected or "") for e in ex])

    full = [example_text(e) for e in ex]
    groups = dedup.exact_duplicate_groups(full)
    near = dedup.near_duplicate_pairs(full, threshold)
    by_prompt: dict[str, set[str]] = {}
    for e in ex:
        by_prompt.setdefault(dedup.normalise(prompt_text(e)), set()).add(dedup.normalise(e.completion or ""))
    meta_keys = sorted({k for e in ex for k in e.meta})
    return {
        "file": data.file,
        "sha256": data.sha256,
        "format": data.format,
        "examples": len(ex),
        "labeled_examples": sum(1 for e in ex if e.completion is not None),
        "preference_pairs": sum(1 for e in ex if e.chosen is not None and e.rejected is not None),
        "multi_turn": sum(1 for e in ex if sum(m["role"] == "user" for m in e.messages) > 1),
        "length_unit": lengths.unit,
        "lengths": length_stats,
        "fields": field_stats(data.file) if data.file and Path(data.file).exists() else {},
        "meta_fields": meta_keys,
        "exact_duplicates": {
            "count": sum(len(g) - 1 for g in groups),  # copies beyond the first
            "groups": [[ex[i].line for i in g] for g in groups[:MAX_LISTED]],
        },
        "near_duplicates": {
            "method": dedup.METHOD,
            "threshold": threshold,
            "count": len(near),
            "pairs": [{"lines": [ex[i].line, ex[j].line], "jaccard": round(s, 3)} for i, j, s in near[:MAX_LISTED]],
        },
        "conflicting_completions": sum(1 for c in by_prompt.values() if len(c) > 1),
    }


def _leakage(train: Dataset, evals: Dataset, threshold: float) -> dict[str, Any]:
    """Eval examples whose prompt (all its turns) is in the training file, exactly or nearly."""
    found = dedup.cross_pairs([prompt_text(e) for e in train.examples], [prompt_text(e) for e in evals.examples], threshold)
    n = len(evals.examples)

    def rows(pairs: list[tuple[int, int, float]]) -> list[dict[str, Any]]:
        return [{"eval_line": evals.examples[e].line, "train_line": train.examples[t].line, "jaccard": round(s, 3)}
                for e, t, s in pairs[:MAX_LISTED]]

    leaked = len(found["exact"]) + len(found["near"])
    return {
        "compared": "prompts (all turns before the answer)",
        "method": dedup.METHOD,
        "threshold": threshold,
        "eval_examples": n,
        "exact": len(found["exact"]),
        "near": len(found["near"]),
        "share": round(leaked / n, 4) if n else 0.0,
        "exact_pairs": rows(found["exact"]),
        "near_pairs": rows(found["near"]),
    }


def is_corpus(path: str | Path, format: str = "auto") -> bool:
    """Whether ``path`` names a raw-text corpus rather than examples: a folder, a ``.txt`` file, ``format``
    ``text``, or (format ``auto``) a JSONL file whose first record has a ``text`` field and none of the
    example formats' fields."""
    path = Path(path)
    if format == corpora.FORMAT or path.is_dir() or path.suffix.lower() == corpora.TEXT_SUFFIX:
        return True
    if format != "auto" or not path.is_file():
        return False
    first = next(read_records(path), None)
    if first is None:
        return False
    known = {f for required, optional in FIELDS.values() for f in (*required, *optional)}
    return corpora.TEXT_FIELD in first[1] and not known & set(first[1])


def inspect_corpus(path: str | Path, *, model: str | None = None, tokenizer: Any = None) -> dict[str, Any]:
    """A JSON-able summary of a raw-text corpus; ``domain_corpus_tokens`` is its token count as training packs
    it (:func:`ftharness.data.corpus.document_ids`), by the model's tokenizer or, without one, estimated."""
    if tokenizer is None and model is not None:
        from ftharness.models.loading import load_tokenizer

        tokenizer = load_tokenizer(model)
    texts = list(corpora.iter_texts(path))
    documents = [t for _, _, t in texts if t.strip()]
    if not documents:
        raise BadInput(f"empty corpus: {path} holds no text", file=path)
    if tokenizer is None:
        counts = [corpora.approx_tokens(t) for t in documents]
        unit = f"tokens, {corpora.APPROXIMATION}"
    else:
        counts = [len(corpora.document_ids(tokenizer, t)) for t in documents]
        unit = f"tokens of {model or 'the model'}'s tokenizer (end-of-sequence token after each document included)"
    kept = [(f, line) for f, line, t in texts if t.strip()]
    groups = dedup.exact_duplicate_groups(documents)
    return {
        "file": str(path),
        "sha256": corpora.corpus_sha256(path),
        "format": corpora.FORMAT,
        "files": len({f for f, _, _ in texts}),
        "documents": len(documents),
        "empty_documents": len(texts) - len(documents),
        "domain_corpus_tokens": sum(counts),
        "tokens_exact": tokenizer is not None,
        "length_unit": unit,
        "lengths": {"document": distribution(counts)},
        "exact_duplicates": {
            "count": sum(len(g) - 1 for g in groups),
            "documents": [[_where(*kept[i]) for i in g] for g in groups[:MAX_LISTED]],
        },
    }


def inspect_knowledge(path: str | Path, *, model: str | None = None, tokenizer: Any = None,
                      chunking: Any = None) -> dict[str, Any]:
    """A knowledge base (``ftharness.data.knowledge``), checked as a task loads it: its documents, the chunks
    they split into under ``chunking`` (default: the task default) in ``model``'s tokens (default: the
    embedded model, what a task without ``base_model`` chunks with), their token counts, and documents
    whose texts are the same."""
    from ftharness.data.knowledge import (
        ChunkingSpec,
        check_chunking,
        chunk_documents,
        knowledge_stats,
        load_knowledge,
    )

    chunking = chunking or ChunkingSpec()
    check_chunking(chunking, None, fields=("--chunk-size", "--chunk-overlap"))
    kb = load_knowledge(path)  # every document checked before a model is read
    if tokenizer is None:
        from ftharness.models.loading import load_tokenizer

        tokenizer = load_tokenizer(model or "embedded")
    chunks = chunk_documents(kb, tokenizer, chunking)
    stats = knowledge_stats(kb, chunks, tokenizer)
    sizes = [c.tokens for c in chunks]
    return {
        "file": str(path),
        "sha256": kb.sha256,
        **stats.to_dict(),
        "titled": sum(1 for d in kb.documents if d.title),
        "chunk_tokens": distribution(sizes),
        "chunking": {"size": chunking.size, "overlap": chunking.overlap},
        "length_unit": f"tokens of {model or 'embedded'}'s tokenizer",
    }


def _where(file: str, line: int) -> str:
    return f"{file}:{line}" if line else file
