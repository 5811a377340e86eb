"""Rendering chat turns into the exact text a model sees: one function for baselines, candidates and
training alike, because the prompt template alone swings scores a lot.

With a chat template the tokenizer's own template renders the turns (``add_generation_prompt``). Without
one, a plain, documented layout is used instead. Both the rendered prompt and the training target come
from here, so a candidate is trained on precisely the text it is later evaluated on.
"""

from __future__ import annotations

from typing import Any

PLAIN_ROLES = {"system": "", "user": "### Input:\n", "assistant": "### Response:\n"}


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def render_prompt(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """The prompt text for ``messages``, ending where the model's answer begins."""
    if has_chat_template(tokenizer):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return _plain(messages) + PLAIN_ROLES["assistant"]


def training_pair(tokenizer: Any, messages: list[dict[str, str]], completion: str) -> tuple[str, str]:
    """(prompt, completion) texts for supervised training: the prompt exactly as :func:`render_prompt`
    gives it, and the answer followed by whatever closes an assistant turn (the template's end-of-turn
    token, else the tokenizer's EOS), so the model learns to stop."""
    prompt = render_prompt(tokenizer, messages)
    if has_chat_template(tokenizer):
        full = tokenizer.apply_chat_template(
            [*messages, {"role": "assistant", "content": completion}], tokenize=False
        )
        if full.startswith(prompt) and completion in full[len(prompt):]:
            tail = full[len(prompt):]
            # Keep the answer and the end-of-turn marker; drop trailing newlines the template adds.
            end = tail.index(completion) + len(completion)
            closing = tail[end:].rstrip("\n")
            return prompt, tail[:end] + closing
    eos = getattr(tokenizer, "eos_token", None) or ""
    return prompt, completion + eos


def template_record(tokenizer: Any) -> dict[str, Any]:
    """What results record about the template: its source text (or the plain layout) and an example."""
    example = [{"role": "system", "content": "{instruction}"}, {"role": "user", "content": "{input}"}]
    return {
        "kind": "chat_template" if has_chat_template(tokenizer) else "plain",
        "template": tokenizer.chat_template if has_chat_template(tokenizer) else PLAIN_ROLES,
        "rendered_example": render_prompt(tokenizer, example),
    }


def _plain(messages: list[dict[str, str]]) -> str:
    parts = []
    for m in messages:
        role = m.get("role", "user")
        if role == "system":
            parts.append(m["content"].strip() + "\n\n")
        else:
            parts.append(PLAIN_ROLES.get(role, f"### {role}:\n") + m["content"].strip() + "\n\n")
    return "".join(parts)
