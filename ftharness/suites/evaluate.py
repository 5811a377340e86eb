"""The evaluation pipeline behind ``ftharness eval`` and ``pytest suites/``.

Model mode: data -> zero-shot prompts (``ftharness.baselines.zero_shot_messages``, the exact template
candidates are trained on) -> batched greedy generation -> samples -> :func:`run_suite`.
Predictions mode: outputs produced elsewhere (a hosted model's answers) read from JSONL -> samples ->
:func:`run_suite`, so they are scored by the very same metrics and gates.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from ftharness import __version__
from ftharness.errors import BadInput
from ftharness.io import atomic_write_json, check_folder, parse_json, read_user_text, sha256_file
from ftharness.jsonrecord import doc, to_json
from ftharness.suites.metric import MetricContext, Sample
from ftharness.suites.runner import SuiteResult, run_suite
from ftharness.suites.suite import Suite

# The version of results.schema.json (ftharness/report), which describes this document and the one
# ftharness compare writes (ftharness.report.results). 2: typed records; documents carry "kind"; slice
# buckets count the scores they leave out.
RESULTS_SCHEMA_VERSION = 2
PREDICTION_NUMBERS = ("prompt_tokens", "new_tokens", "latency_s")
PREDICTION_TEXT = ("output", "reference", "input", "id")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(kw_only=True)
class Evaluation:
    """The results.json of ``ftharness eval`` (and of ``pytest suites/ --ftharness-out``): one suite run on
    a model's outputs or on predictions made elsewhere, the samples it scored and where they came from."""

    kind: Literal["ftharness-eval"] = doc("what wrote the document: ftharness eval", default="ftharness-eval")
    schema_version: int = doc("version of results.schema.json", default=RESULTS_SCHEMA_VERSION)
    ftharness_version: str = doc("the ftharness version that wrote it", default=__version__)
    created: str = doc("when it was written (UTC, ISO 8601)", default_factory=_now)
    passed: bool = doc("every gate of the suite passed", init=False)
    suite: dict[str, Any] = doc("the suite as defined (suites/suite.schema.json) and the file it came from")
    source: dict[str, Any] = doc(
        "where the outputs came from: mode 'model' (model, base_model, data file) or 'predictions' (file)"
    )
    instruction: str | None = doc("the task instruction given as the system turn (model mode)", default=None)
    generation: dict[str, Any] | None = doc("generation settings (model mode)", default=None)
    generation_wall_s: float | None = doc("seconds spent generating, all batches (model mode)", default=None)
    finish_reasons: list[str | None] | None = doc(
        "why each generation stopped, in samples order: eos, length, stop (model mode)", default=None
    )
    template: dict[str, Any] | None = doc("the prompt template and a rendered example (model mode)", default=None)
    result: SuiteResult = doc("what the suite measured and its gates")
    samples: list[Sample] = doc("every evaluated example with its output")

    def __post_init__(self) -> None:
        self.passed = self.result.passed

    @staticmethod
    def from_older(data: dict[str, Any]) -> dict[str, Any]:
        """Schema 1 wrote no version."""
        data.setdefault("schema_version", 1)
        return data


# models ------------------------------------------------------------------------------------------
def suite_needs_model(suite: Suite) -> tuple[bool, bool]:
    """(some metric reads the model, some metric compares with the base model)."""
    from ftharness.plugins import metrics

    installed = metrics()
    chosen = [installed[m] for m in suite.metrics if m in installed]
    return (
        any(getattr(m, "needs_model", False) for m in chosen),
        any(getattr(m, "needs_base_model", False) for m in chosen),
    )


def model_only(suite: Suite) -> bool:
    """Every metric of the suite reads the model, none the outputs (forgetting, redteam): outputs made
    elsewhere (predictions) give it nothing to measure."""
    from ftharness.plugins import metrics

    installed = metrics()
    return all(getattr(installed.get(m), "needs_model", False) for m in suite.metrics)


def retrieval_only(suite: Suite) -> bool:
    """Every metric of the suite reads what an option retrieved (``needs_retrieval``: recall@k, MRR,
    groundedness): an option that retrieves nothing gives it nothing to measure."""
    from ftharness.plugins import metrics

    installed = metrics()
    return bool(suite.metrics) and all(getattr(installed.get(m), "needs_retrieval", False) for m in suite.metrics)


def load_models(
    model: str | None, adapter: str | None = None, base_model: str | None = None, *, need_base: bool = False
) -> tuple[Any, Any]:
    """(the model to evaluate, its base model or None). The base is ``base_model`` when given, else the
    base under the adapter (``--adapter``, or ``--model`` naming an adapter folder); a plain model has
    none, so forgetting deltas are then not measured (and gates on them fail, saying so)."""
    from ftharness.models.loading import load_model

    lm = load_model(model, adapter=adapter)
    base = None
    if need_base:
        if base_model:
            base = load_model(base_model)
        elif lm.adapter is not None:
            base = load_model(str(lm.path))
    return lm, base


def evaluate_model(
    suite: Suite,
    lm: Any,
    data: str | Path,
    *,
    base_lm: Any = None,
    instruction: str | None = None,
    schema: dict | None = None,
    limit: int | None = None,
    generation: Any = None,
    progress: bool = True,
) -> Evaluation:
    """Generate on ``data`` with ``lm`` (zero-shot, the task instruction as system turn) and run the suite."""
    from ftharness.baselines import zero_shot_messages
    from ftharness.data.loading import load_dataset
    from ftharness.models.generation import GenerationSettings, generate
    from ftharness.models.prompts import render_prompt, template_record

    dataset = load_dataset(data, require_completion=False)
    examples = dataset.examples[:limit] if limit is not None else dataset.examples
    if not examples:
        raise BadInput("no examples to evaluate (check --limit)", file=data)
    settings = generation or GenerationSettings()
    prompts = [render_prompt(lm.tokenizer, zero_shot_messages(instruction, ex)) for ex in examples]
    start = time.perf_counter()
    gens = generate(lm, prompts, settings, progress=progress)
    wall = time.perf_counter() - start
    samples = [
        Sample(
            id=i,
            input=ex.input_text,
            output=g.text,
            reference=ex.completion,
            meta=dict(ex.meta),
            prompt_tokens=g.prompt_tokens,
            new_tokens=g.new_tokens,
            latency_s=g.latency_s,
        )
        for i, (ex, g) in enumerate(zip(examples, gens, strict=True))
    ]
    ctx = MetricContext(samples=samples, schema=schema, model=lm, base_model=base_lm, option=lm.name, wall_s=wall)
    result = run_suite(suite, ctx, progress=progress)
    source = {
        "mode": "model",
        "model": lm.to_dict(),
        "base_model": base_lm.to_dict() if base_lm is not None else None,
        "data": {"file": str(data), "sha256": dataset.sha256, "format": dataset.format, "n": len(samples),
                 "n_in_file": len(dataset.examples)},
    }
    return Evaluation(
        suite=suite.to_dict(),
        source=source,
        instruction=instruction,
        generation=settings.to_dict(),
        generation_wall_s=wall,
        finish_reasons=[g.finish_reason for g in gens],
        template=template_record(lm.tokenizer),
        result=result,
        samples=samples,
    )


# predictions -------------------------------------------------------------------------------------
def load_predictions(path: str | Path, *, limit: int | None = None) -> list[Sample]:
    """Outputs produced elsewhere, one JSON object a line: ``output`` (text, required), optional
    ``reference`` (text, or a JSON object/array for structured answers), ``input``, ``id``,
    ``prompt_tokens`` / ``new_tokens`` / ``latency_s``; every other field is kept for slices.
    A bad line is a BadInput naming the file and line; nothing is skipped."""
    path = Path(path)
    samples: list[Sample] = []
    for n, raw in enumerate(read_user_text(path).splitlines(), 1):
        if not raw.strip():
            continue
        if limit is not None and len(samples) >= limit:
            break
        samples.append(_prediction(parse_json(raw, file=path, line=n), path, n, len(samples)))
    if not samples:
        raise BadInput("no predictions in the file: nothing to evaluate", file=path)
    return samples


def _prediction(record: Any, path: Path, line: int, index: int) -> Sample:
    if not isinstance(record, dict):
        raise BadInput("each line must be a JSON object with an 'output' field", file=path, line=line)
    if "output" not in record:
        raise BadInput("missing required field", file=path, line=line, field="output")
    output = record["output"]
    if not isinstance(output, str):
        raise BadInput("must be text (the model's raw answer as a string)", file=path, line=line, field="output")
    reference = record.get("reference")
    if isinstance(reference, dict | list):
        reference = json.dumps(reference, ensure_ascii=False)
    elif reference is not None and not isinstance(reference, str):
        raise BadInput("must be text, a JSON object/array, or null", file=path, line=line, field="reference")
    text = record.get("input", "")
    if not isinstance(text, str):
        raise BadInput("must be text", file=path, line=line, field="input")
    numbers = {}
    for key in PREDICTION_NUMBERS:
        value = record.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise BadInput("must be a non-negative number", file=path, line=line, field=key)
        numbers[key] = value
    meta = {k: v for k, v in record.items() if k not in PREDICTION_TEXT + PREDICTION_NUMBERS}
    return Sample(
        id=index,
        input=text,
        output=output,
        reference=reference,
        meta={**meta, **({"id": record["id"]} if "id" in record else {})},
        prompt_tokens=int(numbers["prompt_tokens"]),
        new_tokens=int(numbers["new_tokens"]),
        latency_s=float(numbers["latency_s"]),
    )


def evaluate_predictions(
    suite: Suite,
    predictions: str | Path,
    *,
    schema: dict | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> Evaluation:
    samples = load_predictions(predictions, limit=limit)
    ctx = MetricContext(samples=samples, schema=schema, option=Path(predictions).stem)
    result = run_suite(suite, ctx, progress=progress)
    source = {"mode": "predictions", "predictions": {"file": str(predictions), "sha256": sha256_file(predictions),
                                                    "n": len(samples)}}
    return Evaluation(suite=suite.to_dict(), source=source, result=result, samples=samples)


# results files -----------------------------------------------------------------------------------
def check_out(folder: str | Path) -> Path:
    """``folder/results.json``, refusing a folder that already holds an earlier run's results."""
    target = check_folder(folder, field="--out") / "results.json"
    if target.exists():
        raise BadInput("already holds a results.json from an earlier run; choose another --out", file=folder)
    return target


def write_results(evaluation: Evaluation, out: str | Path | None = None, *, reports: str | Path = "reports") -> Path:
    """Write ``results.json`` atomically into a folder of its own: ``--out DIR`` (which must not already
    hold results) or a new ``reports/eval-YYYYmmdd-HHMMSS[-N]/``. An earlier run is never overwritten."""
    if out is not None:
        folder = Path(out)
        target = check_out(folder)
        folder.mkdir(parents=True, exist_ok=True)
    else:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        base = Path(reports)
        base.mkdir(parents=True, exist_ok=True)
        for n in range(1, 1000):
            folder = base / (f"eval-{stamp}" if n == 1 else f"eval-{stamp}-{n}")
            try:
                folder.mkdir()
                break
            except FileExistsError:
                continue
        else:  # pragma: no cover - a thousand runs in one second
            raise BadInput("cannot find a free results folder name", file=base)
        target = folder / "results.json"
    atomic_write_json(target, to_json(evaluation))
    return target
