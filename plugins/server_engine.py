"""The ``server`` engine: the harness starts an OpenAI-compatible server for the option's model, sends the
rows to it at the set concurrency, and stops it however the evaluation ends.

``engine: {kind: server, launcher: transformers | vllm, ...}`` on a baseline or candidate (or task-wide).
What is served: a baseline's base model folder; a candidate's weights with its adapter merged and saved
beside the artifact (``served-merged/``, made once), or, with ``launcher: vllm`` and ``adapter: true``, the
base model with the adapter loaded by vLLM's LoRA support (``--enable-lora --lora-modules``).

Launchers:

- ``transformers``: ``transformers serve`` (transformers' ``serving`` extra); runs on CPU, and is what the
  tests run. It ignores ``response_format``, so it cannot serve a schema-constrained option (refused when
  the task loads) and returns no prompt log-probabilities.
- ``vllm``: ``vllm serve`` with ``--tensor-parallel-size`` and ``--data-parallel-size`` passed through; it
  enforces the task's JSON Schema through ``response_format`` (type ``json_schema``; vLLM's structured
  outputs), and the record says the server enforced it. It needs vLLM installed (a CUDA machine).

The server is the harness's own process (:func:`ftharness.models.local_server.start_process`: its own
process group, ended with the harness even when the harness is killed). Its answers go through the same
untrusted-input client as a hosted endpoint (:func:`ftharness.models.endpoint.generate_chat`: total
deadline per request, size cap, non-text answers refused), uncached: the port is this run's only.

The suites that read weights (forgetting) score the same weights in this process: the launchers' prompt
log-probabilities are not read (``transformers serve`` returns none), and the record says so.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ftharness.errors import BadInput, EnvironmentProblem
from ftharness.hookspecs import hookimpl
from ftharness.typed import from_mapping, spec

MERGED_FOLDER = "served-merged"
WEIGHTS = ("in process: the same weights loaded here (the server's prompt log-probabilities are not read)")
ENDPOINT_DEFAULTS = "the endpoint client's defaults (ftharness.models.endpoint.EndpointConfig)"


@dataclass
class ServerSettings:
    """A started server's settings (``engine: {kind: server, ...}``)."""

    launcher: Literal["transformers", "vllm"] = spec(
        "transformers", help="transformers: `transformers serve` (CPU or GPU; no schema enforcement); vllm: "
                             "`vllm serve` (CUDA; JSON Schema enforced through response_format)")
    concurrency: int = spec(4, ge=1, le=256, source=ENDPOINT_DEFAULTS,
                            help="requests in flight at once (a server batches what is in flight)")
    tensor_parallel_size: int = spec(1, ge=1, help="vllm: GPUs one copy of the model spans (--tensor-parallel-size)")
    data_parallel_size: int = spec(1, ge=1, help="vllm: copies of the model serving at once (--data-parallel-size)")
    adapter: bool = spec(False, help="vllm: serve the base model with the candidate's LoRA adapter (--enable-lora) "
                                     "instead of its merged weights")
    start_timeout_s: float = spec(600.0, gt=0, help="seconds the server may take to answer /health",
                                  source="loading a 7B model from local disk and compiling takes minutes on a GPU")
    timeout_s: float = spec(120.0, gt=0, help="seconds to wait for each read of an answer",
                            source="twice the hosted default: a CPU server answers a batch of rows in turn")
    deadline_s: float = spec(600.0, gt=0, help="seconds one request may take in all")
    max_retries: int = spec(2, ge=0, le=10, source=ENDPOINT_DEFAULTS, help="attempts after the first")
    args: list[str] = spec(factory=list, help="more arguments for the launch command, as written")
    env: dict[str, str] = spec(factory=dict, help="more environment variables for the server (CUDA_VISIBLE_DEVICES...)")


def launch_command(settings: ServerSettings, *, folder: Path, port: int, name: str,
                   adapter: Path | None = None) -> tuple[list[str], Path, str]:
    """(command, working folder, model name requests give) that serve ``folder`` (with ``adapter``, vLLM
    only) on 127.0.0.1:``port``."""
    from ftharness.models.local_server import transformers_command

    if settings.launcher == "transformers":
        if adapter is not None:
            raise BadInput("transformers serve loads no LoRA adapter: drop adapter: true (the merged weights are "
                           "served) or use launcher: vllm", field="engine.adapter")
        cmd, cwd, served_name = transformers_command(folder, port)
        return cmd + list(settings.args), cwd, served_name
    cmd = ["vllm", "serve", str(folder), "--host", "127.0.0.1", "--port", str(port),
           "--served-model-name", name,
           "--tensor-parallel-size", str(settings.tensor_parallel_size),
           "--data-parallel-size", str(settings.data_parallel_size)]
    if adapter is None:
        return cmd + list(settings.args), folder, name
    rank = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8")).get("r", 16)
    lora = f"{name}-adapter"
    cmd += ["--enable-lora", "--lora-modules", f"{lora}={adapter}", "--max-lora-rank", str(max(8, int(rank)))]
    return cmd + list(settings.args), folder, lora


def merged_folder(target: Any) -> Path:
    """A folder a server loads for ``target``: the base model's; a full model's own; an adapter merged into
    its base and saved beside the artifact once (``served-merged/``; written to a temporary folder, then
    moved, so a kill leaves no half-written one)."""
    art = target.artifact
    if art is None:
        return Path(target.base_folder())
    if getattr(art, "kind", "adapter") != "adapter":
        return Path(art.path)
    out = Path(art.path) / MERGED_FOLDER
    if (out / "config.json").is_file():
        return out
    from ftharness.models.loading import merge_adapter

    lm = target.load()
    if not merge_adapter(lm):
        raise EnvironmentProblem(f"the adapter at {art.path} cannot be merged into its weights (prompt or prefix "
                                 "tuning), and transformers serve loads no adapter: serve it with engine: local")
    tmp = out.with_name(MERGED_FOLDER + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    lm.model.save_pretrained(tmp)
    lm.tokenizer.save_pretrained(tmp)
    tmp.rename(out)
    return out


class ServerServed:
    """A server the harness started, answering through the endpoint client."""

    weights_reason = None

    def __init__(self, target: Any, settings: ServerSettings) -> None:
        from ftharness.models.endpoint import EndpointConfig
        from ftharness.models.local_server import free_port, start_server

        self.target, self.settings = target, settings
        adapter = None
        if settings.adapter and target.artifact is not None:
            folder, adapter = Path(target.base_folder()), Path(target.artifact.path)
        else:
            folder = merged_folder(target)
        port = free_port()
        self.log = Path(target.work_dir or ".") / f"server-{target.option}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        cmd, cwd, model = launch_command(settings, folder=folder, port=port, name=target.option, adapter=adapter)
        self.command = cmd
        self.proc = start_server(cmd, cwd=cwd, port=port, log=self.log, start_timeout_s=settings.start_timeout_s,
                                 env=settings.env)
        self.config = EndpointConfig(base_url=f"http://127.0.0.1:{port}/v1", model=model,
                                     price_per_million_input=0.0, price_per_million_output=0.0,
                                     concurrency=settings.concurrency, timeout_s=settings.timeout_s,
                                     max_retries=settings.max_retries, deadline_s=settings.deadline_s)
        self.concurrency = settings.concurrency
        self.served = "as trained" if adapter is not None else "merged"
        self._weights: Any = None

    @property
    def weights(self) -> Any:
        """The same weights in this process, loaded on first use (what the forgetting suite scores)."""
        if self._weights is None and self.target.load is not None:
            self._weights = self.target.load()
        return self._weights

    def generate(self, conversations: list[list[dict[str, str]]], settings: Any) -> list[Any]:
        from ftharness.models.endpoint import generate_chat

        return generate_chat(self.config, conversations, settings, file=self.target.file, field=self.target.field,
                             cache=False, schema_on_server=self.settings.launcher == "vllm")

    def record(self) -> dict[str, Any]:
        schema = ("server: response_format json_schema" if self.settings.launcher == "vllm"
                  else "not enforced: transformers serve ignores response_format")
        return {"served": self.served if self.target.artifact is not None else "base model",
                "url": self.config.base_url, "launcher": f"{self.settings.launcher} serve", "schema": schema,
                "weights": WEIGHTS, "concurrency": self.settings.concurrency, "log": str(self.log)}

    def close(self) -> None:
        from ftharness.models.local_server import stop_process

        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None
        self._weights = None


class ServerEngine:
    name = "server"

    def unavailable_reason(self) -> str | None:
        from ftharness.models.local_server import serving_missing

        return serving_missing()

    def check_settings(self, settings: dict[str, Any], *, source: Any, field: str) -> ServerSettings:
        typed = from_mapping(ServerSettings, settings, source=source, prefix=f"{field}.")
        if typed.launcher == "vllm" and shutil.which("vllm") is None and importlib.util.find_spec("vllm") is None:
            raise EnvironmentProblem(f"launcher: vllm needs vLLM installed (pip install vllm, on a CUDA machine); "
                                     f"{source}: {field}")
        if typed.launcher != "vllm" and (typed.adapter or typed.tensor_parallel_size > 1
                                         or typed.data_parallel_size > 1):
            raise BadInput("adapter, tensor_parallel_size and data_parallel_size are vLLM's: set launcher: vllm",
                           file=source, field=field)
        return typed

    def enforces_schema(self, settings: ServerSettings) -> bool:
        return settings.launcher == "vllm"

    def start(self, target: Any) -> ServerServed:
        return ServerServed(target, target.settings)


@hookimpl
def register_engines(register: Any) -> None:
    register(ServerEngine())
