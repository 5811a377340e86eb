"""General text: the reference the forgetting metric scores, and the text replay trains on.

A reference is a list of documents, each in exactly one **part**:

- ``test``: what the forgetting gate on the eval run is judged on;
- ``selection``: what a sweep reads to choose its point (never the test part, so the gate's figure is
  not the best of several draws of the same text);
- ``replay``: general text a candidate may train on (``replay: {source: general}``); never scored.

The bundled reference (:data:`BUNDLED`, built by ``scripts/general_reference.py``, source and licence in
``general_reference.md`` beside it) is the prose of the Python documentation that ships with CPython,
split once into the three parts by the order of the sha256 of each document's id.

A user's own reference (``forgetting.reference``) is either a JSONL file (one document per record: a
``text`` string, optional ``id`` and ``part``) or a text file whose documents are separated by blank
lines. A document without a ``part`` goes to ``selection`` when the first 8 hex digits of the sha256 of
its text, read as a number, are divisible by :data:`SELECTION_EVERY`, and to ``test`` otherwise: one
document in four chooses, three judge, and the split is the same on every machine. Empty documents are
dropped; a reference with no document in the asked part is a BadInput naming the file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ftharness.errors import BadInput
from ftharness.paths import package_data

PARTS = ("test", "selection", "replay")
SELECTION_EVERY = 4  # one document in four of a user's reference goes to selection (see above)


def bundled() -> Path:
    """The bundled general-text reference (JSONL, every row with its part)."""
    return package_data("suites", "data", "general_reference.jsonl")


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    part: str
    title: str = ""


def part_of(text: str) -> str:
    """The part of a document that does not name one (the module docstring's rule)."""
    return "selection" if int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16) % SELECTION_EVERY == 0 \
        else "test"


def read_documents(path: str | Path | None = None, *, field: str | None = None) -> list[Document]:
    """Every document of a reference (the bundled one when ``path`` is None), each with its part."""
    file = Path(path) if path else bundled()
    if not file.is_file():
        raise BadInput("general-text reference not found", file=file, field=field)
    docs: list[Document] = []
    if file.suffix.lower() in (".jsonl", ".json"):
        from ftharness.data.loading import read_records

        for line, r in read_records(file):
            text = r.get("text")
            if not isinstance(text, str):
                raise BadInput("each record needs a 'text' string", file=file, line=line, field="text")
            part = r.get("part")
            if part is not None and part not in PARTS:
                raise BadInput(f"part must be one of {', '.join(PARTS)}", file=file, line=line, field="part")
            if text.strip():
                title = r.get("title") if isinstance(r.get("title"), str) else ""
                docs.append(Document(str(r.get("id", line)), text.strip(), part or part_of(text.strip()), title))
    else:
        from ftharness.io import read_user_text

        for i, block in enumerate(read_user_text(file).split("\n\n")):
            if block.strip():
                docs.append(Document(str(i), block.strip(), part_of(block.strip())))
    if not docs:
        raise BadInput("the general-text reference is empty", file=file, field=field)
    return docs


def documents(path: str | Path | None, part: str | None, *, field: str | None = None) -> list[str]:
    """The texts of one part of a reference (``part`` None: the test and selection parts together)."""
    docs = read_documents(path, field=field)
    chosen = [d.text for d in docs if (d.part == part if part else d.part != "replay")]
    if not chosen:
        raise BadInput(f"the general-text reference has no document in its {part} part",
                       file=Path(path) if path else bundled(), field=field)
    return chosen
