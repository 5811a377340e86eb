"""The model card of a trained artifact: the ``README.md`` beside its weights, for whoever picks it up.

The card follows the Hugging Face model-card format (https://huggingface.co/docs/hub/model-cards, "Model
card metadata"): YAML front matter with ``base_model`` (a hub id, only when the base model has one),
``library_name`` (``peft`` for an adapter, ``transformers`` for a full model folder) and ``tags``; no
``license``, which ftharness cannot know. The Markdown body says what was trained and how: the base model and
its content hash, the trainer and method, every hyperparameter (and whether the candidate set it or where its
default comes from), the data files with their hashes, sizes and the rows used, the training and validation
losses, what the training measured, the instruction the model is served with, and the ftharness and library
versions. It replaces the blank template PEFT's ``save_pretrained`` writes.

:func:`write_card` builds it from the records the training already holds (:class:`CandidateSpec`,
:class:`TrainResult`, the typed hyperparameters, the :class:`Dataset` records, the trainer's
:class:`~ftharness.hookspecs.Method`). :func:`record_evaluation` adds, or replaces, the section a
``compare`` run writes once it has scored the artifact on the eval set: its measured values and gates.
Only a card ftharness wrote is touched.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from ftharness.data.records import Dataset
from ftharness.hookspecs import Method
from ftharness.io import atomic_write_text
from ftharness.suites.gates import GateOutcome
from ftharness.training.trainer import CandidateSpec, TrainResult

CARD = "README.md"
MARK = "<!-- written by ftharness -->"
EVALUATION = "## Evaluation (ftharness compare)"


def write_card(
    folder: Path,
    *,
    spec: CandidateSpec,
    method: Method,
    kind: str,
    hyperparameters: Any,
    result: TrainResult,
    base_sha256: str,
    train: Dataset,
    validation: Dataset | None,
    system_prompt: str | None,
    libraries: dict[str, str],
    launch: dict[str, Any] | None = None,
) -> Path:
    """Write ``folder/README.md`` for the artifact trained from ``spec`` (``kind``: adapter or model);
    ``launch``: the launch record of a training on several processes (``candidate.json``'s ``launch``)."""
    from ftharness import __version__
    from ftharness.models.loading import hub_id

    base = spec.base_model or "embedded"
    hub = hub_id(spec.base_model)
    meta = [f"base_model: {json.dumps(hub)}"] if hub else []
    meta.append(f"library_name: {'peft' if kind == 'adapter' else 'transformers'}")
    meta.append("tags:")
    meta += [f"- {json.dumps(t)}" for t in dict.fromkeys(("ftharness", spec.trainer, method.name))]
    title = method.title or method.name
    what = "an adapter for" if kind == "adapter" else "a model finetuned from"
    lines = [
        "---", *meta, "---", MARK, "",
        f"# {spec.name}",
        "",
        f"{title} ({what} `{base}`), trained by ftharness {__version__} with the `{spec.trainer}` trainer, "
        f"method `{method.name}`, seed {spec.seed}.",
        "",
        "## Base model",
        "",
        f"- named: `{base}`" + (f" (Hugging Face: `{hub}`)" if hub else ""),
        f"- content sha256 (config and weight files): `{base_sha256}`",
    ]
    if spec.start_from:
        lines.append(f"- trained on top of the candidate `{spec.start_from}`")
    lines += ["", "## Hyperparameters", "", "| name | value | from |", "|---|---|---|"]
    for f in dataclasses.fields(hyperparameters):
        given = f.name in spec.hyperparameters
        origin = "the candidate" if given else f.metadata.get("source") or "the trainer's default"
        lines.append(f"| {f.name} | `{_cell(getattr(hyperparameters, f.name))}` | {_cell(origin)} |")
    lines += ["", "## Data", "", "| split | file | file sha256 | file bytes | rows used | sha256 of the rows used |",
              "|---|---|---|---|---|---|"]
    lines += [_data_row(role, d) for role, d in (("train", train), ("validation", validation)) if d is not None]
    replayed: dict[str, int] = {}
    for ex in train.examples:
        if "replay" in ex.meta:
            replayed[str(ex.meta["replay"])] = replayed.get(str(ex.meta["replay"]), 0) + 1
    if replayed:
        lines += ["", "Replay against forgetting: " + ", ".join(
            f"{n} of the train rows are general text ({source})" for source, n in sorted(replayed.items())) + "."]
    lines += ["", "## Training", "", *_losses(result.loss_curve), *_measured(result), *_launched(launch), ""]
    lines += ["## Use", "", "Serve it with the instruction it was trained with "
              + (f"as the system turn:\n\n```text\n{system_prompt}\n```" if system_prompt else
                 "(none: it was trained on the input alone)."), ""]
    if kind == "adapter":
        lines += ["```python", "from peft import PeftModel", "from transformers import AutoModelForCausalLM", "",
                  f"base = AutoModelForCausalLM.from_pretrained({json.dumps(hub or base)})",
                  f"model = PeftModel.from_pretrained(base, {json.dumps(str(folder))})", "```", ""]
    lines += ["## Versions", "", *[f"- {name} {version}" for name, version in {"ftharness": __version__,
                                                                                 **libraries}.items()], ""]
    path = Path(folder) / CARD
    atomic_write_text(path, "\n".join(lines))
    return path


def has_card(folder: Path) -> bool:
    """``folder`` holds a card ftharness wrote (not PEFT's template, not one a person wrote)."""
    path = Path(folder) / CARD
    return path.is_file() and MARK in path.read_text(encoding="utf-8")


def record_evaluation(folder: Path, *, run: str, option: str, metrics: dict[str, float | None],
                      gates: list[GateOutcome]) -> bool:
    """Put the eval-set results of the ``compare`` run ``run`` (where the artifact is the option ``option``)
    into the card, replacing an earlier run's; False (nothing written) when ``folder`` has no ftharness card."""
    if not has_card(folder):
        return False
    path = Path(folder) / CARD
    text = path.read_text(encoding="utf-8").split(EVALUATION)[0].rstrip("\n")
    passed = sum(g.passed for g in gates)
    lines = [text, "", EVALUATION, "",
             f"Run `{run}` scored this artifact as `{option}` on the task's eval set (the rows it never "
             f"trained or was selected on): {passed} of {len(gates)} gates passed.", "",
             "| gate | measured | verdict |", "|---|---|---|"]
    lines += [f"| {g.name} {g.op} {g.threshold:g} | {_number(g.value)} | {'pass' if g.passed else 'FAIL'} |"
              for g in gates]
    lines += ["", "| value | measured |", "|---|---|"]
    lines += [f"| {name} | {_number(value)} |" for name, value in sorted(metrics.items())]
    atomic_write_text(path, "\n".join(lines) + "\n")
    return True


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _number(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.4g}"


def _data_row(role: str, data: Dataset) -> str:
    from ftharness.training.run import examples_hash

    path = Path(data.file) if data.file else None
    size = path.stat().st_size if path is not None and path.is_file() else None
    return (f"| {role} | `{data.file or '-'}` | `{data.sha256 or '-'}` | {'-' if size is None else size} | "
            f"{len(data.examples)} | `{examples_hash(data.examples)}` |")


def _losses(curve: list[dict[str, float]]) -> list[str]:
    """Final training loss, final and best validation loss, from the trainer's logged curve."""
    train = [p for p in curve if "loss" in p]
    val = [p for p in curve if "eval_loss" in p]
    out = []
    if train:
        out.append(f"- training loss: {train[0]['loss']:.4f} at step {train[0]['step']}, "
                   f"{train[-1]['loss']:.4f} at step {train[-1]['step']} (the last logged)")
    if val:
        best = min(val, key=lambda p: p["eval_loss"])
        out.append(f"- validation loss: {val[-1]['eval_loss']:.4f} at step {val[-1]['step']} (the last "
                   f"evaluated), best {best['eval_loss']:.4f} at step {best['step']}")
    if not out:
        out.append("- no loss was logged")
    return [*out, "- every logged point: `loss_curve.json` beside this card"]


def _launched(launch: dict[str, Any] | None) -> list[str]:
    if launch is None:
        return ["- one process"]
    lines = [f"- {launch['world_size']} processes under `accelerate launch`, strategy `{launch['strategy']}` "
             "(the memory above is rank 0's)"]
    if launch.get("accelerate_config"):
        lines += ["", "accelerate config:", "", "```yaml", launch["accelerate_config"].rstrip(), "```"]
    return lines


def _measured(result: TrainResult) -> list[str]:
    memory = "peak process RSS" if result.memory_kind == "rss" else "peak CUDA memory allocated"
    return [
        f"- {result.trainable_params:,} of {result.total_params:,} parameters trained",
        f"- {result.train_tokens:,} tokens in {result.wall_s:.0f} s ({result.tokens_per_s:.1f} tokens/s), "
        f"{memory} {result.peak_memory_bytes / 1e9:.2f} GB",
    ]
