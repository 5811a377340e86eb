"""Replay: general text mixed into a supervised candidate's training rows, against forgetting.

A candidate with ``replay: {fraction, source}`` trains on its task rows plus ``round(fraction * task
rows)`` replay rows. Where they come from (``source``):

- ``general``: the documents of the ``replay`` part of the bundled general-text reference
  (``ftharness.data.general``), which shares no document with the parts the forgetting metric scores;
- a file (JSONL with ``text``, or a .txt of documents separated by blank lines): every document of it;
- ``self``: self-synthesized rehearsal (Huang et al. 2024): the base model's own answers, greedy and with
  the task's generation settings, to one prompt per document of the ``replay`` part (``Explain: TITLE``),
  generated once and cached under ``$FTHARNESS_CACHE/replay/KEY`` (the key: the base model, the prompts
  and the generation settings).

Text sources become language-modelling rows, one paragraph each (an example without prompt turns: every
token a label; see ``ftharness.training.sequences``); ``self`` rows are prompt and answer, trained like task
rows. Rows are taken in the order of the sha256 of ``seed:text`` and cycled when more are asked than there
are, so the same task and seed replay the same rows.

Which source to use: ``general`` is the same kind of text as the bundled forgetting reference (other
documents of the same documentation). Training on it lowers perplexity on the reference because the model
learns that text, not because it keeps its general ability, so with the bundled reference it flatters the
forgetting gate. ``self`` (the default) replays the base model's own distribution instead; a file of your
own general text is best when the forgetting reference is your own too, from another source.

The rows change the training data's hash, so a candidate's artifact key holds its replay.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ftharness.data.general import documents, read_documents
from ftharness.data.records import Dataset, Example
from ftharness.io import atomic_write_json, sha256_json
from ftharness.paths import cache_dir

SELF_PROMPT = "Explain: {title}"


def replay_count(fraction: float, task_rows: int) -> int:
    return int(round(fraction * task_rows))


def _ordered(items: list[Any], text: Callable[[Any], str], seed: int) -> list[Any]:
    return sorted(items, key=lambda x: hashlib.sha256(f"{seed}:{text(x)}".encode()).hexdigest())


def _take(items: list[Any], n: int) -> list[Any]:
    return [items[i % len(items)] for i in range(n)] if items else []


def paragraphs(texts: list[str]) -> list[str]:
    """The paragraphs (blocks separated by blank lines) of ``texts``, each once."""
    return list(dict.fromkeys(p.strip() for t in texts for p in t.split("\n\n") if p.strip()))


def text_rows(source: str, file: Path | None, n: int, seed: int) -> list[Example]:
    """``n`` language-modelling rows from the bundled replay part (``general``) or ``file``, one paragraph
    each: rows about as long as task rows, not whole documents that would dominate a batch's tokens."""
    texts = [d.text for d in read_documents(file)] if file is not None else documents(None, "replay")
    return [Example(messages=[], completion=t, meta={"replay": source})
            for t in _take(_ordered(paragraphs(texts), str, seed), n)]


def self_prompts() -> list[str]:
    """One prompt per document of the bundled replay part, by its title."""
    docs = [d for d in read_documents() if d.part == "replay"]
    return list(dict.fromkeys(SELF_PROMPT.format(title=d.title or d.text.split(".")[0])
                              for d in docs))


def self_rows(prompts: list[str], answers: list[str], n: int, seed: int) -> list[Example]:
    pairs = [(p, a) for p, a in zip(prompts, answers, strict=True) if a.strip()]
    return [Example(messages=[{"role": "user", "content": p}], completion=a, meta={"replay": "self"})
            for p, a in _take(_ordered(pairs, lambda x: x[0], seed), n)]


def self_answers_cached(identity: dict[str, Any], prompts: list[str],
                        generate: Callable[[list[str]], list[str]]) -> list[str]:
    """The base model's answers to ``prompts``: from the cache, or generated now and cached."""
    key = sha256_json({"identity": identity, "prompts": prompts})[:20]
    path = cache_dir() / "replay" / f"{key}.json"
    if path.is_file():
        try:
            answers = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(answers, list) and len(answers) == len(prompts):
                return [str(a) for a in answers]
        except (OSError, json.JSONDecodeError):
            pass
    answers = generate(prompts)
    atomic_write_json(path, answers)
    return answers


def with_replay(fit: Dataset, rows: list[Example]) -> Dataset:
    """The training rows with ``rows`` after them (the trainer shuffles)."""
    if not rows:
        return fit
    return Dataset(examples=[*fit.examples, *rows], format=fit.format, file=fit.file, sha256=fit.sha256)
