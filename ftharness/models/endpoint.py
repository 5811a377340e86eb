"""Chat completions from an OpenAI-compatible server: the hosted model a finetuned one is compared with.

:func:`generate_chat` takes message lists (built by ``ftharness.baselines``, like every local option's)
and returns one :class:`EndpointGeneration` each, in input order: the text, the server's ``usage`` token
counts, the latency and how many HTTP attempts it took. It is a plain function, usable by anything that
needs a hosted model's answers (a prompting baseline, a distillation teacher).

The contract:
- ``POST {base_url}/chat/completions`` with ``model``, ``messages``, ``max_tokens`` and the sampling
  settings (greedy: ``temperature: 0``), at most ``concurrency`` requests in flight (the standard
  library's ``urllib`` and ``concurrent.futures``: no client library to install).
- The key is read from the environment variable ``api_key_env`` names, at call time, and goes only into
  the ``Authorization`` header: never into a file, a record, a log line or an exception (a server message
  that quotes it is redacted).
- HTTP 429, 5xx, a timeout or a refused connection are retried up to ``max_retries`` times, after the
  server's ``Retry-After`` when it sends one, else after an exponential backoff with jitter. Then the
  endpoint is called unavailable: :class:`~ftharness.errors.EnvironmentProblem` (exit 3), naming the URL
  and the last error. 401/403 (the key) are an environment problem too, at once; any other 4xx means the
  request as configured is wrong (model name, parameters): :class:`~ftharness.errors.BadInput` (exit 2).
- Every answer is cached on disk under ``$FTHARNESS_CACHE/endpoint/`` by the hash of the base URL and the
  request body (model, messages, generation settings; not the key), written atomically: a rerun of the
  same requests makes no call and reports the latency and usage first measured, with ``cached: true``.
- A server is untrusted input. One request may take ``deadline_s`` in all (a server that trickles its
  answer a byte at a time never trips the per-read ``timeout_s``; the deadline cuts it off, and it is
  retried like a timeout). A chat answer's body may hold at most what ``max_tokens`` tokens can be
  (:func:`answer_byte_limit`): a longer one is refused as an environment problem naming the server,
  without reading the rest. A content longer than ``max_tokens`` tokens can be is cut to that length and
  marked ``cut`` (the record counts them). A content that is not text (a list, an object, a number) is an
  environment problem naming the server: the server is not OpenAI-compatible.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from http.client import HTTPException
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ftharness.errors import BadInput, EnvironmentProblem
from ftharness.io import atomic_write_json, sha256_json
from ftharness.models.generation import Generation, GenerationSettings
from ftharness.paths import cache_dir
from ftharness.typed import spec

# Backoff between attempts: 0.5 s doubling up to 8 s, each shortened by up to a quarter at random (jitter,
# so parallel requests do not retry in step); a Retry-After up to 2 minutes is honoured as sent. These
# are the openai Python client's values (openai/_constants.py: INITIAL_RETRY_DELAY, MAX_RETRY_DELAY,
# MAX_RETRY_AFTER_DELAY).
FIRST_DELAY_S, MAX_DELAY_S, MAX_RETRY_AFTER_S = 0.5, 8.0, 120.0
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# The most UTF-8 bytes one generated token may take: three times the longest token of the embedded model's
# vocabulary (81 bytes, a newline and 80 spaces; measured with its tokenizer). An answer's content longer
# than max_tokens of these cannot be max_tokens tokens; its JSON body may escape every byte as \u00XX (6
# bytes) and carry up to 64 KiB of other fields.
MAX_TOKEN_BYTES = 256
ESCAPED_BYTES, BODY_OVERHEAD = 6, 64 * 1024
READ_CHUNK = 64 * 1024


@dataclass
class EndpointConfig:
    """Where a hosted model answers and what it costs. The prices are the user's statement, not a fact
    ftharness knows: they have no default."""

    base_url: str = spec(
        help="the server's API root, up to and including /v1 (https://api.openai.com/v1, "
             "http://127.0.0.1:8000/v1); requests go to BASE_URL/chat/completions",
    )
    model: str = spec(help="the model name the server knows (its /v1/models lists them)", min_len=1)
    price_per_million_input: float = spec(ge=0, help="USD per million prompt (input) tokens, as the provider bills")
    price_per_million_output: float = spec(ge=0, help="USD per million completion (output) tokens")
    api_key_env: str | None = spec(
        None,
        help="the name of the environment variable holding the API key (the key itself never goes in a "
             "file); null: no Authorization header (a local server)",
    )
    concurrency: int = spec(
        4, ge=1, le=64,
        help="requests in flight at once",
        source="hosted APIs limit requests per minute by account tier (platform.openai.com/docs/guides/"
               "rate-limits): 4 requests of 1-2 s each are 120-240 a minute, within the first paid tiers; "
               "a 429 is retried after its Retry-After. Raise it to the provider's limit",
    )
    timeout_s: float = spec(
        60.0, gt=0,
        help="seconds to wait for the connection and for each read of the answer",
        source="an answer of a few hundred tokens takes seconds; 60 s bounds a hung connection (the openai "
               "client waits 600 s, too long for a batch of rows)",
    )
    max_retries: int = spec(
        2, ge=0, le=10,
        help="attempts after the first on 429, 5xx, a timeout or a refused connection",
        source="the openai Python client's default (openai/_constants.py: DEFAULT_MAX_RETRIES)",
    )
    deadline_s: float = spec(
        300.0, gt=0,
        help="seconds one request may take in all, connecting and reading included (a server that sends its "
             "answer a byte at a time is cut off here); retried like a timeout",
        source="five times timeout_s: a long answer streams for well under a minute from any hosted API",
    )


def check_endpoint(config: EndpointConfig, *, file: str | Path | None = None, field: str = "endpoint") -> None:
    """What cannot work, as :class:`BadInput` naming ``field``: a base URL that is not http(s), that
    carries credentials or a query (keys belong in ``api_key_env``), that names the route itself; an
    ``api_key_env`` that is not a variable name, or names an unset variable. The value of a field that may
    hold a key is never echoed."""
    parts = urlsplit(config.base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInput("must be an http:// or https:// URL with a host, such as https://api.openai.com/v1",
                       file=file, field=f"{field}.base_url")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise BadInput("must not carry credentials, a query or a fragment: put the key in the environment "
                       "variable api_key_env names", file=file, field=f"{field}.base_url")
    if parts.path.rstrip("/").endswith("/chat/completions"):
        raise BadInput("is the API root (ending in /v1), not the route: drop /chat/completions",
                       file=file, field=f"{field}.base_url")
    name = config.api_key_env
    if name is None:
        return
    if not ENV_NAME_RE.match(name):
        raise BadInput("must be the NAME of an environment variable (letters, digits, _), such as "
                       "OPENAI_API_KEY; the key itself never goes in the task file",
                       file=file, field=f"{field}.api_key_env")
    if not os.environ.get(name):
        raise BadInput(f"the environment variable {name} is not set (or empty): export the API key in it",
                       file=file, field=f"{field}.api_key_env")


@dataclass
class EndpointGeneration(Generation):
    """One answer. ``prompt_tokens`` and ``new_tokens`` are the server's ``usage`` (0 where it sends
    none); ``latency_s`` the answering attempt's seconds (as first measured, when cached);
    ``finish_reason`` as the server wrote it (``stop``, ``length``...)."""

    cached: bool = False  # read from the on-disk cache: no call made
    attempts: int = 1  # HTTP requests sent for it (0 when cached)
    usage: bool = True  # the server reported token usage
    cut: bool = False  # the content was longer than max_tokens tokens can be, and was cut to that


def answer_byte_limit(max_tokens: int) -> int:
    """The most bytes a chat-completions body answering with at most ``max_tokens`` tokens can take."""
    return BODY_OVERHEAD + ESCAPED_BYTES * MAX_TOKEN_BYTES * max(1, int(max_tokens))


def request_body(config: EndpointConfig, messages: list[dict[str, str]], settings: GenerationSettings, *,
                 schema_on_server: bool = False) -> dict[str, Any]:
    """The chat-completions request for one conversation under ``settings`` (``batch_size`` does not apply).
    ``schema_on_server``: ask the server to decode under ``settings.json_schema`` (OpenAI's ``response_format``
    of type ``json_schema``, which vLLM and SGLang enforce); otherwise the schema is not sent."""
    body: dict[str, Any] = {"model": config.model, "messages": messages, "max_tokens": int(settings.max_new_tokens)}
    if settings.do_sample:
        body.update(temperature=float(settings.temperature), top_p=float(settings.top_p), seed=int(settings.seed))
    else:
        body["temperature"] = 0.0
    if settings.stop:
        body["stop"] = list(settings.stop)
    if schema_on_server and settings.json_schema is not None:
        body["response_format"] = {"type": "json_schema",
                                   "json_schema": {"name": "task", "schema": settings.json_schema, "strict": True}}
    return body


def cache_path(config: EndpointConfig, body: dict[str, Any]) -> Path:
    """Where the answer to ``body`` sent to ``config.base_url`` is kept."""
    key = sha256_json({"base_url": config.base_url.rstrip("/"), "body": body})
    return cache_dir() / "endpoint" / key[:2] / f"{key}.json"


def generate_chat(
    config: EndpointConfig,
    conversations: list[list[dict[str, str]]],
    settings: GenerationSettings | None = None,
    *,
    file: str | Path | None = None,
    field: str = "endpoint",
    cache: bool = True,
    schema_on_server: bool = False,
) -> list[EndpointGeneration]:
    """One answer per conversation, in input order (see the module's contract). ``file`` and ``field``
    name the configuration in errors. ``cache=False``: every request goes to the server and nothing is kept
    (a server the harness started for one run answers on a port no later run shares).
    ``schema_on_server``: see :func:`request_body`."""
    settings = settings or GenerationSettings()
    if not conversations:
        return []
    client = _Client(config, api_key(config, file=file, field=field), file, field, cache=cache)
    with ThreadPoolExecutor(max_workers=min(config.concurrency, len(conversations))) as pool:
        futures = [pool.submit(client.answer, request_body(config, m, settings, schema_on_server=schema_on_server))
                   for m in conversations]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def api_key(config: EndpointConfig, *, file: str | Path | None = None, field: str = "endpoint") -> str:
    """The key in the environment variable ``api_key_env`` names ("" without one); BadInput when it is named
    but not set."""
    key = os.environ.get(config.api_key_env, "") if config.api_key_env else ""
    if config.api_key_env and not key:
        raise BadInput(f"the environment variable {config.api_key_env} is not set (or empty): export the API "
                       "key in it", file=file, field=f"{field}.api_key_env")
    return key


def post_json(config: EndpointConfig, route: str, body: dict[str, Any], *, file: str | Path | None = None,
              field: str = "endpoint") -> dict[str, Any]:
    """POST ``body`` to ``BASE_URL/ROUTE`` of an OpenAI-compatible server with the same retries, timeouts,
    key handling and errors as chat completions (no cache): what another route (``embeddings``) is called
    with. Returns the answer's JSON; checking its shape is the caller's."""
    client = _Client(config, api_key(config, file=file, field=field), file, field, route=route)
    return client._post(body)[0]


class _Client:
    """Sends one request with its retries, through the cache. Holds the key; never prints it."""

    def __init__(self, config: EndpointConfig, key: str, file: str | Path | None, field: str,
                 route: str = "chat/completions", *, cache: bool = True) -> None:
        self.config = config
        self.cache = cache
        self.url = config.base_url.rstrip("/") + "/" + route
        self._key = key
        self.where = {"file": file, "field": field}

    def answer(self, body: dict[str, Any]) -> EndpointGeneration:
        path = cache_path(self.config, body)
        if self.cache:
            try:
                kept = json.loads(path.read_text(encoding="utf-8"))
                return _parse(kept["response"], float(kept["latency_s"]), cached=True, attempts=0,
                              max_tokens=body["max_tokens"], server=self.url)
            except (OSError, ValueError, KeyError, TypeError):
                pass  # not cached (or unreadable): ask the server
        response, latency, attempts = self._post(body, max_tokens=body["max_tokens"])
        generation = _parse(response, latency, cached=False, attempts=attempts, max_tokens=body["max_tokens"],
                            server=self.url)  # checked before it is kept
        if self.cache:
            atomic_write_json(path, {"response": response, "latency_s": latency})
        return generation

    def _post(self, body: dict[str, Any], *, max_tokens: int | None = None) -> tuple[dict[str, Any], float, int]:
        """The server's JSON answer to ``body``, its latency and the attempts it took; ``max_tokens``: the
        answer may take at most :func:`answer_byte_limit` of it (more is an environment problem, the rest
        unread)."""
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        cfg = self.config
        last = ""
        for attempt in range(cfg.max_retries + 1):
            wait = None
            t0 = time.perf_counter()
            try:
                with urllib.request.urlopen(
                    urllib.request.Request(self.url, data=data, headers=headers, method="POST"), timeout=cfg.timeout_s
                ) as r:
                    raw = self._read(r, t0, max_tokens)
                latency = time.perf_counter() - t0
                try:
                    return json.loads(raw), latency, attempt + 1
                except ValueError:
                    last = f"an answer that is not JSON: {self._clean(raw)}"
            except urllib.error.HTTPError as e:
                text = self._clean(e.read())
                if e.code in (401, 403):
                    who = f"the key in ${cfg.api_key_env}" if cfg.api_key_env else "a request without a key"
                    raise EnvironmentProblem(
                        f"{self.url} refused {who} (HTTP {e.code}): {text}; check the key and its access to "
                        f"model {cfg.model!r}"
                    ) from None
                if e.code != 429 and e.code < 500:
                    raise BadInput(f"{self.url} rejected the request for model {cfg.model!r} (HTTP {e.code}): "
                                   f"{text}", **self.where) from None
                last = f"HTTP {e.code}: {text}"
                wait = retry_after(e.headers)
                if wait is not None and wait > MAX_RETRY_AFTER_S:
                    raise EnvironmentProblem(f"{self.url} asks to wait {wait:.0f} s before retrying ({last}); "
                                             "run again later") from None
            except _PastDeadline:
                last = f"no whole answer within deadline_s {cfg.deadline_s:g} s (timed out)"
            except (urllib.error.URLError, HTTPException, OSError) as e:  # refused, reset, timed out
                reason = getattr(e, "reason", e)
                last = f"{type(reason).__name__}: {self._clean(str(reason).encode())}"
            if attempt < cfg.max_retries:
                time.sleep(wait if wait is not None else backoff(attempt))
        raise EnvironmentProblem(
            f"endpoint {self.url} (model {cfg.model!r}) gave no answer in {cfg.max_retries + 1} attempt"
            f"{'s' if cfg.max_retries else ''} "
            f"(timeout {cfg.timeout_s:g} s each); last: {last}. Check that the server is up and base_url, or "
            f"raise timeout_s / max_retries ({self._where()})"
        )

    def _read(self, response: Any, t0: float, max_tokens: int | None) -> bytes:
        """The answer's bytes, read as they come (``read1``: whatever has arrived, so a slow server cannot
        hold one read open past the deadline by more than ``timeout_s``)."""
        cfg, parts, size = self.config, [], 0
        limit = answer_byte_limit(max_tokens) if max_tokens is not None else None
        while True:
            if time.perf_counter() - t0 > cfg.deadline_s:
                raise _PastDeadline
            chunk = response.read1(READ_CHUNK)
            if not chunk:
                return b"".join(parts)
            size += len(chunk)
            if limit is not None and size > limit:
                raise EnvironmentProblem(
                    f"{self.url} answered more than {limit:,} bytes to a request for at most "
                    f"{max_tokens} tokens: not an answer the generation settings allow; check the "
                    f"server behind base_url ({self._where()})"
                )
            parts.append(chunk)

    def _where(self) -> str:
        """``FILE: FIELD`` of the configuration, as far as known."""
        return ": ".join(str(p) for p in (self.where["file"], self.where["field"]) if p)

    def _clean(self, raw: bytes) -> str:
        """A server's text for a message: one line, at most 300 characters, the key (if quoted) redacted."""
        text = raw.decode("utf-8", "replace")
        if self._key:
            text = text.replace(self._key, "[redacted]")
        text = " ".join(text.split())
        return text[:300] + ("..." if len(text) > 300 else "")


class _PastDeadline(Exception):
    """One request ran past ``deadline_s``."""


def backoff(attempt: int) -> float:
    """Seconds before retry ``attempt + 1``: exponential, capped, with jitter (see FIRST_DELAY_S)."""
    return min(FIRST_DELAY_S * 2**attempt, MAX_DELAY_S) * (1 - 0.25 * random.random())


def retry_after(headers: Any) -> float | None:
    """The wait a 429/5xx asks for: ``retry-after-ms``, or ``Retry-After`` in seconds or as an HTTP date."""
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) / scale)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None
    return None


def _parse(response: Any, latency: float, *, cached: bool, attempts: int, max_tokens: int,
           server: str) -> EndpointGeneration:
    """The generation in a chat-completions answer from ``server``: an answer without a choice, or whose
    content is not text, is an environment problem (the server is not OpenAI-compatible); a content longer
    than ``max_tokens`` tokens can be is cut to that and marked."""
    try:
        choice = response["choices"][0]
        text = choice["message"].get("content")
        finish = str(choice.get("finish_reason") or "")
        usage = response.get("usage") or {}
        prompt_tokens = _count(usage.get("prompt_tokens"))
        new_tokens = _count(usage.get("completion_tokens"))
    except (KeyError, IndexError, TypeError, AttributeError, ValueError):
        raise EnvironmentProblem(
            f"{server} answered something that is not a chat completion (no choices[0].message, or usage "
            "that is not token counts): is base_url an OpenAI-compatible API root?"
        ) from None
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise EnvironmentProblem(
            f"{server} answered choices[0].message.content as {type(text).__name__}, not text: the server is "
            "not OpenAI-compatible for chat completions"
        )
    most, encoded = max_tokens * MAX_TOKEN_BYTES, text.encode("utf-8")
    cut = len(encoded) > most
    if cut:
        text, finish = encoded[:most].decode("utf-8", "ignore"), "length"
    return EndpointGeneration(
        text=text,
        prompt_tokens=prompt_tokens,
        new_tokens=new_tokens,
        latency_s=latency,
        finish_reason=finish,
        cached=cached,
        attempts=attempts,
        usage=bool(usage),
        cut=cut,
    )


def _count(value: Any) -> int:
    """A usage token count: a non-negative integer (0 when absent); ValueError otherwise."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(value)
    return int(value)
