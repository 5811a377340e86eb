"""The batched generation engine every baseline and candidate is measured with.

Why it is shaped like this:
- Prompts are sorted by token length and cut into batches of similar lengths, so little compute goes to
  padding; results come back in input order.
- Batches are padded on the left, so every row continues from the right edge; the attention mask hides
  the padding and transformers derives position ids from it (``cumsum(mask) - 1``), with the KV cache on.
  Greedy outputs therefore equal one-prompt-at-a-time ``model.generate`` (tested on a tiny and the real
  model).
- A row stops at any of the model's EOS ids (tokenizer, config and generation config) or at a stop string;
  transformers pads finished rows and ends the batch when every row is done, and the text is cut at the
  first stop string.
- Latency: a request is answered when its batch ends, so each request's ``latency_s`` is its batch's wall
  time (requests of one batch share it).
- ``json_schema`` constrains every row to JSON valid under that schema (ftharness.models.constrained:
  one logits processor per batch, a row ends as soon as its JSON closes). Without it nothing changes:
  no processor is passed and the settings record is the same as before the option existed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ftharness import ui
from ftharness.errors import BadInput


@dataclass
class GenerationSettings:
    """What decides the outputs; recorded with every result.

    ``batch_size`` 32: on the 2-core CPU the embedded model's decoding reads every weight once per step
    whatever the batch, so one batch of 24 rows beat 16 + 8 by about a third (benchmarks/generate.py
    measures batch sizes against one prompt at a time); rows of very different output lengths idle in a
    large batch, which the engine limits by batching prompts of similar length.
    """

    max_new_tokens: int = 256
    batch_size: int = 32
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    stop: list[str] = field(default_factory=list)
    json_schema: dict[str, Any] | None = None  # constrain outputs to JSON valid under this schema

    def __post_init__(self) -> None:
        if int(self.max_new_tokens) < 1:
            raise BadInput(f"must be at least 1, got {self.max_new_tokens}", field="max_new_tokens")
        if int(self.batch_size) < 1:
            raise BadInput(f"must be at least 1, got {self.batch_size}", field="batch_size")
        if not self.temperature > 0:
            raise BadInput(f"must be > 0 (use do_sample: false for greedy), got {self.temperature}", field="temperature")
        if not 0 < self.top_p <= 1:
            raise BadInput(f"must be in (0, 1], got {self.top_p}", field="top_p")
        if isinstance(self.stop, str):
            self.stop = [self.stop]
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise BadInput("stop strings must be non-empty strings", field="stop")
        if self.json_schema is not None:
            from ftharness.models.constrained import check_schema

            check_schema(self.json_schema)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if not self.do_sample:  # greedy ignores these; do not pretend they mattered
            data.pop("temperature")
            data.pop("top_p")
            data.pop("seed")
        if self.json_schema is None:  # unconstrained records stay as they were
            data.pop("json_schema")
        else:
            from ftharness.models.constrained import describe

            data["constrained"] = describe(self.json_schema)
        return data


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    new_tokens: int  # tokens the model produced for this request, the closing EOS included
    latency_s: float  # wall time of the batch that answered it
    finish_reason: str  # "eos" | "stop" | "length"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def encode_prompt(tokenizer: Any, prompt: str) -> list[int]:
    """Token ids of a rendered prompt. Chat templates already write the BOS token; add it only when absent."""
    bos = getattr(tokenizer, "bos_token", None)
    add_special = not (bos and prompt.startswith(bos))
    return list(tokenizer(prompt, add_special_tokens=add_special)["input_ids"])


def eos_token_ids(lm: Any) -> list[int]:
    """Every id that ends a turn for this model: the tokenizer's EOS and the config's and generation
    config's ``eos_token_id`` (int or list), in that order, without repeats."""
    ids: list[int] = []
    sources = [
        getattr(lm.tokenizer, "eos_token_id", None),
        getattr(getattr(lm.model, "config", None), "eos_token_id", None),
        getattr(getattr(lm.model, "generation_config", None), "eos_token_id", None),
    ]
    for value in sources:
        for i in value if isinstance(value, (list, tuple)) else [value]:
            if i is not None and int(i) not in ids:
                ids.append(int(i))
    return ids


def generation_config(lm: Any, settings: GenerationSettings) -> Any:
    """The transformers GenerationConfig for ``settings``: sampling knobs set explicitly so a model's own
    defaults (e.g. top_k 50) never change results silently."""
    from transformers import GenerationConfig

    kwargs: dict[str, Any] = {
        "max_new_tokens": int(settings.max_new_tokens),
        "do_sample": bool(settings.do_sample),
        "num_beams": 1,
        "use_cache": True,
        "eos_token_id": eos_token_ids(lm),
        "pad_token_id": lm.tokenizer.pad_token_id,
        "repetition_penalty": 1.0,
    }
    if settings.do_sample:
        kwargs.update(temperature=float(settings.temperature), top_p=float(settings.top_p), top_k=0)
    return GenerationConfig(**kwargs)


def generate(
    lm: Any,
    prompts: list[str],
    settings: GenerationSettings | None = None,
    *,
    progress: bool = True,
    processor_factory: Callable[[], Any] | None = None,
) -> list[Generation]:
    """Generate a completion for each rendered prompt; results in input order.

    ``processor_factory``: called once per batch for an extra transformers ``LogitsProcessor`` applied
    after the schema constraint (benchmarks/constrained.py runs other constraint libraries through this
    engine with it)."""
    import torch

    settings = settings or GenerationSettings()
    if not prompts:
        return []
    tok = lm.tokenizer
    if tok.pad_token_id is None:
        raise BadInput("the tokenizer has no pad token; load the model with ftharness.models.loading.load_model", field="model")
    encoded = []
    for i, prompt in enumerate(prompts):
        if not isinstance(prompt, str):
            raise BadInput(f"prompt {i} is a {type(prompt).__name__}, not a string", field="prompts")
        ids = encode_prompt(tok, prompt)
        if not ids:
            raise BadInput(f"prompt {i} is empty", field="prompts")
        encoded.append(ids)
    # Longest first: the largest batch shapes come first (an out-of-memory shows at once) and neighbours in a
    # batch have similar lengths. sorted() is stable, so ties keep input order.
    order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
    batches = [order[s:s + settings.batch_size] for s in range(0, len(order), settings.batch_size)]
    config = generation_config(lm, settings)
    eos_ids = set(config.eos_token_id)
    if settings.json_schema is not None:
        from ftharness.models.constrained import compile_schema, json_schema_processor, vocab_size

        # Compile before the first batch: a schema the library cannot take fails at once.
        compile_schema(tok, settings.json_schema, vocab_size=vocab_size(lm), stop_token_ids=config.eos_token_id)
    device = next(lm.model.parameters()).device
    results: list[Generation | None] = [None] * len(prompts)
    rng_devices = [device.index or 0] if device.type == "cuda" else []

    with (
        ui.progress("generating", len(prompts), show=progress) as step,
        torch.inference_mode(),
        torch.random.fork_rng(devices=rng_devices),
    ):
        torch.manual_seed(settings.seed)
        for batch in batches:
            input_ids, attention_mask = _left_pad([encoded[i] for i in batch], tok.pad_token_id, device)
            width = input_ids.shape[1]
            criteria = _stop_criteria(tok, settings.stop, width) if settings.stop else None
            processors = []
            if settings.json_schema is not None:
                processors.append(json_schema_processor(lm, settings.json_schema, eos_ids=config.eos_token_id,
                                                        stopped=criteria.stopped_at if criteria else None))
            if processor_factory is not None:
                processors.append(processor_factory())
            extra = {"logits_processor": _processor_list(processors)} if processors else {}
            start = time.perf_counter()
            out = lm.model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                generation_config=config,
                stopping_criteria=_criteria_list(criteria),
                **extra,
            )
            elapsed = time.perf_counter() - start
            new = out[:, width:].tolist()
            for row, i in enumerate(batch):
                stopped_at = criteria.stopped_at.get(row) if criteria else None
                results[i] = _finish(tok, new[row], len(encoded[i]), eos_ids, settings.stop, stopped_at, elapsed)
            step.advance(len(batch))
    return results  # type: ignore[return-value]


def _left_pad(rows: list[list[int]], pad_id: int, device: Any) -> tuple[Any, Any]:
    import torch

    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for j, ids in enumerate(rows):
        input_ids[j, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
        attention_mask[j, width - len(ids):] = 1
    return input_ids.to(device), attention_mask.to(device)


def _finish(tok: Any, new: list[int], prompt_tokens: int, eos_ids: set[int], stop: list[str],
            stopped_at: int | None, latency: float) -> Generation:
    """Cut one row's new tokens at its end (EOS, stop string, or the length limit) and decode them."""
    reason = "length"
    produced = len(new)
    if stopped_at is not None:
        produced = stopped_at
    else:
        for j, t in enumerate(new):
            if t in eos_ids:
                produced, reason = j + 1, "eos"
                break
    kept = new[:produced - 1] if reason == "eos" else new[:produced]
    text = tok.decode(kept, skip_special_tokens=True)
    cut = min((p for p in (text.find(s) for s in stop) if p >= 0), default=-1)
    if cut >= 0:
        text, reason = text[:cut], "stop"
    return Generation(text=text, prompt_tokens=prompt_tokens, new_tokens=produced, latency_s=latency, finish_reason=reason)


def _stop_criteria(tok: Any, stop: list[str], prompt_width: int) -> Any:
    """A StoppingCriteria marking a row done once a stop string appears in its new text; it remembers
    after how many new tokens each row stopped. Only the last few tokens are decoded each step: a stop
    string of n characters lies within the last n + 4 tokens (a token decodes to at least one character,
    bar partial UTF-8 bytes)."""
    import torch
    from transformers import StoppingCriteria

    window = max(len(s) for s in stop) + 4

    class StopStrings(StoppingCriteria):
        def __init__(self) -> None:
            self.stopped_at: dict[int, int] = {}

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            n_new = input_ids.shape[1] - prompt_width
            done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
            lo = max(prompt_width, input_ids.shape[1] - window)
            tails = input_ids[:, lo:].tolist()
            for row, tail in enumerate(tails):
                if row in self.stopped_at:
                    done[row] = True
                    continue
                text = tok.decode(tail, skip_special_tokens=True)
                if any(s in text for s in stop):
                    self.stopped_at[row] = n_new
                    done[row] = True
            return done

    return StopStrings()


def _criteria_list(criteria: Any) -> Any:
    if criteria is None:
        return None
    from transformers import StoppingCriteriaList

    return StoppingCriteriaList([criteria])


def _processor_list(processors: list[Any]) -> Any:
    from transformers import LogitsProcessorList

    return LogitsProcessorList(processors)
