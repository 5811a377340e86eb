"""Retrieval over a knowledge base: the index, the prompt it fills, and retrieval-augmented training rows.

One function builds what a retrieving option reads, for serving and training alike:
:func:`augment` puts the chunks a row retrieves into the row's last user turn, through the one template
below, so that a candidate trained with retrieval is trained on exactly the prompt it is served with
(same retriever, same template, same ``k``: ``tests/test_retrieval.py`` checks it byte for byte).

The template (``CONTEXT_TEMPLATE``, :func:`with_context`): a ``Documents:`` header, then each chunk as ``[CHUNK_ID] TITLE``
and its text, chunks separated by a blank line, then a blank line and the row's own input. The chunks go in
rank order with the best one last, nearest the input: models use what sits at the ends of a long context
best and the middle worst (Liu et al. 2024, "Lost in the Middle: How Language Models Use Long Contexts",
TACL), and the same order places retrieved shots (``ftharness.baselines``). The query is the row's input
(its last user turn), never its answer.

The index (:class:`Knowledge`) is built by the retriever plugin the ``retrieval:`` block names
(``ftharness.hookspecs.Retriever``; ``bm25`` by default) over the knowledge base's chunks
(``ftharness.data.knowledge``), and cached in ``$FTHARNESS_CACHE/retrieval/KEY`` when the retriever can
save it, KEY hashing the chunks' ids and texts, the retriever's name and its settings: the same knowledge
base and settings are indexed once.

Retrieval-augmented finetuning (RAFT: Zhang et al. 2024, "RAFT: Adapting Language Model to Domain Specific
RAG", arXiv:2403.10131): with ``distractors: N`` a training row's context is its gold chunk (the
best-ranked chunk of the row's ``doc_id``/``doc_ids`` document) and the ``N`` best-ranked chunks of other
documents, shuffled (a fixed seed per row) so that the gold chunk's place teaches nothing; a share
``1 - oracle_fraction`` of the rows (drawn with the task's seed) keep only distractors (``N + 1`` of them),
which trains the model to answer from memory when retrieval misses. RAFT's default ``P = 0.8`` of rows with
the gold document is the ``oracle_fraction`` default (Zhang et al. 2024, section 3: "P% of data ... with
the oracle document"). Served, the candidate reads the top ``k`` chunks as every retrieving option does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftharness.data.knowledge import Chunk, ChunkingSpec, KnowledgeBase, check_gold, chunk_documents
from ftharness.data.records import Example
from ftharness.errors import BadInput
from ftharness.io import sha256_json
from ftharness.jsonrecord import doc
from ftharness.typed import spec

HEADER = "Documents:"
CONTEXT_TEMPLATE = "{header}\n\n{chunks}\n\n{input}"
CHUNK_TEMPLATE = "[{id}] {title}\n{text}"
CACHE_VERSION = 1


@dataclass
class RetrievalSpec:
    """A ``retrieval:`` block: which retriever fills the prompt, how many chunks, and (candidates) how the
    training rows are built."""

    retriever: str = spec("bm25", help="the retriever plugin (`ftharness plugins` lists them)")
    k: int = spec(2, ge=1, le=64, help="chunks in each prompt, best last",
                  source="the probe behind the bundled facts task: BM25 put the right document in the top 2 "
                         "for 30 of 30 questions, and a 135M model reads two short documents")
    settings: dict[str, Any] = spec(factory=dict, help="the retriever's own settings (checked by it)")
    knowledge: str | None = spec(
        None, help="candidates: the knowledge base its training rows retrieve from (relative to the task file; "
                   "default: data.knowledge). Serving always reads data.knowledge, so a candidate can be "
                   "judged on facts that changed after it was trained, without training again")
    distractors: int | None = spec(
        None, ge=0, le=63, help="candidates, RAFT: train each row on its gold chunk and this many retrieved "
                               "non-gold chunks (needs doc_id or doc_ids in the training rows); null: train "
                               "on the top k chunks as served")
    oracle_fraction: float = spec(0.8, ge=0, le=1, help="candidates, RAFT: the share of training rows that keep "
                                                        "their gold chunk", source="Zhang et al. 2024 (RAFT), P = 80%")


@dataclass(kw_only=True)
class Hit:
    """One retrieved chunk for one query."""

    id: str = doc("the chunk's id (DOC_ID#N)")
    doc_id: str = doc("its document's id")
    score: float = doc("the retriever's score (higher: more relevant)")
    rank: int = doc("1 for the best chunk")


class Knowledge:
    """A knowledge base's chunks and their index under one retriever and its settings."""

    def __init__(self, kb: KnowledgeBase, chunks: list[Chunk], retriever: Any, settings: dict[str, Any]) -> None:
        if not chunks:
            raise BadInput(f"empty knowledge base: {kb.path} has no chunk to retrieve", field="data.knowledge")
        self.kb = kb
        self.chunks = chunks
        self.by_id = {c.id: c for c in chunks}
        self.retriever = retriever
        self.settings = settings
        fingerprint = getattr(retriever, "fingerprint", None)
        self.key = sha256_json({"v": CACHE_VERSION, "retriever": retriever.name, "settings": settings,
                                "fingerprint": fingerprint(settings) if callable(fingerprint) else None,
                                "chunks": [[c.id, c.title, c.text] for c in chunks]})
        self.cached = False
        self.index = self._load_or_build()

    def _load_or_build(self) -> Any:
        from ftharness.paths import cache_dir

        can_cache = callable(getattr(self.retriever, "load", None))
        folder = cache_dir() / "retrieval" / self.key
        if can_cache and (folder / "done").is_file():
            self.cached = True
            return self.retriever.load(folder / "index", self.settings)
        index = self.retriever.index([c.text if not c.title else f"{c.title}\n{c.text}" for c in self.chunks],
                                     self.settings)
        if can_cache and callable(getattr(index, "save", None)):
            _save_atomically(index, folder)
        return index

    def search(self, queries: list[str], k: int) -> list[list[Hit]]:
        """The top ``k`` chunks for each query, best first."""
        results = self.index.search(list(queries), k)
        if len(results) != len(queries):
            raise BadInput(f"retriever {self.retriever.name} answered {len(results)} result lists for "
                           f"{len(queries)} queries", field="retrieval.retriever")
        out = []
        for hits in results:
            row = []
            for rank, (pos, score) in enumerate(hits, start=1):
                c = self.chunks[int(pos)]
                row.append(Hit(id=c.id, doc_id=c.doc_id, score=float(score), rank=rank))
            out.append(row)
        return out

    def describe(self) -> str:
        describe = getattr(self.retriever, "describe", None)
        return describe(self.settings) if callable(describe) else self.retriever.name


def _save_atomically(index: Any, folder: Path) -> None:
    """Save into a fresh folder beside the cache entry, then move it into place; a concurrent writer's
    entry, if it lands first, is kept."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
    try:
        (tmp / "index").mkdir()
        index.save(tmp / "index")
        (tmp / "done").write_text("1", encoding="utf-8")
        with contextlib.suppress(OSError):  # another process cached it first: its entry is kept
            os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def build_knowledge(kb: KnowledgeBase, tokenizer: Any, chunking: ChunkingSpec, retrieval: RetrievalSpec) -> Knowledge:
    """The index of ``kb`` under the retriever ``retrieval`` names (checked: it exists and can run here)."""
    from ftharness.errors import EnvironmentProblem
    from ftharness.plugins import get_plugins

    plugins = get_plugins()
    retriever = plugins.retriever(retrieval.retriever)
    why = plugins.unavailable_reason("retrievers", retrieval.retriever)
    if why:
        raise EnvironmentProblem(f"retriever {retrieval.retriever} cannot run here: {why}")
    return Knowledge(kb, chunk_documents(kb, tokenizer, chunking), retriever, retrieval.settings)


# --- the prompt --------------------------------------------------------------------------------------------

def context_text(knowledge: Knowledge, hits: list[Hit]) -> str:
    """The chunks of ``hits`` (best first) as the template shows them: best last."""
    parts = []
    for h in reversed(hits):
        c = knowledge.by_id[h.id]
        parts.append(CHUNK_TEMPLATE.format(id=c.id, title=c.title or "", text=c.text).replace("] \n", "]\n"))
    return "\n\n".join(parts)


def with_context(context: str, text: str) -> str:
    """A user turn's ``text`` with the retrieved ``context`` (:func:`context_text`) before it."""
    return CONTEXT_TEMPLATE.format(header=HEADER, chunks=context, input=text)


def augment(example: Example, knowledge: Knowledge, hits: list[Hit]) -> Example:
    """``example`` with the chunks of ``hits`` as its context (``Example.context``): the prompt builder
    (``ftharness.baselines.example_turns``) renders them into its last user turn through
    :func:`with_context`, for training and serving alike. Its input (``input_text``) is unchanged."""
    return dataclasses.replace(example, context=context_text(knowledge, hits))


def retrieve_rows(knowledge: Knowledge, examples: list[Example], k: int) -> list[list[Hit]]:
    """Each example's top ``k`` chunks, its input the query."""
    return knowledge.search([e.input_text for e in examples], k)


def served_rows(knowledge: Knowledge, examples: list[Example], k: int) -> tuple[list[Example], list[list[Hit]]]:
    """The examples as a retrieving option reads them when served, and what each retrieved."""
    hits = retrieve_rows(knowledge, examples, k)
    return [augment(e, knowledge, h) for e, h in zip(examples, hits, strict=True)], hits


def raft_rows(knowledge: Knowledge, examples: list[Example], r: RetrievalSpec, seed: int, *,
              source: Any = None, field: str = "retrieval") -> list[Example]:
    """RAFT training rows (see the module's docstring). Every row needs gold document ids that the knowledge
    base holds: BadInput naming the data file and line otherwise."""
    n = int(r.distractors or 0)
    # deep enough to find n chunks of other documents, and the gold document's best-ranked chunk
    hits = retrieve_rows(knowledge, examples, min(4 * (n + 1) + 4, len(knowledge.chunks)))
    docs = {d.id for d in knowledge.kb.documents}
    first_chunk = {}
    for c in knowledge.chunks:
        first_chunk.setdefault(c.doc_id, c.id)
    rng = random.Random(seed)
    out = []
    for e, row in zip(examples, hits, strict=True):
        gold = check_gold(e, docs, knowledge.kb.path, source=source)  # checked at task load too
        keep_gold = rng.random() < r.oracle_fraction
        ranked_gold = [h for h in row if h.doc_id in gold]
        gold_hit = ranked_gold[0] if ranked_gold else Hit(id=first_chunk[gold[0]], doc_id=gold[0], score=0.0, rank=0)
        others = [h for h in row if h.doc_id not in gold]
        if len(others) < n + 1:  # a small base: the rest of the chunks, in order
            seen = {h.id for h in others}
            others += [Hit(id=c.id, doc_id=c.doc_id, score=0.0, rank=0) for c in knowledge.chunks
                       if c.doc_id not in gold and c.id not in seen]
        context = ([gold_hit] + others[:n]) if keep_gold else others[: n + 1]
        random.Random(f"{seed}:{e.input_text}").shuffle(context)
        out.append(augment(e, knowledge, context))
    return out
