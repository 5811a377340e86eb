"""The ``dense`` retriever: chunks and queries as embedding vectors, ranked by their similarity.

The vectors come from a local sentence-transformers model folder (Reimers and Gurevych 2019,
"Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks"), loaded on the CPU from that folder only,
never from a hub; or from an OpenAI-compatible embeddings endpoint (``POST BASE_URL/embeddings`` with
``model`` and ``input``; the answer's ``data[i].embedding`` in the order of ``data[i].index``), called
through the requests, retries and timeouts of :mod:`ftharness.models.endpoint`, the key read from the
environment variable ``api_key_env`` names. Exactly one of the two is set.

With ``normalize`` (the default) every vector is scaled to unit length, so that the dot product is the
cosine similarity, the usual measure for sentence embeddings (Reimers and Gurevych 2019). Models trained
with a marker on each side, such as E5 ("query: " / "passage: "; Wang et al. 2022, "Text Embeddings by
Weakly-Supervised Contrastive Pre-training"), take ``query_prefix`` and ``document_prefix``.

Embeddings are float32 numpy arrays; an index saves them as ``embeddings.npy`` beside ``dense.json`` (its
shape and settings). A search is one matrix product, then a sort by score with ties broken by position
(``np.lexsort``), so the ranking is deterministic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ftharness.errors import BadInput, EnvironmentProblem
from ftharness.hookspecs import hookimpl
from ftharness.models.endpoint import EndpointConfig
from ftharness.suites.settings import settings_dict
from ftharness.typed import from_mapping, like, resolve_path, spec

FIELD = "retrieval.settings"  # where the settings sit in a task file, as errors name them


@dataclass
class EmbeddingEndpoint:
    base_url: str = spec(help="the server's API root, up to and including /v1; POST BASE_URL/embeddings")
    model: str = spec(min_len=1, help="the embedding model's name, as the server knows it")
    api_key_env: str | None = like(EndpointConfig, "api_key_env")
    timeout_s: float = like(EndpointConfig, "timeout_s")
    max_retries: int = like(EndpointConfig, "max_retries")


@dataclass
class DenseSettings:
    model: str | None = spec(None, min_len=1,
                             help="a local sentence-transformers model folder (relative to the task file)")
    endpoint: EmbeddingEndpoint | None = spec(None, help="or an OpenAI-compatible embeddings endpoint")
    batch_size: int = spec(32, ge=1, le=4096, help="texts per forward pass, or per request",
                           source="sentence-transformers' SentenceTransformer.encode default")
    normalize: bool = spec(True, help="unit vectors: the score is the cosine similarity",
                           source="the usual for sentence embeddings (Reimers and Gurevych 2019)")
    query_prefix: str = spec("", help="put before every query (E5: 'query: '; Wang et al. 2022)")
    document_prefix: str = spec("", help="put before every chunk (E5: 'passage: '; Wang et al. 2022)")


def _with_defaults(settings: dict[str, Any]) -> dict[str, Any]:
    return {**settings_dict(DenseSettings()), **settings}


@lru_cache(maxsize=2)
def _st_model(path: str) -> Any:
    if not Path(path).is_dir():
        raise BadInput(f"no model folder at {path}", field=f"{FIELD}.model")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise EnvironmentProblem("the dense retriever's model needs sentence-transformers: pip install "
                                 "'ftharness[eval]' (or pip install sentence-transformers)") from None
    try:
        return SentenceTransformer(path, device="cpu", local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
        why = " ".join(str(e).split())[:300]
        raise BadInput(f"{path} is not a sentence-transformers model folder ({type(e).__name__}: {why})",
                       field=f"{FIELD}.model") from None


def _malformed(answer: Any, n: int, dim: int | None) -> str | None:
    """What is wrong with an embeddings answer for ``n`` texts (vectors of length ``dim`` when known)."""
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
        return "no data list of objects"
    if len(data) != n:
        return f"{len(data)} vectors for {n} texts"
    index = [d.get("index", i) for i, d in enumerate(data)]
    if not all(type(i) is int for i in index) or sorted(index) != list(range(n)):
        return f"data[].index values that are not 0 to {n - 1}"
    for i, d in enumerate(data):
        v = d.get("embedding")
        # abs(x) < 3e38: a finite number that fits a float32 (NaN and infinities fail it)
        if not isinstance(v, list) or not v or not all(type(x) in (int, float) and abs(x) < 3e38 for x in v):
            return f"a data[{i}].embedding that is not a list of numbers"
        dim = dim or len(v)
        if len(v) != dim:
            return f"vectors of different lengths ({dim} and {len(v)})"
    return None


def _from_endpoint(texts: list[str], endpoint: dict[str, Any], batch_size: int) -> Any:
    import numpy as np

    from ftharness.models.endpoint import post_json

    e = EmbeddingEndpoint(**endpoint)
    cfg = EndpointConfig(e.base_url, e.model, 0.0, 0.0, api_key_env=e.api_key_env, concurrency=1,
                         timeout_s=e.timeout_s, max_retries=e.max_retries)
    url = e.base_url.rstrip("/") + "/embeddings"
    out: list[Any] = []
    for start in range(0, len(texts), batch_size):
        batch = texts[start:start + batch_size]
        answer = post_json(cfg, "embeddings", {"model": e.model, "input": batch}, field=f"{FIELD}.endpoint")
        why = _malformed(answer, len(batch), out[0].shape[1] if out else None)
        if why:
            raise EnvironmentProblem(f"embeddings endpoint {url} (model {e.model!r}) answered {why}: "
                                     "is base_url the API root of an OpenAI-compatible embeddings server?")
        data = sorted(enumerate(answer["data"]), key=lambda p: p[1].get("index", p[0]))
        out.append(np.asarray([d["embedding"] for _, d in data], dtype=np.float32))
    return np.concatenate(out)


def embed(texts: list[str], settings: dict[str, Any]) -> Any:
    """One float32 row per text under ``settings`` (complete: :func:`_with_defaults`), unit length when
    ``normalize``."""
    import numpy as np

    if settings.get("endpoint"):
        vectors = _from_endpoint(texts, settings["endpoint"], settings["batch_size"])
    else:
        model = _st_model(str(settings["model"]))
        vectors = model.encode(texts, batch_size=settings["batch_size"], convert_to_numpy=True,
                               show_progress_bar=False)
    vectors = np.asarray(vectors, dtype=np.float32)
    if settings["normalize"]:
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.where(norms > 0, norms, 1)
    return np.ascontiguousarray(vectors, dtype=np.float32)


TIE_DECIMALS = 6  # cosine scores closer than this are ties (float32 carries about 7 significant digits)


class DenseIndex:
    """The chunks' embeddings; queries are embedded when searched."""

    def __init__(self, embeddings: Any, settings: dict[str, Any]) -> None:
        self.embeddings = embeddings
        self.settings = settings

    def search(self, queries: list[str], k: int) -> list[list[tuple[int, float]]]:
        import numpy as np

        n, dim = self.embeddings.shape
        if not queries or n == 0:
            return [[] for _ in queries]
        q = embed([self.settings["query_prefix"] + t for t in queries], self.settings)
        if q.shape[1] != dim:
            raise EnvironmentProblem(f"the dense retriever's queries have {q.shape[1]} dimensions, its index "
                                     f"{dim}: the embedding model changed; clear $FTHARNESS_CACHE/retrieval")
        positions = np.arange(n)
        # Scores equal up to float32 rounding are ties, broken by position: the same text embedded at two
        # places of one batch can come out a few ulps apart (batched kernels reduce rows in different orders).
        return [[(int(i), float(row[i])) for i in np.lexsort((positions, -np.round(row, TIE_DECIMALS)))[:k]]
                for row in q @ self.embeddings.T]

    def save(self, folder: Path) -> None:
        import numpy as np

        np.save(Path(folder) / "embeddings.npy", self.embeddings, allow_pickle=False)
        meta = {"shape": list(self.embeddings.shape), "settings": self.settings}
        (Path(folder) / "dense.json").write_text(json.dumps(meta, sort_keys=True), encoding="utf-8")


class DenseRetriever:
    name = "dense"

    def unavailable_reason(self) -> str | None:
        import importlib.util

        return None if importlib.util.find_spec("numpy") else "needs numpy: pip install 'ftharness[eval]'"

    def check_settings(self, settings: dict[str, Any], *, source: str | Path | None = None) -> dict[str, Any]:
        s = from_mapping(DenseSettings, settings, source=source, prefix=f"{FIELD}.")
        if (s.model is None) == (s.endpoint is None):
            field, why = ("endpoint", ", not both") if s.model else ("model", "")
            raise BadInput(f"set model (a local sentence-transformers folder) or endpoint (an OpenAI-"
                           f"compatible embeddings server){why}", file=source, field=f"{FIELD}.{field}")
        if s.model is not None:
            path = resolve_path(s.model, source) if source is not None else Path(s.model).expanduser()
            if not path.is_dir():
                raise BadInput(f"no model folder at {path}", file=source, field=f"{FIELD}.model")
            s.model = str(path.resolve())
        else:
            from ftharness.models.endpoint import check_endpoint

            e = s.endpoint
            check_endpoint(EndpointConfig(e.base_url, e.model, 0.0, 0.0, e.api_key_env), file=source,
                           field=f"{FIELD}.endpoint")
            if e.base_url.rstrip("/").endswith("/embeddings"):
                raise BadInput("is the API root (ending in /v1), not the route: drop /embeddings",
                               file=source, field=f"{FIELD}.endpoint.base_url")
        return settings_dict(s)

    def describe(self, settings: dict[str, Any]) -> str:
        s = _with_defaults(settings)
        e = s["endpoint"]
        by = f"endpoint {e['base_url']}, model {e['model']}" if e else f"sentence-transformers {s['model']}"
        return f"dense embeddings ({by}), {'cosine similarity' if s['normalize'] else 'dot product'}"

    def fingerprint(self, settings: dict[str, Any]) -> str | None:
        """The local model folder's content hash (a changed model is indexed again); an endpoint's model is
        known by its name only."""
        from ftharness.training.run import model_fingerprint

        model = _with_defaults(settings)["model"]
        return model_fingerprint(Path(model)) if model and Path(model).is_dir() else None

    def index(self, texts: list[str], settings: dict[str, Any]) -> DenseIndex:
        import numpy as np

        s = _with_defaults(settings)
        if not texts:
            return DenseIndex(np.zeros((0, 0), np.float32), s)
        return DenseIndex(embed([s["document_prefix"] + t for t in texts], s), s)

    def load(self, folder: Path, settings: dict[str, Any]) -> DenseIndex:
        import numpy as np

        meta = json.loads((Path(folder) / "dense.json").read_text(encoding="utf-8"))
        embeddings = np.load(Path(folder) / "embeddings.npy", allow_pickle=False)
        if list(embeddings.shape) != meta["shape"] or embeddings.dtype != np.float32:
            raise EnvironmentProblem(f"the dense index in {folder} is damaged: delete it to rebuild it")
        return DenseIndex(embeddings, _with_defaults(settings))


@hookimpl
def register_retrievers(register) -> None:
    register(DenseRetriever())
