"""The ``openai`` engine: a model behind an OpenAI-compatible server the task names (``kind: endpoint``).

Its settings are the baseline's ``endpoint:`` block (:class:`ftharness.models.endpoint.EndpointConfig`:
URL, model, prices, concurrency, retries, deadline); the requests go through
:func:`ftharness.models.endpoint.generate_chat`, which treats the server as untrusted input and caches
answers. The server decodes unconstrained (the format suite measures its parse rate), and its weights
cannot be read here, so the suites that read weights are reported unavailable for it.
"""

from __future__ import annotations

from typing import Any

from ftharness.hookspecs import hookimpl

WEIGHTS_REASON = ("reads the model's weights, and an endpoint's cannot be read here (prompting changes no "
                  "weights: there is nothing to forget)")


class EndpointServed:
    weights = None
    weights_reason = WEIGHTS_REASON

    def __init__(self, config: Any, file: Any, field: str) -> None:
        self.config, self.file, self.field = config, file, field
        self.concurrency = config.concurrency

    def generate(self, conversations: list[list[dict[str, str]]], settings: Any) -> list[Any]:
        from ftharness.models.endpoint import generate_chat

        return generate_chat(self.config, conversations, settings, file=self.file, field=self.field)

    def record(self) -> dict[str, Any]:
        return {"served": "hosted", "url": self.config.base_url, "schema": "not enforced: the endpoint decodes "
                "unconstrained", "weights": WEIGHTS_REASON, "concurrency": self.config.concurrency}

    def close(self) -> None:
        pass


class OpenAIEngine:
    name = "openai"

    def unavailable_reason(self) -> str | None:
        return None  # the standard library's HTTP client

    def check_settings(self, settings: dict[str, Any], *, source: Any, field: str) -> Any:
        from ftharness.models.endpoint import EndpointConfig, check_endpoint
        from ftharness.typed import from_mapping

        config = settings if isinstance(settings, EndpointConfig) else from_mapping(
            EndpointConfig, settings, source=source, prefix=f"{field}.")
        check_endpoint(config, file=source, field=field)
        return config

    def usage(self, settings: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """What the rows cost at the endpoint's stated prices, from the server's usage counts (the fields of
        the report's ``EndpointUsage``)."""
        e = settings
        tokens_in = sum(r["prompt_tokens"] for r in rows)
        tokens_out = sum(r["new_tokens"] for r in rows)
        usd = (tokens_in * e.price_per_million_input + tokens_out * e.price_per_million_output) / 1e6
        return {
            "base_url": e.base_url,
            "model": e.model,
            "requests": len(rows),
            "cached": sum(1 for r in rows if r.get("cached")),
            "attempts": sum(int(r.get("attempts", 1)) for r in rows),
            "without_usage": sum(1 for r in rows if not r.get("usage", True)),
            "cut": sum(1 for r in rows if r.get("cut")),
            "input_tokens": tokens_in,
            "output_tokens": tokens_out,
            "price_per_million_input": e.price_per_million_input,
            "price_per_million_output": e.price_per_million_output,
            "usd": usd,
            "usd_per_1k_requests": usd / len(rows) * 1000 if rows else 0.0,
        }

    def start(self, target: Any) -> EndpointServed:
        return EndpointServed(target.settings, target.file, target.field)


@hookimpl
def register_engines(register: Any) -> None:
    register(OpenAIEngine())
