"""`ftharness eval`: run a suite on a model (or on predictions made elsewhere) and gate it.

Exit codes: 0 every gate passed, 1 a gate failed, 2 bad input (including a run that evaluated nothing),
3 the machine cannot do it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ftharness.suites.options import OPTIONS

    p = sub.add_parser(
        "eval",
        help="run an evaluation suite on a model or on predictions; exit 1 if a gate fails",
        description="Run an evaluation suite (suites/NAME.yaml or a path) on a model's zero-shot outputs "
        "for --data, or on outputs produced elsewhere (--predictions). Exit 0 when every gate passes, 1 when one "
        "fails, 2 for bad input.",
    )
    p.add_argument("--suite", required=True, help="suite name (suites/NAME.yaml) or path to a suite YAML file")
    src = p.add_argument_group("what to evaluate (a model on data, or predictions)")
    for option in OPTIONS:
        (src if option.source else p).add_argument(f"--{option.name}", **option.kwargs())
    p.add_argument("--instruction-file", help="read the task instruction from this file")
    p.add_argument("--batch-size", type=int, default=16, help="generation batch size (default 16)")
    p.add_argument("--out", help="folder for results.json (default: a new reports/eval-TIMESTAMP/)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON document on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ftharness import ui
    from ftharness.errors import BadInput
    from ftharness.suites.evaluate import (
        check_out,
        evaluate_model,
        evaluate_predictions,
        load_models,
        suite_needs_model,
        write_results,
    )
    from ftharness.suites.suite import load_suite
    from ftharness.typed import flag_name, load_json_schema, text_or_file

    if args.predictions and (args.model or args.adapter or args.data or args.base_model):
        raise BadInput("give either --predictions or --model/--adapter/--data, not both", field="--predictions")
    if not args.predictions and not args.data:
        raise BadInput("nothing to evaluate: give --data (with --model, default the embedded model) or --predictions",
                       field="--data")
    if args.limit is not None and args.limit < 1:
        raise BadInput(f"must be at least 1, got {args.limit}", field="--limit")
    instruction = text_or_file(args.instruction, args.instruction_file, names=("--instruction", "--instruction-file"))

    if args.out:
        check_out(args.out)
    suite = load_suite(args.suite)
    schema = load_json_schema(args.schema, field="--schema") if args.schema else None
    if args.predictions:
        evaluation = evaluate_predictions(suite, args.predictions, schema=schema, limit=args.limit)
    else:
        from ftharness.models.generation import GenerationSettings

        data = Path(args.data)
        if not data.is_file():
            raise BadInput("data file not found; check the path", file=data)
        try:
            settings = GenerationSettings(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
        except BadInput as e:  # its fields are this command's flags
            raise BadInput(e.reason, field=flag_name(e.field) if e.field else None) from None
        _, need_base = suite_needs_model(suite)
        ui.status(f"loading {args.model or 'the embedded model'}" + (f" with adapter {args.adapter}" if args.adapter else ""))
        lm, base = load_models(args.model, args.adapter, args.base_model, need_base=need_base)
        evaluation = evaluate_model(suite, lm, data, base_lm=base, instruction=instruction, schema=schema,
                                    limit=args.limit, generation=settings)
    path = write_results(evaluation, args.out)
    from ftharness.report.history import remember_run

    remember_run(path.parent)
    if args.json:
        from ftharness.cli.render import print_json
        from ftharness.jsonrecord import to_json

        print_json({**to_json(evaluation), "results_path": str(path)})
    else:
        render(evaluation, path)
    return 0 if evaluation.passed else 1


def render(evaluation: Any, path: Path) -> None:
    """The gate table, each metric's values, and where the results were written (names, paths and
    messages printed as text, never read as markup)."""
    from rich.markup import escape
    from rich.table import Table

    from ftharness.cli.render import console

    out = console()
    result = evaluation.result
    table = Table(title=escape(f"suite {result.suite} on {result.option or 'outputs'} ({result.n_samples} samples)"))
    for col in ("gate", "measured", "threshold", "result"):
        table.add_column(col, justify="right" if col in ("measured", "threshold") else "left")
    for g in result.gates:
        measured = "-" if g.value is None else f"{g.value:.4g}"
        verdict = "[green]pass[/green]" if g.passed else "[red]FAIL[/red]"
        table.add_row(escape(g.name), measured, f"{g.op} {g.threshold:g}", verdict)
    if result.gates:
        out.print(table)
    else:
        out.print("[yellow]this suite has no gates: it reports values only[/yellow]")
    values = Table(title="measured values", show_header=True)
    values.add_column("metric")
    values.add_column("values")
    for name, m in result.metrics.items():
        values.add_row(name, ", ".join(f"{k}={v:.4g}" for k, v in m.values.items()) or "-")
    for name, why in result.skipped.items():
        values.add_row(name, f"[yellow]skipped: {escape(why)}[/yellow]")
    out.print(values)
    for g in result.failed_gates:
        out.print(f"[red]{escape(g.message)}[/red]")
    out.print(f"results: {escape(str(path))}")
    out.print("[green]all gates passed[/green]" if result.passed else f"[red]{len(result.failed_gates)} gate(s) failed[/red]")
