"""An OpenAI-compatible server is untrusted input: eight kinds of bad answer from a server on loopback, each
ending in one clear error (or, for an over-long content, a cut answer that says so), none in a hang, an
internal error or an answer the generation settings could not have produced."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ftharness.errors import BadInput, EnvironmentProblem
from ftharness.models.endpoint import MAX_TOKEN_BYTES, EndpointConfig, answer_byte_limit, generate_chat
from ftharness.models.generation import GenerationSettings

pytestmark = pytest.mark.usefixtures("loopback_without_proxy")  # conftest: the servers are on loopback

SETTINGS = GenerationSettings(max_new_tokens=8)


def completion(content: object, usage: object = None) -> bytes:
    body = {"choices": [{"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}
    if usage is not None:
        body["usage"] = usage
    return json.dumps(body).encode()


class Hostile:
    """A server on 127.0.0.1 that answers every POST as ``mode`` says."""

    def __init__(self, mode: str) -> None:
        self.mode, self.requests, self.sent = mode, 0, 0
        hostile = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hostile.requests += 1
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client stopped reading
                    hostile.answer(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, h: BaseHTTPRequestHandler) -> None:
        mode = self.mode
        if mode == "teapot":
            return self.send(h, b"I'm a teapot", status=418, kind="text/plain")
        if mode == "trickle":  # a whole answer, one byte every 0.1 s: no single read waits long
            body = completion("x" * 200)
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            for i in range(len(body)):
                h.wfile.write(body[i:i + 1])
                h.wfile.flush()
                self.sent += 1
                time.sleep(0.1)
            return None
        if mode == "huge":  # 20 MB of content in a well-formed answer
            head, tail = b'{"choices": [{"message": {"role": "assistant", "content": "', b'"}}]}'
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(head) + 20_000_000 + len(tail)))
            h.end_headers()
            h.wfile.write(head)
            for _ in range(200):
                h.wfile.write(b"a" * 100_000)
                self.sent += 100_000
            h.wfile.write(tail)
            return None
        bodies = {
            "not-json": (b"<<<garbage>>>", "application/json"),
            "no-choices": (json.dumps({"id": "x", "object": "chat.completion"}).encode(), "application/json"),
            "login-page": (b"<html><body><form>Sign in</form></body></html>", "text/html"),
            "null-content": (completion(None), "application/json"),
            "list-content": (completion([{"type": "text", "text": "hi"}]), "application/json"),
            "long-content": (completion("y" * (8 * MAX_TOKEN_BYTES + 5000)), "application/json"),
            "bad-usage": (completion("ok", usage={"prompt_tokens": "many"}), "application/json"),
        }
        body, kind = bodies[mode]
        return self.send(h, body, kind=kind)

    @staticmethod
    def send(h: BaseHTTPRequestHandler, body: bytes, *, status: int = 200, kind: str = "application/json") -> None:
        h.send_response(status)
        h.send_header("Content-Type", kind)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def ask(mode: str, **config):
    server = Hostile(mode)
    try:
        cfg = EndpointConfig(base_url=server.url, model="m", price_per_million_input=0.0,
                             price_per_million_output=0.0, max_retries=0, **config)
        t0 = time.perf_counter()
        try:
            return generate_chat(cfg, [[{"role": "user", "content": "hi"}]], SETTINGS), server, \
                time.perf_counter() - t0
        except Exception as e:  # noqa: BLE001 - returned for the test to judge
            return e, server, time.perf_counter() - t0
    finally:
        server.close()


@pytest.mark.parametrize(("mode", "error", "says"), [
    ("not-json", EnvironmentProblem, "not JSON: <<<garbage>>>"),
    ("login-page", EnvironmentProblem, "not JSON: <html>"),
    ("no-choices", EnvironmentProblem, "not a chat completion"),
    ("list-content", EnvironmentProblem, "content as list, not text"),
    ("bad-usage", EnvironmentProblem, "usage that is not token counts"),
    ("teapot", BadInput, "HTTP 418"),
])
def test_a_bad_answer_is_one_clear_error_naming_the_server(mode, error, says, isolated_cache):
    got, server, _ = ask(mode)
    assert isinstance(got, error), got
    assert says in str(got) and "127.0.0.1" in str(got)
    assert "\n" not in str(got)


def test_a_null_content_is_an_empty_answer(isolated_cache):
    (g,), _, _ = ask("null-content")
    assert g.text == "" and not g.cut


def test_an_answer_longer_than_max_tokens_can_be_is_cut_and_marked(isolated_cache):
    (g,), _, _ = ask("long-content")
    assert g.cut and g.finish_reason == "length"
    assert len(g.text.encode()) == SETTINGS.max_new_tokens * MAX_TOKEN_BYTES


def test_a_20_mb_answer_is_refused_without_reading_it(isolated_cache):
    got, server, took = ask("huge")
    assert isinstance(got, EnvironmentProblem), got
    limit = answer_byte_limit(SETTINGS.max_new_tokens)
    assert f"more than {limit:,} bytes" in str(got) and "8 tokens" in str(got)
    assert limit < 1_000_000  # what was read: a small share of the 20 MB


def test_a_server_trickling_its_answer_is_cut_off_at_the_deadline(isolated_cache):
    got, server, took = ask("trickle", timeout_s=1.0, deadline_s=1.0)
    assert isinstance(got, EnvironmentProblem), got
    assert "deadline_s 1 s" in str(got) and "in 1 attempt " in str(got)
    assert took < 5  # one second of deadline, at most one more for the read in progress; the whole answer
    assert server.sent < 60  # would have taken 20 s
