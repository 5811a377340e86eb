"""Raw-text corpora for continued pretraining: reading them, checking them, counting their tokens.

A corpus is named by one path:

- a ``.txt`` file: one document (UTF-8);
- a folder: every ``.txt`` file under it (recursively, in path order), one document each;
- a JSONL file (or a JSON list): one document per record, its ``text`` field (other fields are ignored).

Documents are loaded into the common record (:class:`~ftharness.data.records.Dataset` of ``format``
``text``): an :class:`~ftharness.data.records.Example` with no prompt turns and the document as its
``completion``, since in continued pretraining every token is a target. Documents that are empty or only
whitespace hold nothing to train on and are left out (``ftharness data inspect`` counts them). A corpus
with no text at all, a missing path, a folder without ``.txt`` files, and a record without a ``text``
string are :class:`~ftharness.errors.BadInput` naming the file, the line and the field.

Token counts are what training sees (:func:`document_ids`: the document's tokens without special tokens,
then the end-of-sequence token that separates it from the next); without a tokenizer they are estimated
at :data:`CHARS_PER_TOKEN` characters per token, and the estimate says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ftharness.data.loading import read_records
from ftharness.data.records import Dataset, Example
from ftharness.errors import BadInput

FORMAT = "text"
TEXT_FIELD = "text"
TEXT_SUFFIX = ".txt"
# OpenAI's rule of thumb for English text ("one token generally corresponds to ~4 characters", OpenAI help
# center, "What are tokens and how to count them?"); a model's own tokenizer gives the exact count.
CHARS_PER_TOKEN = 4
APPROXIMATION = f"estimated at {CHARS_PER_TOKEN} characters per token (give a model for its tokenizer's count)"


def corpus_files(path: str | Path, *, source: str | Path | None = None, field: str | None = None) -> list[Path]:
    """The files of the corpus at ``path``. BadInput (file ``source``, ``field``) when the path does not
    exist or names a folder without ``.txt`` files."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob(f"*{TEXT_SUFFIX}") if p.is_file())
        if not files:
            raise BadInput(f"empty corpus: the folder {path} holds no {TEXT_SUFFIX} files", file=source, field=field)
        return files
    if not path.is_file():
        raise BadInput(f"corpus not found: {path}", file=source, field=field)
    return [path]


def iter_texts(path: str | Path, *, source: str | Path | None = None,
               field: str | None = None) -> Iterator[tuple[str, int, str]]:
    """``(file, line, text)`` for every document of the corpus, empty ones included (line 0 for a whole
    ``.txt`` file)."""
    for f in corpus_files(path, source=source, field=field):
        if f.suffix.lower() == TEXT_SUFFIX:
            yield str(f), 0, _read_text(f)
            continue
        for line, record in read_records(f):
            text = record.get(TEXT_FIELD)
            if not isinstance(text, str):
                what = "missing" if text is None else f"not text ({type(text).__name__})"
                raise BadInput(f"{what}: every record of a corpus needs a `{TEXT_FIELD}` string", file=f, line=line,
                               field=TEXT_FIELD)
            yield str(f), line, text


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise BadInput(f"not UTF-8 text (byte {e.start})", file=path, line=raw[: e.start].count(b"\n") + 1) from e


def load_corpus(path: str | Path, *, source: str | Path | None = None, field: str | None = None) -> Dataset:
    """Every non-empty document of the corpus, in order. BadInput when none is left."""
    examples = [Example(messages=[], completion=text, file=f, line=line)
                for f, line, text in iter_texts(path, source=source, field=field) if text.strip()]
    if not examples:
        raise BadInput(f"empty corpus: {path} holds no text", file=source, field=field)
    return Dataset(examples=examples, format=FORMAT, file=str(path), sha256=corpus_sha256(path))


def check_corpus(path: str | Path, *, source: str | Path | None = None, field: str | None = None) -> None:
    """What a task file's check can afford before any work: the corpus exists and some document holds text
    (reading stops at the first that does, every record before it checked). :func:`load_corpus` checks every
    record when the corpus is loaded for training, before any training starts."""
    for _, _, text in iter_texts(path, source=source, field=field):
        if text.strip():
            return
    raise BadInput(f"empty corpus: {path} holds no text", file=source, field=field)


def corpus_sha256(path: str | Path) -> str:
    """A content hash of the corpus: the file's, or over a folder's files (relative path and hash each)."""
    from ftharness.io import sha256_file, sha256_json

    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    return sha256_json([[str(f.relative_to(path)), sha256_file(f)] for f in corpus_files(path)])


def document_ids(tokenizer: Any, text: str) -> list[int]:
    """A document's token ids as continued pretraining trains on them: no special tokens added, the
    end-of-sequence token appended (it separates the document from the next one in a packed block)."""
    if tokenizer.eos_token_id is None:
        raise BadInput("the model's tokenizer has no end-of-sequence token to separate documents with",
                       field="base_model")
    return [*tokenizer(text, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]


def approx_tokens(text: str) -> int:
    """The token estimate of :data:`APPROXIMATION` for one document (its separator included)."""
    return -(-len(text) // CHARS_PER_TOKEN) + 1
