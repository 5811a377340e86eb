"""The ``dense`` retriever: a tiny sentence-transformers model built here, and an embeddings endpoint served
by a test server on loopback. No download, no network."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from ftharness.errors import BadInput, EnvironmentProblem
from ftharness.hookspecs import RetrievalIndex, Retriever
from ftharness.plugins import get_plugins, reset_plugins

pytestmark = pytest.mark.usefixtures("loopback_without_proxy")  # conftest: the servers are on loopback

CHUNKS = [
    "the blue lamp",
    "kettle boils water",
    "battery charger price euro",
    "warranty years for the phone screen",
    "red lamp with a green cable",
    "the glass door opens and closes",
]
WORDS = sorted({w for text in CHUNKS for w in text.split()})  # the tiny model's vocabulary


@pytest.fixture(scope="module")
def st_model_dir(tmp_path_factory):
    """A tiny BERT (hidden 32, 2 layers) with mean pooling, saved as a sentence-transformers folder."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    bert = tmp_path_factory.mktemp("tiny-bert")
    (bert / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tok = BertTokenizerFast.from_pretrained(str(bert))  # reads vocab.txt (transformers 5 ignores vocab_file=)
    assert len(tok) == len(WORDS) + 5
    torch.manual_seed(0)
    # initializer_range 0.2: the default 0.02 gives every short text nearly the same mean-pooled vector
    config = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=64, initializer_range=0.2)
    BertModel(config).save_pretrained(bert)
    tok.save_pretrained(bert)
    out = tmp_path_factory.mktemp("tiny-st")
    SentenceTransformer(modules=[Transformer(str(bert)), Pooling(32, "mean")], device="cpu").save(str(out))
    return out


@pytest.fixture(scope="module")
def dense():
    reset_plugins()
    yield get_plugins().retriever("dense")
    reset_plugins()


@pytest.fixture
def task_file(tmp_path):
    path = tmp_path / "task.yaml"
    path.write_text("name: t\n")
    return path


def test_registered_through_the_plugins_and_follows_the_protocol(dense):
    assert isinstance(dense, Retriever) and dense.name == "dense"
    assert dense.unavailable_reason() is None
    assert get_plugins().unavailable_reason("retrievers", "dense") is None


def test_ranks_the_chunk_equal_to_the_query_first(dense, st_model_dir, task_file, tmp_path):
    settings = dense.check_settings({"model": str(st_model_dir)}, source=task_file)
    assert settings["model"] == str(st_model_dir.resolve()) and settings["batch_size"] == 32
    assert "sentence-transformers" in dense.describe(settings) and "\n" not in dense.describe(settings)
    index = dense.index(CHUNKS, settings)
    assert isinstance(index, RetrievalIndex)
    assert index.embeddings.dtype == np.float32 and index.embeddings.shape == (len(CHUNKS), 32)
    results = index.search(CHUNKS, 3)
    for i, hits in enumerate(results):
        assert hits[0][0] == i and hits[0][1] == pytest.approx(1.0, abs=1e-4)
        assert len(hits) == 3 and [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    (everything,) = index.search(["blue lamp"], 50)
    assert sorted(p for p, _ in everything) == list(range(len(CHUNKS)))
    assert index.search([], 3) == []

    again = dense.index(CHUNKS, settings)  # deterministic
    assert np.array_equal(again.embeddings, index.embeddings)
    assert again.search(CHUNKS, 6) == index.search(CHUNKS, 6)

    folder = tmp_path / "index"
    folder.mkdir()
    index.save(folder)
    assert (folder / "embeddings.npy").is_file()
    loaded = dense.load(folder, settings)
    assert loaded.search(CHUNKS, 6) == index.search(CHUNKS, 6)


def test_ties_are_broken_by_position(dense, st_model_dir):
    texts = ["kettle boils water", "the blue lamp", "kettle boils water"]
    index = dense.index(texts, {"model": str(st_model_dir)})
    assert [p for p, _ in index.search(["kettle boils water"], 3)[0]] == [0, 2, 1]


def test_a_relative_model_path_is_resolved_against_the_task_file(dense, st_model_dir, tmp_path):
    task = st_model_dir.parent / "task.yaml"
    settings = dense.check_settings({"model": st_model_dir.name, "query_prefix": "query: "}, source=task)
    assert settings["model"] == str(st_model_dir.resolve()) and settings["query_prefix"] == "query: "


@pytest.mark.parametrize(("settings", "field"), [
    ({}, "retrieval.settings.model"),
    ({"model": "m", "endpoint": {"base_url": "http://x/v1", "model": "e"}}, "retrieval.settings.endpoint"),
    ({"model": "no-such-folder"}, "retrieval.settings.model"),
    ({"modle": "m"}, "retrieval.settings.modle"),
    ({"model": "m", "batch_size": 0}, "retrieval.settings.batch_size"),
    ({"endpoint": {"base_url": "ftp://x/v1", "model": "e"}}, "retrieval.settings.endpoint.base_url"),
    ({"endpoint": {"base_url": "http://x/v1/embeddings", "model": "e"}},
     "retrieval.settings.endpoint.base_url"),
    ({"endpoint": {"base_url": "http://x/v1"}}, "retrieval.settings.endpoint.model"),
])
def test_bad_settings_name_the_field(dense, task_file, settings, field):
    (task_file.parent / "m").mkdir(exist_ok=True)
    with pytest.raises(BadInput) as err:
        dense.check_settings(settings, source=task_file)
    assert err.value.field == field and err.value.file == str(task_file)
    assert "\n" not in str(err.value)


# --- the endpoint ----------------------------------------------------------------------------------------

def hashed_vector(text: str, dim: int = 64) -> list[float]:
    """A bag of words hashed into ``dim`` buckets: texts sharing words point the same way."""
    v = [0.0] * dim
    for w in re.findall(r"\w+", text.lower()):
        v[int(hashlib.sha256(w.encode()).hexdigest(), 16) % dim] += 1.0
    return v


class EmbeddingServer:
    """``POST /v1/embeddings`` on 127.0.0.1: hashed bags of words, listed in reverse with their ``index``.
    Other ``mode``s answer malformed bodies: ``not-json``, ``short`` (one vector too few), ``ragged`` (the
    last vector one number short), ``text`` (a vector of strings)."""

    def __init__(self, mode: str = "ok") -> None:
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                auth = self.headers.get("Authorization")
                server.requests.append({"path": self.path, "body": body, "auth": auth})
                data = [{"object": "embedding", "index": i, "embedding": hashed_vector(t)}
                        for i, t in enumerate(body["input"])][::-1]
                if mode == "short":
                    data = data[1:]
                elif mode == "ragged":
                    data[-1]["embedding"].pop()
                elif mode == "text":
                    data[0]["embedding"] = ["0.5"] * 64
                raw = b"<html>busy</html>" if mode == "not-json" else json.dumps({"data": data}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_an_embeddings_endpoint(dense, task_file, monkeypatch):
    monkeypatch.setenv("FTHARNESS_TEST_EMBED_KEY", "sk-test-embed")
    server = EmbeddingServer()
    try:
        endpoint = {"base_url": server.base_url, "model": "hashed", "api_key_env": "FTHARNESS_TEST_EMBED_KEY",
                    "timeout_s": 5, "max_retries": 0}  # short: a hung server fails the test in seconds
        settings = dense.check_settings({"endpoint": endpoint, "batch_size": 4}, source=task_file)
        assert "endpoint" in dense.describe(settings)
        index = dense.index(CHUNKS, settings)
        assert index.embeddings.shape == (len(CHUNKS), 64)
        # the chunks in batches of 4; the answers' data[].index orders the vectors
        assert [len(r["body"]["input"]) for r in server.requests] == [4, 2]
        assert {r["path"] for r in server.requests} == {"/v1/embeddings"}
        assert {r["auth"] for r in server.requests} == {"Bearer sk-test-embed"}
        assert server.requests[0]["body"]["model"] == "hashed"
        results = index.search(CHUNKS, 2)
        assert [hits[0][0] for hits in results] == list(range(len(CHUNKS)))
        assert index.search(["Glass door?"], 1)[0][0][0] == 5
    finally:
        server.close()


@pytest.mark.parametrize(("mode", "says"), [
    ("not-json", "not JSON"),
    ("short", "5 vectors for 6 texts"),
    ("ragged", "vectors of different lengths (64 and 63)"),
    ("text", "data[0].embedding that is not a list of numbers"),
])
def test_a_malformed_answer_is_an_environment_problem(dense, task_file, mode, says):
    server = EmbeddingServer(mode)
    try:
        endpoint = {"base_url": server.base_url, "model": "hashed", "timeout_s": 2, "max_retries": 0}
        settings = dense.check_settings({"endpoint": endpoint}, source=task_file)
        t0 = time.perf_counter()
        with pytest.raises(EnvironmentProblem) as err:
            dense.index(CHUNKS, settings)
        assert time.perf_counter() - t0 < 10
    finally:
        server.close()
    message = str(err.value)
    assert says in message and server.base_url in message and "\n" not in message


def test_a_server_that_is_down_is_an_environment_problem(dense, task_file):
    server = EmbeddingServer()
    server.close()  # the port is free again: the connection is refused
    endpoint = {"base_url": server.base_url, "model": "hashed", "timeout_s": 1, "max_retries": 0}
    settings = dense.check_settings({"endpoint": endpoint}, source=task_file)
    with pytest.raises(EnvironmentProblem) as err:
        dense.index(CHUNKS, settings)
    assert server.base_url in str(err.value) and "\n" not in str(err.value)
