"""``results.json``: everything a comparison measured and decided, in one document that the HTML, JUnit and
terminal reports are rendered from and that other tools read.

The document is :class:`CompareResults` and the records it holds (``ftharness.report.records``: options,
sweeps, phases, the paired statistics, the decision; the suites' results), each field saying what it means
(``ftharness.jsonrecord``). ``ftharness eval`` writes the other kind of results.json
(:class:`ftharness.suites.evaluate.Evaluation`); ``kind`` tells them apart. Both are described by the
published JSON Schema ``results.schema.json`` beside this module, generated from these classes
(``ftharness.report.schema``).

:func:`read_results` reads either kind back into its record class, documents of schema version 1 (written
before ``kind``) included: their older shapes are mapped by the records' ``from_older``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ftharness.errors import BadInput
from ftharness.io import read_json_file
from ftharness.jsonrecord import doc, from_json
from ftharness.report.records import (
    DataFile,
    Decision,
    Interval,
    OptionRecord,
    PairedComparison,
    Phase,
    Selection,
)
from ftharness.suites.evaluate import RESULTS_SCHEMA_VERSION, Evaluation


@dataclass(kw_only=True)
class SampleOutput:
    """One option's output on one eval row, with its format verdict."""

    text: str = doc("the output")
    finish_reason: str | None = doc("why generation stopped: eos, length (max_new_tokens), stop")
    strict_ok: bool = doc("bare JSON that validates against the task's schema")
    json_found: bool = doc("a JSON document was found, bare or inside other text")
    errors: list[str] = doc("what is wrong with it, at most six lines")
    error_paths: list[str] = doc("JSON paths of the schema errors")
    retrieved: list[dict[str, Any]] | None = doc(
        "the chunks its prompt held, best first ({id, doc_id, score}); null: the option retrieves nothing",
        default=None,
    )
    context: str | None = doc("those chunks' text as the prompt showed it", default=None)


@dataclass(kw_only=True)
class SampleRow:
    """One eval row with every option's output on it (the report's side-by-side view)."""

    id: int = doc("position of the row in the eval file, from 0")
    input: str = doc("the row's input")
    reference: str | None = doc("the expected output")
    meta: dict[str, Any] = doc("the row's other fields")
    outputs: dict[str, SampleOutput] = doc("each option's output, by option name")


@dataclass(kw_only=True)
class TaskRecord:
    """The task that was run."""

    name: str = doc("the task's name")
    file: str = doc("the task file")
    hash: str = doc("hash of the task file and every file it names: what identifies the same task")
    base_model: dict[str, Any] | None = doc("the base model as named and the folder it was loaded from")
    instruction: str = doc("the task instruction")
    schema_file: str | None = doc("the JSON Schema file of the outputs")
    schema: dict[str, Any] | None = doc("that JSON Schema")
    slices: list[str] = doc("the slice fields the task file names")
    gates: list[str] = doc("the task file's own gates, as METRIC.VALUE OP THRESHOLD")
    decision_settings: dict[str, Any] = doc("the task file's decision section, defaults filled in")


@dataclass(kw_only=True)
class Constraints:
    """What schema-constrained decoding enforces of the task's schema."""

    library: str = doc("the constrained-decoding library")
    version: str | None = doc("its version (null: not installed)")
    whitespace: str = doc("the whitespace the grammar allows")
    unenforced_keywords: list[str] = doc("schema keywords it cannot enforce, each once")
    unenforced: list[dict[str, str]] = doc("each place it cannot enforce: {path, keyword, why}")
    token_budget: int | None = doc(
        "new tokens a constrained row may take: the schema's longest compact document, so every row closes "
        "(null: the schema does not bound it, and the task's max_new_tokens applies)",
        default=None,
    )


@dataclass(kw_only=True)
class Settings:
    """How the run was made: what it takes to repeat it."""

    base_model: dict[str, Any] | None = doc("the base model as named and the folder it was loaded from")
    generation: dict[str, Any] = doc("generation settings (max_new_tokens, batch_size, sampling, stop)")
    seed: int = doc("the task's seed")
    dtype: str = doc("the weights' dtype")
    batch_size: int = doc("generation batch size")
    prompt_template: dict[str, Any] | None = doc(
        "the base model's prompt template and a rendered example (null: every option is answered by an endpoint)"
    )
    baselines: list[dict[str, Any]] = doc("the task file's baselines")
    candidates: list[dict[str, Any]] = doc("the evaluated candidates' specs")
    suites: list[str] = doc("the suites as the task file names them")
    resumed: bool = doc("the run continued an interrupted one")
    validation: dict[str, Any] = doc("the task file's validation section")
    constrained_decoding: Constraints | None = doc("what constrained decoding enforces (null: no option uses it)")
    unavailable: dict[str, str] = doc(
        "provenance that could not be read (base model, template, constraints) and why", default_factory=dict
    )


@dataclass(kw_only=True)
class Timing:
    """Where the run's time went."""

    run_wall_s: float = doc("seconds from start to the reports")
    experiment_wall_s: float = doc("seconds of training, generation and scoring")
    events: list[str] = doc("what was reused or computed, in order")
    training_s: dict[str, float] = doc("each trained option's own training seconds")
    generation_s: dict[str, float] = doc("each option's seconds of generation on the eval rows")
    phases: list[Phase] = doc("each phase's time and peak memory", default_factory=list)


@dataclass(kw_only=True)
class CompareResults:
    """The results.json of ``ftharness compare``: every option measured on the same eval rows, the
    sweeps, the paired statistics and the decision."""

    kind: Literal["ftharness-compare"] = doc("what wrote the document: ftharness compare", default="ftharness-compare")
    schema_version: int = doc("version of results.schema.json", default=RESULTS_SCHEMA_VERSION)
    run_id: str = doc("the run folder's name under the reports folder")
    task: TaskRecord = doc("the task")
    settings: Settings = doc("how the run was made")
    environment: dict[str, Any] = doc("python, platform, CPU count, library versions, CUDA device")
    data: dict[str, DataFile] = doc("train, eval, preference and validation rows, and the corpus's documents")
    suites: list[dict[str, Any]] = doc("the suites as defined (suites/suite.schema.json)")
    options: list[OptionRecord] = doc("every baseline and every finalist candidate, in task order")
    selection: dict[str, Selection] = doc("each sweep's points and the finalist chosen on validation")
    comparisons: list[PairedComparison] = doc(
        "each option against the best prompting baseline, paired, on the decision metric"
    )
    intervals: dict[str, Interval] = doc("each option's own bootstrap interval of the decision metric")
    decision: Decision = doc("the verdict")
    samples: list[SampleRow] = doc("the first eval rows with every option's output, side by side")
    timing: Timing = doc("where the time went")

    @staticmethod
    def from_older(data: dict[str, Any]) -> dict[str, Any]:
        """Schema 1 kept each option's interval in its comparison row, with a row for the reference."""
        rows = data.get("comparisons") or []
        if "intervals" not in data:
            data["intervals"] = {
                r["option"]: {"metric": r["metric"], "low": r["option_ci_low"], "high": r["option_ci_high"],
                              "confidence": r["confidence"]}
                for r in rows
                if "option_ci_low" in r
            }
        data["comparisons"] = [r for r in rows if r.get("verdict") != "reference"]
        return data


def output_check(text: str, schema: dict | None, finish_reason: str | None = None, *,
                 json_task: bool = True) -> SampleOutput:
    """One output with its format verdict for the side-by-side view: strict parse, lenient parse, schema
    errors. ``json_task=False`` (a task without a schema, whose answers are text): no format verdict."""
    from ftharness.suites.json_extract import parse_lenient, parse_strict

    if not json_task:
        return SampleOutput(text=text, finish_reason=finish_reason, strict_ok=True, json_found=False, errors=[],
                            error_paths=[])

    strict = parse_strict(text)
    found = strict if strict.ok else parse_lenient(text)
    errors: list[str] = []
    paths: list[str] = []
    if not found.ok:
        errors.append(f"no JSON found: {strict.error}" if strict.error else "no JSON found")
    elif schema is not None:
        from jsonschema.validators import validator_for

        cls = validator_for(schema)
        for e in cls(schema, format_checker=cls.FORMAT_CHECKER).iter_errors(found.value):
            errors.append(f"{e.json_path}: {e.message}")
            paths.append(e.json_path)
    if found.ok and not strict.ok:
        errors.insert(0, f"not bare JSON (found by {found.how}; text around it)")
    return SampleOutput(
        text=text,
        finish_reason=finish_reason,
        strict_ok=strict.ok and not paths,
        json_found=found.ok,
        errors=errors[:6],
        error_paths=paths,
    )


def side_by_side(
    names: list[str], samples: dict[str, list[dict]], schema: dict | None, limit: int = 24
) -> list[SampleRow]:
    """One row per eval input: the reference and every option's output on it. ``samples`` are the rows
    of each option's samples file."""
    by_option = {n: {r["id"]: r for r in samples.get(n, [])} for n in names}
    ids = sorted({i for rows_ in by_option.values() for i in rows_})[:limit]
    rows = []
    for i in ids:
        first = next(by_option[n][i] for n in names if i in by_option[n])
        outputs = {
            n: dataclasses.replace(output_check(r["output"], schema, r.get("finish_reason"), json_task=schema is not None),
                                   retrieved=r.get("retrieved"), context=r.get("context"))
            for n in names
            if (r := by_option[n].get(i)) is not None
        }
        rows.append(
            SampleRow(id=i, input=first["input"], reference=first.get("reference"), meta=first.get("meta") or {},
                      outputs=outputs)
        )
    return rows


def task_record(task: Any, task_hash: str, base_model: dict[str, Any] | None) -> TaskRecord:
    """The task as results.json records it (``task`` is a loaded ``ftharness.compare.task.Task``)."""
    import dataclasses

    return TaskRecord(
        name=task.name,
        file=str(task.file),
        hash=task_hash,
        base_model=base_model,
        instruction=task.instruction,
        schema_file=str(task.schema_path) if task.schema_path else None,
        schema=task.schema,
        slices=list(task.spec.slices),
        gates=[g.text for g in task.gates],
        decision_settings=dataclasses.asdict(task.spec.decision),
    )


def read_results(path: str | Path) -> CompareResults | Evaluation:
    """A results.json of either kind, as its record (BadInput naming the file when it is not one)."""
    path = Path(path)
    data = read_json_file(path)  # strict JSON, as to_json writes it
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind is None and isinstance(data, dict) and "options" in data:
        kind = "ftharness-compare"  # schema 1 wrote no kind
    cls = {"ftharness-compare": CompareResults, "ftharness-eval": Evaluation}.get(kind)
    if cls is None:
        raise BadInput("not an ftharness results.json (no known 'kind')", file=path)
    try:
        return from_json(cls, data)
    except (ValueError, TypeError) as e:
        raise BadInput(f"not a readable results.json: {e}", file=path) from None
