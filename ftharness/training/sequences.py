"""Turning examples into training sequences, batching them, and scoring a model's completion loss.

Every trainer renders an example exactly as the baselines prompt it: the messages of
``zero_shot_messages(system_prompt, example)`` through ``training_pair`` (prompt template + answer +
end-of-turn marker, so the model learns to stop). The prompt part of the labels is masked (-100) unless a
``prompt_loss_weight`` > 0 asks for it to count; 0 < w < 1 carries per-token ``loss_weights``.

An example with no prompt turns (``messages == []``: a replay row of general text, or a corpus document)
is a language-modelling row among the supervised ones: its text's tokens (:func:`ftharness.data.corpus.document_ids`:
no chat template, the end-of-sequence token after it) cut to ``max_length``, every token a label.

A raw-text corpus (continued pretraining) becomes fixed-length blocks instead (:func:`corpus_blocks`): every
document's tokens with the end-of-sequence token after each, concatenated and cut every ``block_size``
tokens, every token a label.

Batching is padding-free by default: a batch is the concatenation of its sequences with ``position_ids``
restarting at 0 for each and no attention mask; transformers then builds a block-diagonal causal mask
(``masking_utils.find_packed_sequence_indices``, needs ``use_cache=False``), so no sequence attends to
another (Krell et al. 2021, "Efficient Sequence Packing without Cross-contamination") and no compute is
spent on pad tokens. Prompt-learning methods (prefix, prompt tuning) prepend virtual tokens per row, so
they use ordinary right-padded batches.
"""

from __future__ import annotations

from typing import Any

from ftharness.data.records import Example
from ftharness.errors import BadInput


def example_messages(system_prompt: str | None, example: Example) -> list[dict[str, str]]:
    """The prompt turns of an example, exactly as the zero-shot baseline builds them."""
    from ftharness.baselines import zero_shot_messages

    return zero_shot_messages(system_prompt, example)


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of rendered text; the template already holds any BOS, so none is added twice."""
    bos = getattr(tokenizer, "bos_token", None)
    add = not (bos and text.startswith(bos))
    return list(tokenizer(text, add_special_tokens=add)["input_ids"])


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def sft_rows(
    tokenizer: Any,
    examples: list[Example],
    system_prompt: str | None,
    *,
    max_length: int,
    prompt_loss_weight: float = 0.0,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Tokenised rows ``{input_ids, labels[, loss_weights], completion_start}`` and counts of what was cut."""
    from ftharness.data.corpus import document_ids
    from ftharness.models.prompts import training_pair

    rows: list[dict[str, Any]] = []
    stats = {"examples": len(examples), "truncated": 0, "dropped_no_completion_left": 0, "language_modelling": 0}
    for ex in examples:
        if ex.completion is None:
            raise BadInput("this example has no completion to train on (supervised training needs one)",
                           file=ex.file or None, line=ex.line or None, field="completion")
        if not ex.messages:  # general text (replay): every token a label, no template
            ids = document_ids(tokenizer, ex.completion)
            stats["truncated"] += len(ids) > max_length
            ids = ids[:max_length]
            if len(ids) >= 2:
                rows.append({"input_ids": ids, "labels": list(ids), "completion_start": 0})
                stats["language_modelling"] += 1
            continue
        prompt, completion = training_pair(tokenizer, example_messages(system_prompt, ex), ex.completion)
        prompt_ids = encode(tokenizer, prompt)
        ids = encode(tokenizer, prompt + completion)
        start = common_prefix(prompt_ids, ids)  # tokens can merge across the boundary: split where they differ
        if len(ids) > max_length:
            stats["truncated"] += 1
            ids = ids[:max_length]
        if start >= len(ids):
            stats["dropped_no_completion_left"] += 1
            continue
        row: dict[str, Any] = {"input_ids": ids, "completion_start": start}
        if prompt_loss_weight >= 1.0:
            row["labels"] = list(ids)
        elif prompt_loss_weight <= 0.0:
            row["labels"] = [-100] * start + ids[start:]
        else:
            row["labels"] = list(ids)
            row["loss_weights"] = [float(prompt_loss_weight)] * start + [1.0] * (len(ids) - start)
        rows.append(row)
    if not rows:
        raise BadInput(f"no training example is left after truncating to max_length={max_length}",
                       field="hyperparameters.max_length")
    return rows, stats


RUN_CLM = ("transformers examples/pytorch/language-modeling/run_clm.py: block_size defaults to the smaller of 1024 "
           "and the model's maximum length")
MAX_DEFAULT_BLOCK = 1024  # run_clm.py's cap on its default block size


def max_positions(config: Any) -> int | None:
    """The longest sequence a model's config allows (``max_position_embeddings``, GPT-2's ``n_positions``);
    None when it states none. ``config``: a transformers config or a config.json mapping."""
    get = config.get if isinstance(config, dict) else lambda k: getattr(config, k, None)
    for key in ("max_position_embeddings", "n_positions"):
        value = get(key)
        if isinstance(value, int) and value > 0:
            return value
    return None


def resolve_block_size(block_size: int | None, positions: int | None, *, file: Any = None,
                       field: str = "hyperparameters.block_size") -> int:
    """The block size a corpus is packed to: ``block_size``, or by default the smaller of
    :data:`MAX_DEFAULT_BLOCK` and the model's maximum positions (:data:`RUN_CLM`). BadInput (``file``,
    ``field``) when the given size is longer than the model's positions."""
    if block_size is None:
        return min(MAX_DEFAULT_BLOCK, positions or MAX_DEFAULT_BLOCK)
    if positions is not None and block_size > positions:
        raise BadInput(f"{block_size} is longer than the model's {positions} positions; use at most {positions}",
                       file=file, field=field)
    return block_size


def corpus_blocks(tokenizer: Any, documents: list[Example], block_size: int) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Pack raw-text documents into training rows of ``block_size`` tokens, and the counts of what was packed.

    The documents' tokens (:func:`ftharness.data.corpus.document_ids`: no special tokens, the
    end-of-sequence token after each) are concatenated in order and cut every ``block_size`` tokens, as
    GPT-2/3 pretraining and transformers' ``run_clm.py`` example pack text: a block may hold the end of one
    document and the start of the next, separated by the end-of-sequence token, and attention runs across
    that boundary inside the block. Every token is a label (``labels == input_ids``). The last, partial
    block is kept as a shorter row (``run_clm.py`` drops it; a small domain corpus cannot spare the text),
    unless it is a single token, which has nothing to predict.
    """
    from ftharness.data.corpus import document_ids

    stream = [t for doc in documents for t in document_ids(tokenizer, doc.completion or "")]
    blocks = [stream[i:i + block_size] for i in range(0, len(stream), block_size)]
    if blocks and len(blocks[-1]) < 2:
        blocks.pop()
    if not blocks:
        raise BadInput(f"the corpus holds {len(stream)} token(s): nothing to train on", field="data.corpus")
    rows = [{"input_ids": b, "labels": list(b), "completion_start": 0} for b in blocks]
    stats = {"documents": len(documents), "tokens": len(stream), "block_size": block_size, "blocks": len(blocks),
             "last_block_tokens": len(blocks[-1]), "dropped_tokens": len(stream) - sum(len(b) for b in blocks)}
    return rows, stats


class SequenceCollator:
    """Batches rows into padding-free (``padding_free=True``) or right-padded tensors.

    Padding-free output: ``input_ids``/``labels``/``position_ids`` of shape (1, total tokens), no attention
    mask, the first label of each sequence masked so no sequence is trained to predict the next one's start.
    """

    def __init__(self, pad_token_id: int, padding_free: bool = True) -> None:
        self.pad_token_id = pad_token_id
        self.padding_free = padding_free

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        weighted = "loss_weights" in rows[0]
        if self.padding_free:
            ids = torch.tensor([t for r in rows for t in r["input_ids"]])[None]
            labels = torch.tensor([t for r in rows for t in r["labels"]])[None]
            pos = torch.cat([torch.arange(len(r["input_ids"])) for r in rows])[None]
            labels[pos == 0] = -100
            out = {"input_ids": ids, "labels": labels, "position_ids": pos}
            if weighted:
                out["loss_weights"] = torch.tensor([w for r in rows for w in r["loss_weights"]])[None]
            return out
        n = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), n), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), n), -100, dtype=torch.long)
        mask = torch.zeros((len(rows), n), dtype=torch.long)
        weights = torch.zeros((len(rows), n)) if weighted else None
        for i, r in enumerate(rows):
            k = len(r["input_ids"])
            ids[i, :k] = torch.tensor(r["input_ids"])
            labels[i, :k] = torch.tensor(r["labels"])
            mask[i, :k] = 1
            if weights is not None:
                weights[i, :k] = torch.tensor(r["loss_weights"])
        out = {"input_ids": ids, "labels": labels, "attention_mask": mask}
        if weights is not None:
            out["loss_weights"] = weights
        return out


def batch_tokens(batch: dict[str, Any]) -> int:
    """Real (non-pad) tokens in a collated batch."""
    if "attention_mask" in batch:
        return int(batch["attention_mask"].sum())
    return int(batch["input_ids"].numel())


def completion_loss(model: Any, rows: list[dict[str, Any]], *, batch_size: int = 8) -> float:
    """Mean negative log-likelihood per completion token (prompt masked), summed over all rows then divided:
    the same number for every candidate and baseline trainer, whatever its own loss settings were."""
    import torch

    collate = SequenceCollator(pad_token_id=0, padding_free=False)
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        with torch.no_grad():
            for i in range(0, len(rows), batch_size):
                chunk = [{"input_ids": r["input_ids"],
                          "labels": [-100] * r["completion_start"] + r["input_ids"][r["completion_start"]:]}
                         for r in rows[i:i + batch_size]]
                batch = collate(chunk)
                device = next(model.parameters()).device
                batch = {k: v.to(device) for k, v in batch.items()}
                labels = batch.pop("labels")
                logits = model(**batch, use_cache=False).logits.float()
                logits = logits[:, -labels.size(1):]  # prompt-learning methods prepend virtual positions
                shift_logits = logits[:, :-1].reshape(-1, logits.size(-1))
                shift_labels = labels[:, 1:].reshape(-1)
                nll = torch.nn.functional.cross_entropy(shift_logits, shift_labels, ignore_index=-100, reduction="sum")
                total += float(nll)
                count += int((shift_labels != -100).sum())
    finally:
        model.train(was_training)
    return total / max(count, 1)
