"""Log-likelihoods of text under a causal LM: rolling perplexity and multiple-choice scoring.

Rolling log-likelihood follows the sliding-window method of the Hugging Face perplexity guide
("Perplexity of fixed-length models") and lm-evaluation-harness's ``loglikelihood_rolling`` (Gao et al.,
2021): every token of a text is scored exactly once; the first window scores all its tokens, each later
window advances by ``stride`` tokens and keeps ``window - stride`` tokens before them as context. Each
text starts after one context token (BOS, else EOS) so its first token is scored too. No chat template:
this measures the model as a language model.

Numerics: logits are upcast to float32 before the log-softmax (as logit minus logsumexp) and sums are
accumulated in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ftharness import ui
from ftharness.errors import BadInput


@dataclass
class Request:
    """Score tokens ``ids[score_from:]`` given everything before them in ``ids``."""

    ids: list[int]
    score_from: int


def context_token(tokenizer: Any) -> int:
    tok = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if tok is None:
        raise BadInput("the tokenizer has neither a BOS nor an EOS token to start a text with", field="model")
    return int(tok)


def rolling_requests(ids: list[int], start: int, window: int, stride: int) -> list[Request]:
    """Windows over ``[start] + ids`` that together score each of ``ids`` once."""
    if not 0 < stride < window:
        raise BadInput(f"need 0 < stride < window, got stride {stride}, window {window}", field="stride")
    seq = [start, *ids]
    out, scored = [], 1
    end = min(window, len(seq))
    while scored < len(seq):
        begin = max(0, end - window)
        out.append(Request(seq[begin:end], scored - begin))
        scored = end
        end = min(scored + stride, len(seq))
    return out


def score_requests(
    lm: Any, requests: list[Request], *, token_budget: int = 2048, progress: str | None = None
) -> list[tuple[float, int]]:
    """For each request: (sum of the log-probabilities of its scored tokens in nats, how many tokens).
    Requests are batched longest first under ``token_budget`` padded tokens per batch."""
    import torch

    model = lm.model
    device = next(model.parameters()).device
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    order = sorted(range(len(requests)), key=lambda i: -len(requests[i].ids))
    batches, current, longest = [], [], 0
    for i in order:
        n = len(requests[i].ids)
        if current and max(longest, n) * (len(current) + 1) > token_budget:
            batches.append(current)
            current, longest = [], 0
        current.append(i)
        longest = max(longest, n)
    if current:
        batches.append(current)

    results: list[Any] = [None] * len(requests)
    with ui.progress(progress or "", len(requests), show=progress is not None) as step, torch.inference_mode():
        for batch in batches:
            width = max(len(requests[i].ids) for i in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):  # right padding: positions stay 0..n-1 without position_ids
                seq = requests[i].ids
                ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
                mask[row, : len(seq)] = 1
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits[:, :-1].float()
            targets = ids[:, 1:].to(device)
            # log p(target) = logit(target) - logsumexp(logits): no full log-softmax tensor is allocated
            token_lp = (logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1))
            token_lp = token_lp.double().cpu()
            del logits
            for row, i in enumerate(batch):
                r = requests[i]
                picked = token_lp[row, r.score_from - 1 : len(r.ids) - 1]
                results[i] = (float(picked.sum()), int(picked.numel()))
            step.advance(len(batch))
    return results


def rolling_nll(lm: Any, texts: list[str], *, window: int = 1024, stride: int = 512, token_budget: int = 2048, progress: str | None = None) -> dict[str, float]:
    """Total negative log-likelihood (nats) of ``texts``, with token and UTF-8 byte counts, perplexity
    (exp of the mean NLL per token) and bits per byte (total NLL / ln 2 / bytes; Gao et al., 2020,
    "The Pile"), which stays comparable across tokenizers; ``per_text_nll`` and ``per_text_tokens`` hold
    each text's share, in order (what an interval over documents resamples)."""
    tok = lm.tokenizer
    start = context_token(tok)
    requests, counts = [], []
    for text in texts:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        mine = rolling_requests(list(ids), start, window, stride) if ids else []
        requests.extend(mine)
        counts.append(len(mine))
    scored = score_requests(lm, requests, token_budget=token_budget, progress=progress)
    per_text, at = [], 0
    for n in counts:  # each text's requests are contiguous, in order
        part = scored[at:at + n]
        per_text.append((-math.fsum(s for s, _ in part), sum(k for _, k in part)))
        at += n
    nll = math.fsum(n for n, _ in per_text)
    tokens = sum(k for _, k in per_text)
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    if tokens == 0 or n_bytes == 0:
        raise BadInput("the reference text is empty", field="reference")
    return {
        "nll": nll,
        "tokens": tokens,
        "bytes": n_bytes,
        "ppl": math.exp(nll / tokens),
        "bpb": nll / math.log(2) / n_bytes,
        "per_text_nll": [n for n, _ in per_text],
        "per_text_tokens": [k for _, k in per_text],
    }


def choice_logprobs(lm: Any, context: str, choices: list[str]) -> list[Request]:
    """Requests scoring each continuation after ``context`` (lm-evaluation-harness's split: the
    continuation's tokens are those of context+continuation past the context's own tokens)."""
    tok = lm.tokenizer
    start = context_token(tok)
    ctx_ids = list(tok(context, add_special_tokens=False)["input_ids"])
    out = []
    for choice in choices:
        whole = list(tok(context + choice, add_special_tokens=False)["input_ids"])
        if whole[: len(ctx_ids)] == ctx_ids and len(whole) > len(ctx_ids):
            cont = whole[len(ctx_ids):]
        else:
            cont = list(tok(choice, add_special_tokens=False)["input_ids"])
        out.append(Request([start, *ctx_ids, *cont], 1 + len(ctx_ids)))
    return out
