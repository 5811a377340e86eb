"""The ``bm25`` retriever: the embedded default, lexical ranking of a knowledge base's chunks.

Okapi BM25 (Robertson and Zaragoza 2009, "The Probabilistic Relevance Framework: BM25 and Beyond") through
``bm25s`` (Lu 2024, "BM25S: Orders of magnitude faster lexical search via eager sparse scoring"): numpy and
scipy, no server, an index that saves to a folder (what the index cache needs). Why bm25s, measured by
``benchmarks/retrieval.py`` (the same 10,000 chunks and 500 queries for each library, in one run; README,
"Benchmarks"):

- ``rank-bm25`` scores every chunk in a Python loop per query term: 27 queries a second against bm25s's
  2,435 (about 90 times slower), too slow for a knowledge base of tens of thousands of chunks;
- ``tantivy`` (Rust) indexes about 4 times and queries about 1.4 times faster than bm25s, but fixes ``k1``
  at 1.2 from Python and stores document lengths in one byte (its top-10 agrees with bm25s's at 0.94);
  bm25s computes the published formula, with ``k1``, ``b`` and the variant settable, and this retriever
  (every chunk scored, ties broken by position) answers about 1,600 queries a second on the 2-core CPU,
  far more than a run generates answers (a few a second for the embedded model), so its speed costs a
  comparison nothing.

Text is lower-cased and split into word characters (``\\w+``, so model numbers such as "x2" and prices
such as "129" stay tokens), and English stopwords are dropped (bm25s's list), the same for chunks and
queries. The settings' defaults are the usual ones: ``k1 = 1.5`` and ``b = 0.75`` (Robertson and Zaragoza
2009, section 3.4.2; bm25s's defaults), the ``lucene`` IDF variant (bm25s's default; Kamphuis et al. 2020,
"Which BM25 Do You Mean?", compare the variants and find their differences small).

A search scores every chunk and breaks ties by position, so the ranking is deterministic; a query sharing
no word with the knowledge base still gets ``k`` chunks, all scored 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftharness.hookspecs import hookimpl
from ftharness.suites.settings import settings_dict
from ftharness.typed import from_mapping, spec

_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass
class Bm25Settings:
    k1: float = spec(1.5, ge=0, help="term-frequency saturation (Robertson and Zaragoza 2009; bm25s's default)")
    b: float = spec(0.75, ge=0, le=1, help="length normalisation (Robertson and Zaragoza 2009; bm25s's default)")
    method: str = spec("lucene", choices=("lucene", "robertson", "atire", "bm25l", "bm25+"),
                       help="the BM25 variant (bm25s's names; Kamphuis et al. 2020)")
    stopwords: bool = spec(True, help="drop English stopwords (bm25s's list) from chunks and queries")


def tokenize(text: str, stopwords: frozenset[str]) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in stopwords]


def _stopwords(settings: dict[str, Any]) -> frozenset[str]:
    if not settings.get("stopwords", True):
        return frozenset()
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


class Bm25Index:
    """A bm25s index over the chunks, searched with the same tokenisation."""

    def __init__(self, model: Any, n: int, settings: dict[str, Any]) -> None:
        self.model = model
        self.n = n
        self.settings = settings
        self._stop = _stopwords(settings)

    def search(self, queries: list[str], k: int) -> list[list[tuple[int, float]]]:
        import numpy as np

        k = min(k, self.n)
        positions = np.arange(self.n)
        out = []
        for q in queries:
            tokens = [t for t in tokenize(q, self._stop) if t in self.model.vocab_dict]
            scores = self.model.get_scores(tokens) if tokens else np.zeros(self.n)
            order = np.lexsort((positions, -np.asarray(scores, dtype=float)))[:k]
            out.append([(int(i), float(scores[i])) for i in order])
        return out

    def save(self, folder: Path) -> None:
        self.model.save(str(folder))
        (Path(folder) / "ftharness-n.txt").write_text(str(self.n), encoding="utf-8")


class Bm25Retriever:
    name = "bm25"

    def unavailable_reason(self) -> str | None:
        import importlib.util

        if importlib.util.find_spec("bm25s") is None:
            return "needs the bm25s package: pip install 'ftharness[eval]' (or pip install bm25s)"
        return None

    def check_settings(self, settings: dict[str, Any], *, source: str | Path | None = None) -> dict[str, Any]:
        return settings_dict(from_mapping(Bm25Settings, settings, source=source, prefix="retrieval.settings."))

    def describe(self, settings: dict[str, Any]) -> str:
        s = {**settings_dict(Bm25Settings()), **settings}
        return f"BM25 ({s['method']}, k1={s['k1']:g}, b={s['b']:g}; bm25s), word tokens, lower-cased"

    def index(self, texts: list[str], settings: dict[str, Any]) -> Bm25Index:
        import bm25s

        s = {**settings_dict(Bm25Settings()), **settings}
        stop = _stopwords(s)
        # an empty chunk (all stopwords) still holds its place: a token no query can contain stands in
        corpus = [tokenize(t, stop) or ["\x00"] for t in texts]
        model = bm25s.BM25(k1=s["k1"], b=s["b"], method=s["method"])
        model.index(corpus, show_progress=False)
        return Bm25Index(model, len(texts), s)

    def load(self, folder: Path, settings: dict[str, Any]) -> Bm25Index:
        import bm25s

        s = {**settings_dict(Bm25Settings()), **settings}
        n = int((Path(folder) / "ftharness-n.txt").read_text(encoding="utf-8"))
        return Bm25Index(bm25s.BM25.load(str(folder)), n, s)


@hookimpl
def register_retrievers(register) -> None:
    register(Bm25Retriever())
