"""Build ``ftharness/suites/data/general_reference.jsonl``: the general-text reference that the forgetting
metric scores and that replay trains on.

Source: the prose of the Python documentation as every CPython interpreter ships it (the standard
library's ``pydoc_data.topics``, Python 3.11), under the PSF License Agreement (Python documentation
licence; see ``general_reference.md`` beside the data file). Only prose is kept: indented blocks (code,
grammar) and short lines are dropped, each section of a topic becomes one document (its paragraphs
separated by blank lines). A paragraph that already occurs in an earlier document (topics repeat each
other's sections) is left out, so no two documents share a paragraph.

Every document goes to exactly one part, decided once, here, by the order of the sha256 of its id:
``test`` (what the forgetting gate is judged on) until it holds TEST_CHARS characters, then
``selection`` (what a sweep chooses on) until SELECTION_CHARS, then ``replay`` (what ``replay: {source:
general}`` trains on) with the rest. No document is in two parts. Run it with the Python it names to
reproduce the file byte for byte: ``python scripts/general_reference.py``.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "ftharness" / "suites" / "data" / "general_reference.jsonl"
TEST_CHARS = 100_000  # about 23k tokens of the embedded model's tokenizer
SELECTION_CHARS = 30_000  # about 7k tokens
MIN_PARAGRAPH = 80  # characters: shorter lines are headings, signatures or fragments
MIN_DOCUMENT = 300
PROSE_SHARE = 0.85  # letters and spaces among a paragraph's characters
_UNDERLINE = re.compile(r"[*=\-~^]{3,}")


def documents(topics: dict[str, str]) -> list[dict[str, str]]:
    """One document per section of each topic: its title and its prose paragraphs."""
    out, seen = [], set()
    for name, text in sorted(topics.items()):
        sections: list[tuple[str, list[str]]] = []
        title, paragraphs = name, []
        for block in re.split(r"\n\s*\n", text):
            lines = block.split("\n")
            if len(lines) >= 2 and _UNDERLINE.fullmatch(lines[-1].strip()):
                if paragraphs:
                    sections.append((title, paragraphs))
                title, paragraphs = lines[0].strip(), []
                continue
            if block.startswith((" ", "\t")):
                continue  # code and grammar
            flat = " ".join(block.split())  # one line, single spaces: the same paragraph reads the same
            if len(flat) < MIN_PARAGRAPH or sum(c.isalpha() or c == " " for c in flat) / len(flat) < PROSE_SHARE:
                continue
            if flat in seen:
                continue  # topics repeat sections of each other: a paragraph lives in one document only
            seen.add(flat)
            paragraphs.append(flat)
        if paragraphs:
            sections.append((title, paragraphs))
        for i, (head, paras) in enumerate(sections):
            body = "\n\n".join(paras)
            if len(body) >= MIN_DOCUMENT:
                out.append({"id": f"{name}#{i}", "title": head, "text": body})
    return out


def assign_parts(docs: list[dict[str, str]]) -> list[dict[str, str]]:
    ordered = sorted(docs, key=lambda d: hashlib.sha256(d["id"].encode()).hexdigest())
    test = selection = 0
    for d in ordered:
        if test < TEST_CHARS:
            d["part"], test = "test", test + len(d["text"])
        elif selection < SELECTION_CHARS:
            d["part"], selection = "selection", selection + len(d["text"])
        else:
            d["part"] = "replay"
    return ordered


def main() -> None:
    from pydoc_data.topics import topics

    rows = assign_parts(documents(topics))
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    by_part = {p: sum(len(r["text"]) for r in rows if r["part"] == p) for p in ("test", "selection", "replay")}
    print(f"{OUT}: {len(rows)} documents from Python {sys.version.split()[0]}; characters by part {by_part}")


if __name__ == "__main__":
    main()
