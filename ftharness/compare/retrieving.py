"""What the options of a comparison that retrieve read: their knowledge bases, indexed once each, and
their rows with the chunks each input retrieves (``ftharness.retrieval``).

:class:`Retrieval` is the experiment's view of retrieval: an option's eval rows as served (``view``), a
retrieving baseline's shots (``prompt_data``), a retrieval-augmented candidate's training and validation
rows (``training_data``: as served, or RAFT's), what a samples row keeps (``row_fields``) and the option's
record (``record``). Served rows read the task's ``data.knowledge``; a candidate's training rows and its
validation read its own ``retrieval.knowledge`` where it names one, so it can be judged on facts that changed
after it was trained.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ftharness.io import sha256_json
from ftharness.report.records import RetrievalRecord


def hit_fields(h: Any) -> dict[str, Any]:
    """A retrieved chunk as a samples row keeps it."""
    return {"id": h.id, "doc_id": h.doc_id, "score": round(h.score, 6)}


class Retrieval:
    """The retrieval side of one experiment (see the module's docstring)."""

    def __init__(self, task: Any, backend: Any, phases: Any, events: list[str]) -> None:
        self.task = task
        self.backend = backend
        self.phases = phases
        self.events = events
        self._knowledge: dict[str, Any] = {}  # indexed knowledge bases, by path, retriever and settings

    def knowledge_for(self, option: Any, *, training: bool = False) -> Any | None:
        """The indexed knowledge base a retrieving option reads (None for one that retrieves nothing): when
        served, the task's ``data.knowledge``; in training (its rows and validation), a candidate's own
        ``retrieval.knowledge`` where it names one. Indexed once per path, retriever and settings."""
        r = getattr(option.entry, "retrieval", None)
        if r is None:
            return None
        own = self.task.training_knowledge.get(option.name) if training else None
        path = own or self.task.knowledge_path
        field = f"candidates.{option.name}.retrieval.knowledge" if own else "data.knowledge"
        key = sha256_json([str(path), r.retriever, r.settings])
        if key not in self._knowledge:
            with self.phases("index knowledge", option.name):
                kn = self.backend.knowledge(path, r, field)
            self.events.append(f"{'reused the' if kn.cached else 'built the'} {r.retriever} index of {path.name} "
                               f"({len(kn.chunks)} chunks)")
            self._knowledge[key] = kn
        return self._knowledge[key]

    def view(self, option: Any, examples: list[Any], *, training: bool = False) -> tuple[list[Any], list[Any] | None]:
        """``examples`` as the option reads them: for a retrieving option each with the top ``k`` chunks its
        input retrieves as its context, and those hits; else the examples and None."""
        from ftharness.retrieval import served_rows

        knowledge = self.knowledge_for(option, training=training)
        if knowledge is None:
            return examples, None
        return served_rows(knowledge, examples, option.entry.retrieval.k)

    def prompt_data(self, option: Any, data: Any) -> Any:
        """The data an option's prompt draws its shots from: a retrieving baseline's shots show the chunks
        their own inputs retrieve, as its eval rows do."""
        entry = option.entry
        if option.kind != "baseline" or entry.retrieval is None or entry.prompt_kind == "zero-shot":
            return data
        train = dataclasses.replace(data.train, examples=self.view(option, data.train.examples)[0])
        return dataclasses.replace(data, train=train)

    def training_data(self, option: Any, data: Any) -> Any:
        """A retrieval-augmented candidate's training and validation rows: each with the chunks its input
        retrieves, as served (or, with ``distractors:``, RAFT's gold and distractor chunks for the training
        rows; validation rows always as served)."""
        from ftharness.retrieval import raft_rows, served_rows

        r = option.entry.retrieval
        if r is None or option.spec["data"] != "train":
            return data
        kn = self.knowledge_for(option, training=True)
        if r.distractors is not None:
            fit = raft_rows(kn, data.fit.examples, r, option.spec["seed"], source=self.task.train_path)
        else:
            fit = served_rows(kn, data.fit.examples, r.k)[0]
        validation = data.validation
        if validation is not None:
            validation = dataclasses.replace(validation, examples=served_rows(kn, validation.examples, r.k)[0])
        return dataclasses.replace(data, fit=dataclasses.replace(data.fit, examples=fit), validation=validation)

    def record(self, option: Any) -> RetrievalRecord | None:
        """How a retrieving option retrieved, for its record and the report."""
        r = getattr(option.entry, "retrieval", None)
        if r is None:
            return None
        kn = self.knowledge_for(option)
        own = self.task.training_knowledge.get(option.name)
        return RetrievalRecord(
            retriever=r.retriever,
            description=kn.describe(),
            k=r.k,
            settings=dict(r.settings),
            knowledge=str(self.task.knowledge_path),
            knowledge_sha256=kn.kb.sha256,
            documents=len(kn.kb),
            chunks=len(kn.chunks),
            chunking=dataclasses.asdict(self.task.spec.chunking),
            training_knowledge=str(own) if own else None,
            distractors=r.distractors if option.kind == "candidate" else None,
            oracle_fraction=r.oracle_fraction if option.kind == "candidate" and r.distractors is not None else None,
        )

    def rows_fields(self, option: Any, hits: list[list[Any]] | None, *,
                    training: bool = False) -> list[dict[str, Any]] | None:
        """What each row keeps of what its prompt retrieved (samples files, the suites' samples): the chunks'
        ids and scores, and their text; None for an option that retrieves nothing."""
        from ftharness.retrieval import context_text

        if hits is None:
            return None
        knowledge = self.knowledge_for(option, training=training)
        return [{"retrieved": [hit_fields(h) for h in row], "context": context_text(knowledge, row)} for row in hits]
