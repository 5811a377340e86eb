"""Endpoint baselines against a real OpenAI-compatible server.

The server is ``transformers serve`` on the embedded model, on loopback, started once per session in its
own process group. Requests reach it through a small proxy started in the test, which counts them, keeps
the Authorization headers it saw, and injects faults (a 500, a 429 with Retry-After, an answer that never
comes). The task-file checks need no server.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from ftharness.compare.task import load_task
from ftharness.errors import BadInput, EnvironmentProblem
from ftharness.models.endpoint import EndpointConfig, cache_path, generate_chat, request_body
from ftharness.models.generation import GenerationSettings
from ftharness.models.local_server import DIRECT, local_server

pytestmark = pytest.mark.usefixtures("loopback_without_proxy")  # conftest: the servers are on loopback

SENTINEL = "sk-SENTINEL-5f1e9c7d-never-written-anywhere"
KEY_ENV = "FTHARNESS_TEST_ENDPOINT_KEY"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "extraction"


@pytest.fixture(scope="session")
def served_model(embedded_dir, tmp_path_factory):
    """``(base_url, model)`` of ``transformers serve`` answering for the embedded model on 127.0.0.1."""
    try:
        with local_server(embedded_dir, log=tmp_path_factory.mktemp("serve") / "serve.log") as server:
            yield server.base_url, server.model
    except EnvironmentProblem as e:  # the serving extra is missing, or the server did not start: say why
        pytest.skip(str(e))


class Proxy:
    """Forwards POSTs to ``upstream`` (``http://host:port``), counting them. ``faults`` is consumed one per
    request: ``"500"``, ``"429:SECONDS"`` (with Retry-After) or ``"hang"`` (no answer until the test ends)."""

    def __init__(self, upstream: str | None) -> None:
        self.upstream = upstream
        self.faults: list[str] = []
        self.requests = 0
        self.authorization: list[str | None] = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with proxy.lock:
                    proxy.requests += 1
                    proxy.authorization.append(self.headers.get("Authorization"))
                    fault = proxy.faults.pop(0) if proxy.faults else None
                if fault == "hang":
                    proxy.release.wait(60)
                    return
                if fault == "500" or (fault and fault.startswith("429")):
                    code = 500 if fault == "500" else 429
                    self.send_response(code)
                    if code == 429:
                        self.send_header("Retry-After", fault.split(":")[1])
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"error": {"message": "injected"}}')
                    return
                request = urllib.request.Request(proxy.upstream + self.path, data=body, method="POST",
                                                 headers={"Content-Type": "application/json"})
                with DIRECT.open(request, timeout=120) as r:
                    status, data = r.status, r.read()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(request, served_model):
    p = Proxy(served_model[0].removesuffix("/v1"))
    yield p
    p.close()


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SENTINEL)
    return SENTINEL


def _config(base_url: str, model: str, **kw) -> EndpointConfig:
    return EndpointConfig(base_url=base_url, model=model, price_per_million_input=0.15,
                          price_per_million_output=0.60, api_key_env=KEY_ENV, **kw)


def _chat(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "Answer in one short sentence."}, {"role": "user", "content": text}]


SHORT = GenerationSettings(max_new_tokens=6)


def _files_holding(root: Path, secret: str) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


@pytest.mark.slow
def test_answers_with_usage_and_a_rerun_makes_no_call(served_model, proxy, key, isolated_cache):
    config = _config(proxy.url + "/v1", served_model[1])
    chats = [_chat("Name a colour."), _chat("Name an animal.")]
    first = generate_chat(config, chats, SHORT)
    assert proxy.requests == 2
    assert proxy.authorization == [f"Bearer {key}"] * 2  # the key is sent, in the header only
    for g in first:
        assert g.text and not g.cached and g.attempts == 1 and g.usage
        assert g.prompt_tokens > 10 and 1 <= g.new_tokens <= 6 and g.latency_s > 0
    again = generate_chat(config, chats, SHORT)
    assert proxy.requests == 2  # answered from the cache
    assert [(g.text, g.prompt_tokens, g.new_tokens) for g in again] == [
        (g.text, g.prompt_tokens, g.new_tokens) for g in first
    ]
    assert all(g.cached and g.attempts == 0 for g in again)
    assert len(list((isolated_cache / "endpoint").rglob("*.json"))) == 2
    assert _files_holding(isolated_cache, key) == []


def test_the_cache_key_is_the_request_and_the_server():
    config = _config("https://api.example.com/v1", "large")
    body = request_body(config, _chat("Name a colour."), SHORT)
    same = cache_path(config, body)
    assert cache_path(_config("https://api.example.com/v1/", "large"), body) == same
    assert cache_path(_config("https://other.example.com/v1", "large"), body) != same
    assert cache_path(config, request_body(config, _chat("Name a colour."), GenerationSettings(max_new_tokens=5))) != same
    assert cache_path(config, request_body(_config("https://api.example.com/v1", "larger"), _chat("Name a colour."),
                                           SHORT)) != same
    sampled = request_body(config, _chat("x"), GenerationSettings(do_sample=True, temperature=0.7, seed=3))
    assert (sampled["temperature"], sampled["seed"]) == (0.7, 3) and body["temperature"] == 0.0


@pytest.mark.slow
def test_a_500_and_a_429_are_retried(served_model, proxy, key, isolated_cache):
    config = _config(proxy.url + "/v1", served_model[1])
    proxy.faults = ["500", "429:1"]
    t0 = time.perf_counter()
    (g,) = generate_chat(config, [_chat("Name a fruit.")], SHORT)
    assert time.perf_counter() - t0 >= 1.0  # waited as Retry-After asked
    assert g.text and g.new_tokens >= 1 and g.attempts == 3 and proxy.requests == 3


def test_a_server_that_never_answers_times_out_with_a_clear_error(key, isolated_cache):
    p = Proxy(None)
    p.faults = ["hang"] * 5
    try:
        config = _config(p.url + "/v1", "hosted-model", timeout_s=1, max_retries=1)
        t0 = time.perf_counter()
        with pytest.raises(EnvironmentProblem) as err:
            generate_chat(config, [_chat("Anyone there?")], SHORT)
        took = time.perf_counter() - t0
    finally:
        p.close()
    message = str(err.value)
    assert p.url in message and "2 attempts" in message and "timed out" in message
    assert key not in message
    assert p.requests == 2
    assert took < 15  # two 1 s timeouts and one backoff of at most 0.5 s; room for a loaded machine


@pytest.mark.slow
def test_compare_with_an_endpoint_baseline(served_model, proxy, key, isolated_cache, tmp_path, check_results):
    from ftharness.compare.run import run_compare

    # short rows: every request is a few dozen tokens (the server shares the CPU with the test)
    capitals = [("France", "Paris"), ("Japan", "Tokyo"), ("Italy", "Rome"), ("Spain", "Madrid"),
                ("Egypt", "Cairo"), ("Peru", "Lima"), ("Kenya", "Nairobi"), ("Chile", "Santiago")]
    for name, part in (("train", capitals[:6]), ("eval", capitals[6:])):
        lines = [json.dumps({"prompt": f"Capital of {c}?", "completion": json.dumps({"capital": k})}) for c, k in part]
        (tmp_path / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "schema.json").write_text(json.dumps(
        {"type": "object", "properties": {"capital": {"type": "string"}}, "required": ["capital"]}), encoding="utf-8")
    task = {
        "name": "hosted",
        "instruction": "Reply with a JSON object.",
        "schema": "schema.json",
        "data": {"train": "train.jsonl", "eval": "eval.jsonl"},
        "validation": {"fraction": 0.2, "min": 1},
        "generation": {"max_new_tokens": 6},
        "baselines": [{
            "name": "hosted-retrieved-1", "kind": "endpoint", "shots": "retrieved", "k": 1,
            "endpoint": {"base_url": proxy.url + "/v1", "model": served_model[1], "api_key_env": KEY_ENV,
                         "price_per_million_input": 0.15, "price_per_million_output": 0.60},
        }],
        "suites": ["format", "forgetting"],
    }
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(task), encoding="utf-8")
    outcome = run_compare(path, out=tmp_path / "reports", progress=False)
    assert proxy.requests == 2 and proxy.authorization == [f"Bearer {key}"] * 2
    doc = check_results(outcome.run.root / "results.json")
    (option,) = doc["options"]
    usage = option["endpoint"]
    assert usage["requests"] == 2 and usage["attempts"] == 2 and usage["cached"] == 0
    assert usage["input_tokens"] > 2 * 30  # the instruction, one retrieved shot (two turns) and the input
    assert usage["usd"] == pytest.approx((usage["input_tokens"] * 0.15 + usage["output_tokens"] * 0.60) / 1e6)
    assert option["cost"]["prompt_tokens_mean"] == usage["input_tokens"] / 2
    assert option["metrics"]["throughput.latency_p50_s"] > 0
    assert "suite forgetting" in option["unavailable"]  # the hosted weights cannot be read
    cost = doc["decision"]["costs"]["hosted-retrieved-1"]
    assert cost["usd_per_1k_requests"] == pytest.approx(usage["usd_per_1k_requests"])
    assert "$ / 1k requests" in outcome.report_path.read_text(encoding="utf-8")
    from ftharness.report.advice import measured_from_results

    (measured,) = measured_from_results(outcome.results, outcome.run.root).baselines
    assert measured.prompting == "retrieved"  # what the advice reads: the prompt the endpoint was sent
    samples = [json.loads(line) for line in (outcome.run.root / "samples" / "hosted-retrieved-1.jsonl").open()]
    assert [s["attempts"] for s in samples] == [1, 1] and all(s["prompt_tokens"] > 30 for s in samples)

    again = run_compare(path, out=tmp_path / "reports-again", progress=False)  # a fresh run folder
    assert proxy.requests == 2  # every answer from the cache
    (option,) = again.results.options
    assert option.endpoint.cached == 2 and option.endpoint.input_tokens == usage["input_tokens"]
    assert option.cost.generation_wall_s > 0
    leaked = _files_holding(tmp_path, key) + _files_holding(isolated_cache, key)
    assert leaked == []


# -- the task file -------------------------------------------------------------------------------------


def _task_with(tmp_path: Path, baseline: dict) -> Path:
    task = {"data": {"train": str(EXAMPLE / "train.jsonl"), "eval": str(EXAMPLE / "eval.jsonl")},
            "schema": str(EXAMPLE / "schema.json"), "baselines": [{"name": "hosted", **baseline}]}
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(task), encoding="utf-8")
    return path


ENDPOINT = {"base_url": "https://api.example.com/v1", "model": "large", "api_key_env": KEY_ENV,
            "price_per_million_input": 1.0, "price_per_million_output": 4.0}


@pytest.mark.parametrize(
    ("baseline", "field", "says"),
    [
        ({"kind": "endpoint"}, "baselines.hosted.endpoint", "needs `endpoint:"),
        ({"kind": "endpoint", "endpoint": {**ENDPOINT, "base_url": "https://api.example.com/v1?key=abc"}},
         "baselines.hosted.endpoint.base_url", "credentials, a query"),
        ({"kind": "endpoint", "endpoint": {**ENDPOINT, "base_url": "api.example.com/v1"}},
         "baselines.hosted.endpoint.base_url", "http:// or https://"),
        ({"kind": "endpoint", "endpoint": {**ENDPOINT, "api_key_env": SENTINEL}},
         "baselines.hosted.endpoint.api_key_env", "NAME of an environment variable"),
        ({"kind": "endpoint", "endpoint": {**ENDPOINT, "api_key_env": "FTHARNESS_TEST_UNSET_KEY"}},
         "baselines.hosted.endpoint.api_key_env", "FTHARNESS_TEST_UNSET_KEY is not set"),
        ({"kind": "endpoint", "endpoint": {k: v for k, v in ENDPOINT.items() if k != "price_per_million_output"}},
         "price_per_million_output", "required field is missing"),
        ({"kind": "endpoint", "endpoint": {**ENDPOINT, "concurrency": 0}}, "concurrency", ">= 1"),
        ({"kind": "endpoint", "constrained": "json-schema", "endpoint": ENDPOINT},
         "baselines.hosted.constrained", "decodes on its server"),
        ({"kind": "few-shot", "endpoint": ENDPOINT}, "baselines.hosted.endpoint", "is for kind: endpoint"),
        ({"kind": "few-shot", "shots": "retrieved"}, "baselines.hosted.shots", "is for kinds endpoint and rag"),
    ],
)
def test_task_file_checks(tmp_path, key, baseline, field, says):
    path = _task_with(tmp_path, baseline)
    with pytest.raises(BadInput) as err:
        load_task(path, check_plugins=False)
    assert err.value.file == str(path) and field in (err.value.field or "") and says in str(err.value)
    assert SENTINEL not in str(err.value)


def test_task_file_endpoint_baseline(tmp_path, key):
    task = load_task(_task_with(tmp_path, {"kind": "endpoint", "shots": "few-shot", "k": 3, "endpoint": ENDPOINT}),
                     check_plugins=False)
    (b,) = task.spec.baselines
    assert b.prompt_kind == "few-shot" and b.endpoint.concurrency == 4 and b.endpoint.max_retries == 2


def test_costs_against_an_endpoint_use_its_prices():
    from types import SimpleNamespace as NS

    from ftharness.compare.decision import _cost_reasons, option_costs

    spec = NS(requests_per_month=100_000, usd_per_million_prompt_tokens=0.10, cpu_usd_per_hour=0.10, gpu=None)
    trained = NS(total_wall_s=3600.0, memory_kind="rss")
    lora = NS(name="lora", cost=NS(prompt_tokens_mean=100.0, latency_s_mean=0.5), training=trained, endpoint=None,
              merged_latency=None, distillation=None)
    usage = NS(price_per_million_input=1.0, usd_per_1k_requests=1.0)
    hosted = NS(name="hosted", cost=NS(prompt_tokens_mean=500.0, latency_s_mean=1.0), training=None, endpoint=usage)
    costs = {o.name: option_costs(o, spec) for o in (lora, hosted)}
    assert costs["hosted"].usd_per_1k_requests == 1.0 and costs["hosted"].usd_per_prompt_token == 1e-6
    assert costs["hosted"].monthly_prompt_usd == pytest.approx(50.0)  # 500 tokens x 100k requests x $1/M
    assert costs["lora"].usd_per_1k_requests == pytest.approx(0.01)  # 100 tokens at the task's $0.10/M
    line = _cost_reasons(lora, hosted, costs)[0]
    # $0.99 saved per 1,000 requests pays the $0.10 training (1 h of CPU) after 101 requests
    assert "$0.01 vs $1.00 per 1,000 requests" in line and "pays for itself after 101 requests" in line
    assert "$99.00/month saved" in line
