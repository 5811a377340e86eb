"""Prompting baselines: what finetuning has to beat.

- ``zero-shot``: the task instruction as the system turn, then the input. Trained candidates are trained
  and evaluated on exactly these messages (:func:`zero_shot_messages`), so baseline and candidate differ
  only in the weights.
- ``few-shot``: k labeled training examples drawn once with a fixed seed, the same shots for every eval
  input, as user/assistant turns before the input (Brown et al. 2020, "Language Models are Few-Shot
  Learners"). Training examples whose input equals an eval input are never drawn.
- ``retrieved``: per eval input, the k training examples whose inputs are most similar by TF-IDF cosine
  (scikit-learn), the RAG-style baseline (Liu et al. 2022, "What Makes Good In-Context Examples for
  GPT-3?", arXiv:2101.06804). The most similar shot is placed last, nearest the input, the order that
  paper found best. A training example whose input equals the eval input is never retrieved.

The prompt length in tokens of each baseline is counted at generation (``Generation.prompt_tokens``):
long few-shot prompts are part of the cost of not finetuning.

A baseline of the task file's ``kind: endpoint`` builds its messages here too, by its ``shots:`` kind, and
sends them to a hosted model (``ftharness.models.endpoint``) instead of rendering them for the local one.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

from ftharness.data.dedup import normalise
from ftharness.data.records import Example
from ftharness.errors import BadInput

KINDS = ("zero-shot", "few-shot", "retrieved")
RETRIEVAL = "TF-IDF cosine similarity of the inputs (scikit-learn TfidfVectorizer, word unigrams)"


@dataclass
class BaselineSpec:
    name: str
    kind: str  # "zero-shot" | "few-shot" | "retrieved"
    k: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        self.kind = str(self.kind).strip().lower().replace("_", "-")
        if self.kind not in KINDS:
            raise BadInput(f"unknown baseline kind {self.kind!r}; choose one of {', '.join(KINDS)}", field="kind")
        if self.kind != "zero-shot" and int(self.k) < 1:
            raise BadInput(f"a {self.kind} baseline needs k >= 1, got {self.k}", field="k")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.kind == "zero-shot":
            data.pop("k")
            data.pop("seed")
        elif self.kind == "retrieved":
            data.pop("seed")  # retrieval is deterministic
            data["retrieval"] = RETRIEVAL
        return data


def example_turns(example: Example) -> list[dict[str, str]]:
    """The example's turns, its retrieved context (``Example.context``) rendered into its last user turn by
    :func:`ftharness.retrieval.with_context`."""
    messages = [dict(m) for m in example.messages]
    if example.context is None:
        return messages
    from ftharness.retrieval import with_context

    for m in reversed(messages):
        if m.get("role") == "user":
            m["content"] = with_context(example.context, m["content"])
            return messages
    return [*messages, {"role": "user", "content": with_context(example.context, "")}]


def zero_shot_messages(instruction: str | None, example: Example) -> list[dict[str, str]]:
    """The task instruction as the system turn (joined with the example's own system turn, if any), then
    the example's turns."""
    messages = example_turns(example)
    if instruction and instruction.strip():
        if messages and messages[0]["role"] == "system":
            messages[0] = {"role": "system", "content": instruction.strip() + "\n\n" + messages[0]["content"]}
        else:
            messages.insert(0, {"role": "system", "content": instruction.strip()})
    return messages


def shot_turns(example: Example) -> list[dict[str, str]]:
    """A training example as demonstration turns: its non-system turns and its answer."""
    if example.completion is None:
        raise BadInput("a few-shot example needs an answer", file=example.file or None, line=example.line or None)
    turns = [m for m in example_turns(example) if m["role"] != "system"]
    return [*turns, {"role": "assistant", "content": example.completion}]


def select_shots(spec: BaselineSpec, train: list[Example], eval: list[Example], *,
                 exclude: list[Example] | None = None) -> list[list[int]]:
    """For each eval example, the indexes into ``train`` of its shots, in prompt order. ``exclude``: the
    examples whose inputs a few-shot draw never takes (default: ``eval``); a distillation teacher labelling
    training inputs passes the eval set, so that it draws the very shots it is evaluated with."""
    if spec.kind == "zero-shot":
        return [[] for _ in eval]
    labeled = [i for i, t in enumerate(train) if t.completion is not None]
    if not labeled:
        raise BadInput(f"the {spec.kind} baseline {spec.name!r} needs labeled training examples", field="train")
    if spec.kind == "few-shot":
        eval_inputs = {normalise(e.input_text) for e in (eval if exclude is None else exclude)}
        pool = [i for i in labeled if normalise(train[i].input_text) not in eval_inputs]
        shots = random.Random(spec.seed).sample(pool, min(spec.k, len(pool)))
        return [list(shots) for _ in eval]
    return _retrieve(spec.k, train, labeled, eval)


def _retrieve(k: int, train: list[Example], labeled: list[int], eval: list[Example]) -> list[list[int]]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import linear_kernel

    train_texts = [train[i].input_text for i in labeled]
    vectorizer = TfidfVectorizer(token_pattern=r"(?u)\b\w+\b")  # keep one-character words (numbers, codes)
    try:
        matrix = vectorizer.fit_transform(train_texts)
        # TF-IDF rows are L2-normalised, so the dot product is the cosine similarity.
        sims = linear_kernel(vectorizer.transform([e.input_text for e in eval]), matrix)
    except ValueError:  # no word at all in the training inputs: nothing to rank by
        sims = None
    train_norm = [normalise(t) for t in train_texts]
    out = []
    for row, e in enumerate(eval):
        own = normalise(e.input_text)
        scores = sims[row] if sims is not None else [0.0] * len(labeled)
        ranked = sorted(range(len(labeled)), key=lambda j: (-scores[j], j))
        chosen = [labeled[j] for j in ranked if train_norm[j] != own][:k]
        out.append(list(reversed(chosen)))  # most similar last, nearest the input
    return out


def build_messages(spec: BaselineSpec, instruction: str | None, train: list[Example],
                   eval: list[Example], *, exclude: list[Example] | None = None) -> list[list[dict[str, str]]]:
    """One message list per eval example: system (the task instruction), the shots as user/assistant
    turns, then the input (``exclude``: as :func:`select_shots`)."""
    out = []
    for e, shots in zip(eval, select_shots(spec, train, eval, exclude=exclude), strict=True):
        base = zero_shot_messages(instruction, e)
        head, rest = (base[:1], base[1:]) if base and base[0]["role"] == "system" else ([], base)
        demos = [turn for i in shots for turn in shot_turns(train[i])]
        out.append([*head, *demos, *rest])
    return out


def build_prompts(spec: BaselineSpec, instruction: str | None, train: list[Example], eval: list[Example],
                  tokenizer: Any) -> list[str]:
    """The rendered prompts (ftharness.models.prompts.render_prompt) of :func:`build_messages`."""
    from ftharness.models.prompts import render_prompt

    return [render_prompt(tokenizer, m) for m in build_messages(spec, instruction, train, eval)]
