"""BM25 library choice: ``bm25s`` (the embedded ``bm25`` retriever's) against ``rank-bm25`` and ``tantivy``.

Same 10,000-chunk corpus, same 500 queries, same tokenisation, in one run. For each library it prints the
index build time and chunks indexed per second, the query throughput (500 queries, top-10 each) and how far
its ranking agrees with bm25s's: the mean overlap of the top-10 sets (|A & B| / 10) and the share of queries
whose top-1 chunk is the same. BM25 variants differ in their IDF, their k1 and their document-length
encoding (Kamphuis et al. 2020, "Which BM25 Do You Mean? A Large-Scale Reproducibility Study of Scoring
Variants", ECIR), so the agreement is expected to be high but not 1. Each query comes from one chunk, so it
also prints the share of queries whose source chunk is in the top-10 (a rough check that all three retrieve).

Libraries, each with its own defaults: bm25s ``BM25()`` (lucene variant, k1 1.5, b 0.75, numpy backend,
``retrieve(n_threads=0)``: one thread); rank-bm25 ``BM25Okapi`` (k1 1.5, b 0.75, Robertson IDF with a floor
for common words; top-10 by ``np.argpartition`` of ``get_scores``); tantivy (Rust; an in-RAM index with one
text field and an integer id as a fast field, a writer with one thread, then
``searcher.search(index.parse_query(q), 10)``; its BM25 has k1 1.2, b 0.75 and document lengths stored in
one byte). All three index the same tokens: the text is lower-cased and split into ``\\w+`` words and
bm25s's English stopwords are dropped (the ``bm25`` retriever plugin's tokenisation); tantivy gets the
tokens joined by spaces and its ``whitespace`` tokenizer, so it indexes the same terms. Tokenising is done
once and is outside the timings.

Corpus, built here, no download: the English prose every Python ships (``pydoc_data.topics``, the language
reference's topics, PSF licence) cut into windows of about 80 words, topped up to 10,000 chunks with
synthetic product-support paragraphs of 60-120 words from ``random.Random(0)``. Queries: half are 8-word
spans of the prose chunks, half are questions naming a synthetic product and its fault; ``random.Random(1)``.
The prose differs slightly between Python versions, so compare runs on one interpreter.

Each timed part (building the index, answering all queries) runs 3 times; min and median are printed.
Run it on a quiet machine: the figures are wall times.

    .venv/bin/python benchmarks/retrieval.py                  # all installed libraries, 3 runs
    .venv/bin/python benchmarks/retrieval.py --json out.json  # also write the figures

bm25s is required (exit 2 without it); rank-bm25 and tantivy are compared when installed
(``pip install rank-bm25 tantivy``).
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import importlib.util
import json
import os
import platform
import random
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHUNKS = 10_000
QUERIES = 500
K = 10
WINDOW = 80
MIN_WORDS, MAX_WORDS = 60, 120
SPAN = 8
INSTALL = "pip install rank-bm25 tantivy"
_WORD = re.compile(r"\w+", re.UNICODE)

# The libraries (module, distribution), in the order they are reported; bm25s first: the agreement baseline.
LIBRARIES = {"bm25s": ("bm25s", "bm25s"), "rank-bm25": ("rank_bm25", "rank-bm25"), "tantivy": ("tantivy", "tantivy"),
             "ftharness bm25": ("bm25s", "bm25s")}  # the last: the project's retriever on bm25s, as a run uses it


# ---------------------------------------------------------------- corpus


_SYLLABLES = ("ar", "bel", "cor", "dan", "el", "fen", "gal", "hel", "ir", "jun", "kal", "lum", "mor", "nel",
              "or", "pra", "quin", "ros", "sol", "tor", "ul", "ven", "wex", "yar", "zen", "bri", "cas", "dro")
_KINDS = ("router", "thermostat", "headphones", "printer", "smartwatch", "blender", "vacuum cleaner",
          "camera", "speaker", "monitor", "keyboard", "e-bike", "doorbell", "projector", "dishwasher",
          "kettle", "tablet", "scanner", "air purifier", "dehumidifier", "baby monitor", "label printer",
          "webcam", "soundbar",
          "charger", "coffee machine", "drone", "heat pump", "smoke alarm", "garage opener")
_COMPONENTS = ("battery", "power adapter", "display", "fan", "firmware", "Wi-Fi module", "Bluetooth radio",
               "filter", "motor", "sensor", "touch panel", "charging port", "hinge", "cable", "mainboard",
               "speaker grille", "lid", "power button", "memory card", "antenna", "water tank",
               "thermal fuse", "remote control", "docking station", "pump", "heating element", "lens",
               "gasket")
_SYMPTOMS = ("does not turn on", "restarts every few minutes", "shows a blinking red light",
             "keeps losing its connection", "makes a rattling noise", "overheats during use",
             "drains the battery overnight", "will not pair with the app", "freezes on the start screen",
             "reports a sensor fault", "charges very slowly", "stops responding to buttons",
             "prints faded pages", "drops audio in one channel", "shows the wrong time", "leaks water",
             "smells of burnt plastic", "beeps three times at start-up", "cannot find the network",
             "switches off when unplugged", "vibrates loudly", "reports low pressure", "blows cold air",
             "loses its settings after a power cut", "flickers at low brightness")
_ACTIONS = ("hold the reset button for ten seconds", "update the firmware from the companion app",
            "unplug the unit for one minute", "clean the contacts with a dry cloth",
            "run the built-in self test", "reinstall the companion app",
            "move the unit closer to the base station", "restore the factory settings",
            "check the fuse in the plug",
            "recalibrate the sensor in the settings menu", "tighten the screws on the back panel",
            "descale the unit with citric acid", "try a different wall socket",
            "disable power saving in the advanced menu", "replace the batteries of the remote")
_FINDINGS = ("showed signs of corrosion", "was working as specified", "had a loose connector",
             "was cracked near the mounting clip", "was clogged with dust", "reported an internal error",
             "had been replaced by a third party", "was swollen and had to be removed")
_RESOLUTIONS = ("resolved remotely", "solved by a firmware update", "fixed by replacing the unit",
                "closed without a reply from the customer", "escalated to the engineering team",
                "refunded under the warranty", "resolved at the service centre")
_NAMES = ("Anna", "Ben", "Chiara", "Dmitri", "Elif", "Farah", "Goran", "Hana", "Ivan", "Jonas", "Kiri",
          "Lea", "Mateo", "Nora", "Omar", "Priya", "Quentin", "Rosa", "Sven", "Tomas", "Ula", "Viktor", "Wen",
          "Yusuf")
_CITIES = ("Oslo", "Lyon", "Porto", "Graz", "Leeds", "Turku", "Gdansk", "Bilbao", "Utrecht", "Bergen",
           "Malmo", "Brno", "Cork", "Lille", "Basel", "Aarhus", "Turin", "Riga", "Ghent", "Split")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")
_CHANNELS = ("email", "phone", "chat", "post", "text message")
_TEMPLATES = (
    "Ticket {ticket} was opened by {name} from {city}, who bought the unit in {month} {year}.",
    "The {component} was inspected by the technician and {finding}.",
    "Support advised the customer to {action}.",
    "If that does not help, {action2} and then contact the service centre in {city2}.",
    "Error code {code} appears on the display whenever the {component2} is in use.",
    "The unit cost {price} euros and is covered by a {warranty}-year warranty from the date of purchase.",
    "Firmware {fw} is installed on the device; the latest release is {fw2}.",
    "A replacement {component} costs {price2} euros and ships within {days} working days.",
    "The case was {resolution} after {days2} days.",
    "Similar reports mention the {component2} when the room is warmer than {temp} degrees.",
    "The customer prefers to be contacted by {channel} between {h1} and {h2} o'clock.",
    "According to page {page} of the manual, the {component2} should be checked every {months} months.",
    "The {kind} is sold with a {length} metre cable and a {volt} volt power supply.",
    "This {brand} model shares its {component} with the older {model2} series.",
)
_QUESTIONS = (
    "My {brand} {kind} {model} {symptom}, what should I do?",
    "Why does the {brand} {model} {kind} {symptom}?",
    "How do I fix a {brand} {kind} that {symptom}?",
    "{brand} {model} {symptom}: is the {component} covered by the warranty?",
)


def _model_code(rng: random.Random) -> str:
    return f"{rng.choice('ABCDEFGHJKLMNPRSTVXZ')}{rng.choice('ABCDEFGHJKLMNPRSTVXZ')}-{rng.randint(100, 999)}"


def support_paragraph(rng: random.Random, ticket: int) -> tuple[str, str]:
    """One synthetic product-support paragraph of 60-120 words and a question that names its product."""
    s = {
        "brand": "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize(),
        "kind": rng.choice(_KINDS), "model": _model_code(rng), "model2": _model_code(rng),
        "symptom": rng.choice(_SYMPTOMS), "component": rng.choice(_COMPONENTS),
        "component2": rng.choice(_COMPONENTS), "finding": rng.choice(_FINDINGS),
        "action": rng.choice(_ACTIONS),
        "action2": rng.choice(_ACTIONS), "resolution": rng.choice(_RESOLUTIONS), "name": rng.choice(_NAMES),
        "city": rng.choice(_CITIES), "city2": rng.choice(_CITIES), "month": rng.choice(_MONTHS),
        "year": rng.randint(2015, 2024), "ticket": ticket,
        "code": f"E{rng.randint(10, 99)}{rng.randint(0, 9)}",
        "price": rng.randint(19, 899), "price2": rng.randint(5, 199), "warranty": rng.choice((1, 2, 3, 5)),
        "fw": f"{rng.randint(1, 6)}.{rng.randint(0, 19)}.{rng.randint(0, 9)}",
        "fw2": f"{rng.randint(1, 6)}.{rng.randint(0, 19)}.{rng.randint(0, 9)}", "days": rng.randint(2, 14),
        "days2": rng.randint(1, 40), "temp": rng.randint(25, 40), "channel": rng.choice(_CHANNELS),
        "h1": rng.randint(8, 12), "h2": rng.randint(13, 20), "page": rng.randint(4, 96),
        "months": rng.choice((3, 6, 12, 24)), "length": rng.choice((1, 1.5, 2, 3)),
        "volt": rng.choice((5, 12, 24)),
    }
    target = rng.randint(MIN_WORDS, MAX_WORDS)
    sentences = [f"Customer reports that the {s['brand']} {s['kind']} {s['model']} {s['symptom']}."]
    words = len(sentences[0].split())
    rest = list(_TEMPLATES)
    rng.shuffle(rest)
    for template in rest:
        sentence = template.format(**s)
        n = len(sentence.split())
        if words + n > MAX_WORDS:
            continue
        sentences.append(sentence)
        words += n
        if words >= target:
            break
    return " ".join(sentences), rng.choice(_QUESTIONS).format(**s)


def prose_chunks() -> list[str]:
    """The pydoc topics cut into even windows of about 80 words (60-120); topics under 60 words are left out.

    The ``topics`` dict is the prose ``help()`` shows for keywords and topics (PSF licence).
    """
    from pydoc_data.topics import topics

    chunks = []
    for name in sorted(topics):
        words = topics[name].split()
        if len(words) < MIN_WORDS:
            continue
        n = max(1, round(len(words) / WINDOW))
        bounds = [round(i * len(words) / n) for i in range(n + 1)]
        chunks.extend(" ".join(words[a:b]) for a, b in zip(bounds, bounds[1:], strict=False))
    return chunks


@dataclass
class Corpus:
    chunks: list[str]
    queries: list[str]
    sources: list[int]  # the chunk each query was made from
    prose: int
    synthetic: int
    span_queries: int
    question_queries: int


def build_corpus(n_chunks: int, n_queries: int, stop: frozenset[str]) -> Corpus:
    prose = prose_chunks()[:n_chunks]
    rng = random.Random(0)
    synthetic = [support_paragraph(rng, 10_000 + i) for i in range(n_chunks - len(prose))]
    chunks = prose + [text for text, _ in synthetic]
    qrng = random.Random(1)
    n_questions = min(n_queries // 2, len(synthetic))
    n_spans = n_queries - n_questions
    queries: list[str] = []
    sources: list[int] = []
    while len(queries) < n_spans:
        i = qrng.randrange(len(prose))
        words = prose[i].split()
        start = qrng.randrange(len(words) - SPAN + 1)
        span = " ".join(words[start:start + SPAN])
        if len(tokenize(span, stop)) >= 3:  # a span of stopwords only would be no query
            queries.append(span)
            sources.append(i)
    for j in qrng.sample(range(len(synthetic)), n_questions):
        queries.append(synthetic[j][1])
        sources.append(len(prose) + j)
    return Corpus(chunks, queries, sources, len(prose), len(synthetic), n_spans, n_questions)


def tokenize(text: str, stop: frozenset[str]) -> list[str]:
    """The shared tokenisation: lower-cased ``\\w+`` words, stopwords dropped."""
    return [w for w in _WORD.findall(text.lower()) if w not in stop]


# ---------------------------------------------------------------- the libraries


@dataclass
class Library:
    name: str
    version: str
    build: Callable[[Any], Any]  # from what ``prepare`` made of the tokens to a searchable index
    search: Callable[[Any, list[list[str]]], list[list[int]]]  # top-K chunk numbers, best first
    prepare: Callable[[list[list[str]]], Any] = lambda docs: docs  # untimed, like the tokenising


def _bm25s() -> Library:
    import bm25s

    def build(docs: list[list[str]]) -> Any:
        retriever = bm25s.BM25()
        retriever.index(docs, show_progress=False)
        return retriever

    def search(retriever: Any, queries: list[list[str]]) -> list[list[int]]:
        docs, _ = retriever.retrieve(queries, k=K, show_progress=False)
        return docs.tolist()

    return Library("bm25s", importlib.metadata.version("bm25s"), build, search)


def _rank_bm25() -> Library:
    import numpy as np
    from rank_bm25 import BM25Okapi

    def search(bm: Any, queries: list[list[str]]) -> list[list[int]]:
        out = []
        for q in queries:
            scores = bm.get_scores(q)
            top = np.argpartition(-scores, K)[:K]
            out.append(top[np.argsort(-scores[top], kind="stable")].tolist())
        return out

    return Library("rank-bm25", importlib.metadata.version("rank-bm25"), BM25Okapi, search)


def _tantivy() -> Library:
    import tantivy

    def build(texts: list[str]) -> tuple[Any, Any]:
        builder = tantivy.SchemaBuilder()
        builder.add_text_field("text", stored=False, tokenizer_name="whitespace", index_option="freq")
        builder.add_integer_field("id", stored=False, indexed=False, fast=True)
        index = tantivy.Index(builder.build())  # no path: in RAM
        writer = index.writer(heap_size=128_000_000, num_threads=1)
        for i, text in enumerate(texts):
            writer.add_document(tantivy.Document(id=i, text=text))
        writer.commit()
        writer.wait_merging_threads()
        index.reload()
        return index, index.searcher()

    def search(built: tuple[Any, Any], queries: list[list[str]]) -> list[list[int]]:
        index, searcher = built
        out = []
        for q in queries:
            hits = searcher.search(index.parse_query(" ".join(q), ["text"]), K).hits
            out.append(searcher.fast_field_values("id", [address for _, address in hits]))
        return out

    def prepare(docs: list[list[str]]) -> list[str]:
        return [" ".join(d) for d in docs]  # tantivy's whitespace tokenizer splits them into the same tokens

    return Library("tantivy", importlib.metadata.version("tantivy"), build, search, prepare)


def _plugin() -> Library:
    """The project's ``bm25`` retriever as a run uses it: bm25s underneath, every chunk scored per query
    (``get_scores``) and ties broken by position, its own tokenising inside the timings."""
    from ftharness_plugins.bm25_retriever import Bm25Retriever

    retriever = Bm25Retriever()

    def build(texts: list[str]) -> Any:
        return retriever.index(texts, retriever.check_settings({}))

    def search(index: Any, queries: list[list[str]]) -> list[list[int]]:
        return [[pos for pos, _ in hits] for hits in index.search([" ".join(q) for q in queries], K)]

    return Library("ftharness bm25", importlib.metadata.version("bm25s"), build, search,
                   lambda docs: [" ".join(d) for d in docs])


_FACTORIES: dict[str, Callable[[], Library]] = {"bm25s": _bm25s, "rank-bm25": _rank_bm25, "tantivy": _tantivy,
                                                "ftharness bm25": _plugin}


# ---------------------------------------------------------------- measuring


@dataclass
class Figures:
    name: str
    version: str
    build_s: list[float] = field(default_factory=list)
    query_s: list[float] = field(default_factory=list)
    overlap: float = 0.0
    same_top1: float = 0.0
    source_at_10: float = 0.0

    def summary(self, chunks: int, queries: int) -> dict[str, Any]:
        b_min, b_med = min(self.build_s), statistics.median(self.build_s)
        q_min, q_med = min(self.query_s), statistics.median(self.query_s)
        return {"library": self.name, "version": self.version,
                "build_s": {"min": round(b_min, 4), "median": round(b_med, 4),
                            "runs": [round(x, 4) for x in self.build_s]},
                "chunks_per_s": {"at_min": round(chunks / b_min, 1), "at_median": round(chunks / b_med, 1)},
                "query_s": {"min": round(q_min, 4), "median": round(q_med, 4),
                            "runs": [round(x, 4) for x in self.query_s]},
                "queries_per_s": {"at_min": round(queries / q_min, 1),
                                  "at_median": round(queries / q_med, 1)},
                "top10_overlap_with_bm25s": round(self.overlap, 4),
                "same_top1_as_bm25s": round(self.same_top1, 4),
                "source_in_top10": round(self.source_at_10, 4)}


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def measure(lib: Library, docs: list[list[str]], queries: list[list[str]],
            repeats: int) -> tuple[Figures, list[list[int]]]:
    figures = Figures(lib.name, lib.version)
    inputs = lib.prepare(docs)
    index = None
    for _ in range(repeats):
        index = None  # let the previous index go before the next is built
        seconds, index = timed(lambda: lib.build(inputs))
        figures.build_s.append(seconds)
    lib.search(index, queries[:5])  # warm-up: first-call costs would otherwise land on run 1
    results: list[list[int]] = []
    for _ in range(repeats):
        seconds, results = timed(lambda: lib.search(index, queries))
        figures.query_s.append(seconds)
    return figures, results


def agreement(figures: Figures, results: list[list[int]], baseline: list[list[int]],
              sources: list[int]) -> None:
    n = len(results)
    pairs = list(zip(results, baseline, strict=True))
    figures.overlap = sum(len(set(a) & set(b)) / K for a, b in pairs) / n
    figures.same_top1 = sum(bool(a) and bool(b) and a[0] == b[0] for a, b in pairs) / n
    figures.source_at_10 = sum(s in r for r, s in zip(results, sources, strict=True)) / n


def conclusion(rows: list[dict[str, Any]]) -> str:
    if len(rows) < 2:
        return f"only {rows[0]['library']} is installed, so nothing is compared ({INSTALL})"

    def fastest(key: str, unit: str, what: str) -> str:
        ranked = sorted(rows, key=lambda r: r[key]["at_median"], reverse=True)
        best, second = ranked[0], ranked[1]
        ratio = best[key]["at_median"] / second[key]["at_median"]
        rate = best[key]["at_median"]
        return f"{what}: {best['library']} ({rate:,.0f} {unit}, {ratio:.1f}x {second['library']})"

    return (f"fastest {fastest('chunks_per_s', 'chunks/s', 'indexing')}; "
            f"fastest {fastest('queries_per_s', 'queries/s', 'querying')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=CHUNKS, help=f"corpus size (default {CHUNKS:,})")
    parser.add_argument("--queries", type=int, default=QUERIES, help=f"number of queries (default {QUERIES})")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each timed part (default 3)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.chunks < 2 * K or args.queries < 2 or args.repeats < 1:
        print(f"error: need --chunks >= {2 * K}, --queries >= 2 and --repeats >= 1", file=sys.stderr)
        sys.exit(2)

    if importlib.util.find_spec("bm25s") is None:
        print("error: bm25s is required (the others are compared with it): pip install bm25s",
              file=sys.stderr)
        sys.exit(2)
    names = []
    for name, (module, _) in LIBRARIES.items():
        if importlib.util.find_spec(module) is None:
            print(f"{name} is not installed, so it is left out of the comparison; to include it: {INSTALL}")
        else:
            names.append(name)

    from bm25s.stopwords import STOPWORDS_EN

    stop = frozenset(STOPWORDS_EN)
    corpus = build_corpus(args.chunks, args.queries, stop)
    seconds, docs = timed(lambda: [tokenize(c, stop) or ["\x00"] for c in corpus.chunks])
    queries = [tokenize(q, stop) for q in corpus.queries]
    words = [len(c.split()) for c in corpus.chunks]

    print(f"Python {platform.python_version()} ({platform.python_implementation()}), {platform.system()} "
          f"{platform.machine()}, {os.cpu_count()} CPUs; numpy {importlib.metadata.version('numpy')}; "
          + ", ".join(f"{n} {importlib.metadata.version(LIBRARIES[n][1])}" for n in names))
    print(f"corpus: {len(corpus.chunks):,} chunks of {min(words)}-{max(words)} words "
          f"(mean {statistics.mean(words):.0f}):")
    print(f"  {corpus.prose:,} windows of Python's documentation prose (pydoc_data.topics, PSF licence)")
    print(f"  {corpus.synthetic:,} synthetic product-support paragraphs (random.Random(0))")
    print(f"queries: {len(queries)}, top-{K} each (random.Random(1)):")
    print(f"  {corpus.span_queries} {SPAN}-word spans of the prose chunks")
    print(f"  {corpus.question_queries} questions naming a synthetic product and its fault")
    print(f"tokens: shared, lower-cased \\w+ words minus bm25s's {len(stop)} English stopwords; "
          f"{sum(map(len, docs)):,} in all,")
    print(f"  tokenised once in {seconds:.2f} s, outside the timings")
    times = "once" if args.repeats == 1 else f"{args.repeats} times"
    print(f"each timed part runs {times} (time.perf_counter); wall times: use a quiet machine")
    print()

    all_figures: list[Figures] = []
    baseline: list[list[int]] = []
    for name in names:
        figures, results = measure(_FACTORIES[name](), docs, queries, args.repeats)
        if name == "bm25s":
            baseline = results
        agreement(figures, results, baseline, corpus.sources)
        all_figures.append(figures)
        s = figures.summary(len(docs), len(queries))
        print(f"{name} {figures.version}")
        print(f"  index {len(docs):,} chunks: min {s['build_s']['min']:.3f} s, "
              f"median {s['build_s']['median']:.3f} s = {s['chunks_per_s']['at_min']:,.0f} / "
              f"{s['chunks_per_s']['at_median']:,.0f} chunks/s (min / median)")
        print(f"  {len(queries)} queries, top-{K}: min {s['query_s']['min']:.3f} s, median "
              f"{s['query_s']['median']:.3f} s = {s['queries_per_s']['at_min']:,.0f} / "
              f"{s['queries_per_s']['at_median']:,.0f} queries/s (min / median)")
        print(f"  agreement with bm25s: top-{K} overlap {figures.overlap:.3f}, "
              f"same top-1 {figures.same_top1:.3f}; source chunk in top-{K}: {figures.source_at_10:.3f}")

    rows = [f.summary(len(docs), len(queries)) for f in all_figures]
    print()
    header = (f"{'library':<14} {'version':<7} {'build s':>8} {'chunks/s':>9} {'query s':>8} "
              f"{'queries/s':>9} {'overlap':>7} {'top-1':>6} {'src@10':>6}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['library']:<14} {r['version']:<7} {r['build_s']['median']:>8.3f} "
              f"{r['chunks_per_s']['at_median']:>9,.0f} {r['query_s']['median']:>8.3f} "
              f"{r['queries_per_s']['at_median']:>9,.0f} {r['top10_overlap_with_bm25s']:>7.3f} "
              f"{r['same_top1_as_bm25s']:>6.3f} {r['source_in_top10']:>6.3f}")
    print(f"medians of {args.repeats} run(s); overlap: mean |top-{K} & bm25s's top-{K}| / {K};")
    print(f"top-1: share of queries with bm25s's top-1; src@10: share with their source chunk in the top-{K}")
    line = conclusion(rows)
    print(line)
    if args.json:
        figures_out = {"python": platform.python_version(), "cpus": os.cpu_count(), "chunks": len(docs),
                       "prose_chunks": corpus.prose, "synthetic_chunks": corpus.synthetic,
                       "queries": len(queries), "k": K, "repeats": args.repeats, "libraries": rows,
                       "conclusion": line}
        Path(args.json).write_text(json.dumps(figures_out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
