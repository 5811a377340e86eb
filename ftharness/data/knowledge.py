"""Knowledge bases for retrieval: reading them, checking them, splitting them into chunks.

A knowledge base is named by one path (a task's ``data.knowledge``, a candidate's ``retrieval.knowledge``):

- a JSONL file (or a JSON list): one document per record, ``{"id", "title"?, "text"}``; ``id`` is a
  non-empty string unique in the file, ``title`` an optional string, ``text`` a non-empty string;
- a folder: every ``.txt`` and ``.md`` file under it (recursively, in path order), one document each, its
  id the path relative to the folder (``faq/returns.md``), no title.

Every problem is a :class:`~ftharness.errors.BadInput` naming the file, the line and the field, raised when
the task is loaded, before any work: a missing path, an empty base, a record without a ``text`` string or
with an empty one, a duplicate id, text that is not UTF-8.

Chunking (:func:`chunk_documents`) splits each document into windows of at most ``size`` tokens of the
task's model, consecutive windows sharing ``overlap`` tokens, each window cut back to the end of its last
sentence or word where one falls in its second half, so that a chunk rarely ends mid-word. A document no
longer than ``size`` tokens is one chunk. A chunk's text is a span of its document's text (never
re-tokenised), its id ``DOC_ID#N``. The defaults, 200 tokens without overlap, follow Smith and Troynikov
(2024, "Evaluating Chunking Strategies for Retrieval", Chroma technical report): among fixed-size and
recursive splitters, chunks of about 200 tokens with no overlap gave the best precision and IoU at a recall
within a few points of the best, and short chunks keep ``k`` of them within a small model's context. Chunking
is deterministic: the same documents, tokenizer and settings give the same chunks.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftharness.data.loading import read_records
from ftharness.errors import BadInput
from ftharness.jsonrecord import doc
from ftharness.typed import spec

SUFFIXES = (".txt", ".md")
ID_FIELD, TITLE_FIELD, TEXT_FIELD = "id", "title", "text"
_SENTENCE_END = re.compile(r"[.!?;:]\s|\n")


@dataclass
class ChunkingSpec:
    """How a knowledge base is split into chunks (tokens of the task's model)."""

    size: int = spec(200, ge=1, help="tokens per chunk at most",
                     source="Smith and Troynikov 2024, Chroma 'Evaluating Chunking Strategies for Retrieval'")
    overlap: int = spec(0, ge=0, help="tokens consecutive chunks of a document share",
                        source="Smith and Troynikov 2024 (no overlap: best precision and IoU)")


@dataclass
class Document:
    id: str
    text: str
    title: str | None = None
    file: str = ""
    line: int = 0


@dataclass
class KnowledgeBase:
    documents: list[Document]
    path: str
    sha256: str

    def __len__(self) -> int:
        return len(self.documents)


@dataclass(kw_only=True)
class Chunk:
    """One retrievable piece of a document."""

    id: str = doc("DOC_ID#N: the document's id and the chunk's position in it, from 0")
    doc_id: str = doc("the document it comes from (what recall@k and MRR compare with gold ids)")
    title: str | None = doc("the document's title, if it has one", default=None)
    text: str = doc("the chunk's text: a span of the document's text")
    tokens: int = doc("its length in tokens of the task's model")
    start: int = doc("offset of its first character in the document's text", default=0)


@dataclass
class KnowledgeStats:
    documents: int
    chunks: int
    tokens: int
    chunk_tokens_max: int
    duplicate_texts: list[list[str]] = field(default_factory=list)  # ids of documents with the same text

    def to_dict(self) -> dict[str, Any]:
        return {"documents": self.documents, "chunks": self.chunks, "tokens": self.tokens,
                "chunk_tokens_max": self.chunk_tokens_max, "duplicate_texts": self.duplicate_texts}


def knowledge_files(path: Path, *, source: str | Path | None, field: str | None) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        if not files:
            raise BadInput(f"empty knowledge base: the folder {path} holds no {' or '.join(SUFFIXES)} files",
                           file=source, field=field)
        return files
    if not path.is_file():
        raise BadInput(f"knowledge base not found: {path}", file=source, field=field)
    return [path]


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise BadInput(f"not UTF-8 text (byte {e.start}); save the file as UTF-8", file=path,
                       line=raw[: e.start].count(b"\n") + 1) from e


def _iter_documents(path: Path, source: str | Path | None, field: str | None) -> Iterator[Document]:
    files = knowledge_files(path, source=source, field=field)
    if path.is_dir():
        for f in files:
            text = _read_text(f)
            if not text.strip():
                raise BadInput("empty document: a knowledge base file needs some text; remove the file or fill it",
                               file=f)
            yield Document(id=f.relative_to(path).as_posix(), text=text, file=str(f))
        return
    for line, record in read_records(path):
        values = {}
        for name, required in ((ID_FIELD, True), (TEXT_FIELD, True), (TITLE_FIELD, False)):
            value = record.get(name)
            if value is None and not required:
                continue
            if not isinstance(value, str):
                what = "missing" if value is None else f"not text ({type(value).__name__})"
                raise BadInput(f"{what}: every document of a knowledge base needs `id` and `text` strings "
                               "(`title` optional)", file=path, line=line, field=name)
            if required and not value.strip():
                raise BadInput(f"empty `{name}`: give the document some", file=path, line=line, field=name)
            values[name] = value
        yield Document(id=values[ID_FIELD], text=values[TEXT_FIELD], title=values.get(TITLE_FIELD),
                       file=str(path), line=line)


def load_knowledge(path: str | Path, *, source: str | Path | None = None, field: str | None = None) -> KnowledgeBase:
    """Every document of the knowledge base at ``path``, checked (see the module's docstring)."""
    path = Path(path)
    documents: list[Document] = []
    seen: dict[str, Document] = {}
    for d in _iter_documents(path, source, field):
        if d.id in seen:
            first = seen[d.id]
            raise BadInput(f"duplicate document id {d.id!r} (first at line {first.line}); ids must be unique",
                           file=d.file, line=d.line or None, field=ID_FIELD)
        seen[d.id] = d
        documents.append(d)
    if not documents:
        raise BadInput("empty knowledge base: no documents; add one record {\"id\", \"text\"} per line", file=path)
    return KnowledgeBase(documents=documents, path=str(path), sha256=knowledge_sha256(path))


def knowledge_sha256(path: str | Path) -> str:
    """A content hash of the knowledge base: the file's, or over a folder's files (relative path and hash)."""
    from ftharness.io import sha256_file, sha256_json

    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    return sha256_json([[f.relative_to(path).as_posix(), sha256_file(f)]
                        for f in knowledge_files(path, source=None, field=None)])


def check_chunking(chunking: ChunkingSpec, positions: int | None, *, file: Any = None,
                   fields: tuple[str, str] = ("chunking.size", "chunking.overlap")) -> None:
    """A chunk must fit the model with room to spare: ``size`` below its positions, ``overlap`` below
    ``size``."""
    if positions is not None and chunking.size >= positions:
        raise BadInput(f"chunks of {chunking.size} tokens do not fit the model's {positions} positions with a "
                       f"question and an answer; choose a size well below {positions}", file=file,
                       field=fields[0])
    if chunking.overlap >= chunking.size:
        raise BadInput(f"an overlap of {chunking.overlap} tokens needs chunks longer than that (size "
                       f"{chunking.size}); choose a smaller overlap", file=file, field=fields[1])


def chunk_documents(kb: KnowledgeBase, tokenizer: Any, chunking: ChunkingSpec) -> list[Chunk]:
    """Every document's chunks, documents in order (see the module's docstring)."""
    out: list[Chunk] = []
    for d in kb.documents:
        out.extend(_chunks(d, tokenizer, chunking))
    return out


def _chunks(d: Document, tokenizer: Any, chunking: ChunkingSpec) -> list[Chunk]:
    enc = tokenizer(d.text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = [tuple(o) for o in enc["offset_mapping"]]
    n = len(offsets)
    if n <= chunking.size:
        return [Chunk(id=f"{d.id}#0", doc_id=d.id, title=d.title, text=d.text, tokens=n, start=0)]
    out = []
    start_tok = 0
    while start_tok < n:
        end_tok = min(start_tok + chunking.size, n)
        if end_tok < n:
            end_tok = _cut_back(d.text, offsets, start_tok, end_tok)
        lo = offsets[start_tok][0]
        hi = offsets[end_tok - 1][1] if end_tok < n else len(d.text)
        out.append(Chunk(id=f"{d.id}#{len(out)}", doc_id=d.id, title=d.title, text=d.text[lo:hi].strip(),
                         tokens=end_tok - start_tok, start=lo))
        if end_tok >= n:
            break
        start_tok = max(end_tok - chunking.overlap, start_tok + 1)
    return out


def _cut_back(text: str, offsets: list[tuple[int, int]], start: int, end: int) -> int:
    """The token index to end a window at: after the last sentence end, else the last word end, in the
    window's second half; ``end`` when there is none."""
    half = start + (end - start) // 2
    for pattern in (_SENTENCE_END, re.compile(r"\s")):
        for t in range(end - 1, half, -1):
            nxt = offsets[t + 1][0] if t + 1 < len(offsets) else len(text)
            between = text[offsets[t][1] - 1: nxt + 1]
            if pattern.search(between):
                return t + 1
    return end


def knowledge_stats(kb: KnowledgeBase, chunks: list[Chunk], tokenizer: Any) -> KnowledgeStats:
    """What ``ftharness data inspect`` reports of a knowledge base: documents, chunks, tokens (each
    document's once, whatever the overlap), the longest chunk, documents whose texts are the same (after
    case and whitespace)."""
    by_text: dict[str, list[str]] = {}
    for d in kb.documents:
        by_text.setdefault(" ".join(d.text.split()).lower(), []).append(d.id)
    return KnowledgeStats(
        documents=len(kb),
        chunks=len(chunks),
        tokens=sum(len(tokenizer(d.text, add_special_tokens=False)["input_ids"]) for d in kb.documents),
        chunk_tokens_max=max((c.tokens for c in chunks), default=0),
        duplicate_texts=[ids for ids in by_text.values() if len(ids) > 1],
    )


def gold_ids(meta: dict[str, Any]) -> list[str] | None:
    """The gold document ids of a data row (its ``doc_id`` or ``doc_ids`` field), or None when it has none."""
    if "doc_ids" in meta and isinstance(meta["doc_ids"], list):
        return [str(x) for x in meta["doc_ids"]]
    if meta.get("doc_id") is not None:
        return [str(meta["doc_id"])]
    return None


def check_gold(example: Any, docs: set[str], kb_path: str, *, source: Any = None) -> list[str]:
    """The gold ids of a training row that RAFT builds around: BadInput naming the row's file and line when it
    has none, or names a document the knowledge base at ``kb_path`` does not hold."""
    gold = gold_ids(example.meta)
    if not gold:
        raise BadInput("RAFT (retrieval.distractors) needs the gold document of every training row: add "
                       "`doc_id` (or `doc_ids`) to the row", file=example.file or source, line=example.line or None,
                       field="doc_id")
    missing = [g for g in gold if g not in docs]
    if missing:
        raise BadInput(f"doc_id {missing[0]!r} is not a document of the knowledge base {kb_path}",
                       file=example.file or source, line=example.line or None, field="doc_id")
    return gold
