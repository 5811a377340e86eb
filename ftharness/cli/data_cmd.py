"""`ftharness data inspect FILE [EVAL_FILE]`: counts, lengths, duplicates and train/eval leakage; for a raw-text
corpus (a folder, a .txt file, JSONL with a `text` field), its documents and token count."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="inspect a data file: counts, lengths, duplicates, leakage")
    actions = p.add_subparsers(dest="data_command", metavar="ACTION", parser_class=type(p))
    inspect = actions.add_parser("inspect", help="summarise a data file (and its overlap with an eval file)")
    inspect.add_argument("file", help="training data: JSONL or a JSON list (alpaca, prompt-completion, chat, "
                                      "preference), or a raw-text corpus (a .txt file, a folder of them, JSONL with "
                                      "`text`)")
    inspect.add_argument("eval_file", nargs="?", help="evaluation data: also checked for overlap with FILE (leakage)")
    inspect.add_argument("--model", help="count lengths in this model's tokens (folder, .gguf, cached hub id, 'embedded')")
    inspect.add_argument("--format", default="auto", help="declare the format instead of detecting it (text: a corpus)")
    inspect.add_argument("--near-threshold", type=float, default=None,
                         help="Jaccard similarity from which two texts are near duplicates (default 0.8)")
    inspect.add_argument("--knowledge", action="store_true",
                         help="FILE is a knowledge base (JSONL of {id, title, text}, or a folder of .txt/.md "
                              "files): its documents, chunks and tokens")
    inspect.add_argument("--chunk-size", type=int, default=None,
                         help="--knowledge: tokens per chunk (default: a task's default, 200)")
    inspect.add_argument("--chunk-overlap", type=int, default=None,
                         help="--knowledge: tokens consecutive chunks share (default 0)")
    inspect.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    inspect.set_defaults(func=run_inspect)
    p.set_defaults(func=_usage(p))


def _usage(parser: argparse.ArgumentParser):
    def run(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    return run


def run_inspect(args: argparse.Namespace) -> int:
    from ftharness.data import dedup
    from ftharness.data.inspect import inspect_corpus, inspect_dataset, inspect_knowledge, is_corpus
    from ftharness.errors import BadInput

    threshold = dedup.THRESHOLD if args.near_threshold is None else args.near_threshold
    if not 0 < threshold <= 1:
        raise BadInput(f"must be in (0, 1], got {threshold}", field="--near-threshold")
    if args.knowledge:
        report = inspect_knowledge(args.file, model=args.model, chunking=_chunking(args))
        if args.json:
            from ftharness.cli.render import print_json

            print_json(report)
        else:
            render_knowledge(report)
        return 0
    if args.chunk_size is not None or args.chunk_overlap is not None:
        raise BadInput("chunks are a knowledge base's: add --knowledge", field="--chunk-size")
    corpus = is_corpus(args.file, args.format)
    if corpus:
        if args.eval_file:
            raise BadInput("an eval file is checked against training examples, not a raw-text corpus",
                           field="eval_file")
        report = inspect_corpus(args.file, model=args.model)
    else:
        report = inspect_dataset(args.file, args.eval_file, model=args.model, format=args.format,
                                 near_threshold=threshold)
    if args.json:
        from ftharness.cli.render import print_json

        print_json(report)
    elif corpus:
        render_corpus(report)
    else:
        render(report)
    return 0


def _chunking(args: argparse.Namespace) -> Any:
    from ftharness.data.knowledge import ChunkingSpec
    from ftharness.errors import BadInput
    from ftharness.typed import from_mapping

    given = {k: v for k, v in (("size", args.chunk_size), ("overlap", args.chunk_overlap)) if v is not None}
    try:
        return from_mapping(ChunkingSpec, given)
    except BadInput as e:  # name the flag, not the task field
        raise BadInput(e.reason, field=f"--chunk-{e.field}") from None


def render_knowledge(r: dict[str, Any]) -> None:
    from rich.markup import escape

    from ftharness.cli.render import console

    out = console()
    out.rule(f"[bold]knowledge base: {escape(r['file'])}")
    c = r["chunk_tokens"]
    out.print(f"documents [bold]{r['documents']}[/] ({r['titled']} with a title)  chunks [bold]{r['chunks']}[/] "
              f"(size {r['chunking']['size']}, overlap {r['chunking']['overlap']})  sha256 {r['sha256'][:12]}")
    out.print(f"[bold]{r['tokens']:,}[/] {escape(r['length_unit'])}; per chunk: p50 {c['p50']}  p90 {c['p90']}  "
              f"max {c['max']}")
    dup = r["duplicate_texts"]
    out.print(f"documents with the same text: {_warn(len(dup))}"
              + (f"  {escape('; '.join(' = '.join(g) for g in dup))}" if dup else ""))


def render_corpus(r: dict[str, Any]) -> None:
    from rich.markup import escape

    from ftharness.cli.render import console

    out = console()
    out.rule(f"[bold]corpus: {escape(r['file'])}")
    d = r["lengths"]["document"]
    out.print(f"documents [bold]{r['documents']}[/] in {r['files']} file(s)  empty {_warn(r['empty_documents'])}  "
              f"sha256 {r['sha256'][:12]}")
    out.print(f"[bold]{r['domain_corpus_tokens']:,}[/] {escape(r['length_unit'])}")
    out.print(f"per document: p50 {d['p50']}  p90 {d['p90']}  max {d['max']}  mean {d['mean']}")
    dup = r["exact_duplicates"]
    out.print(f"exact duplicate documents: {_warn(dup['count'])}"
              + (f"  {escape('; '.join(' = '.join(g) for g in dup['documents']))}" if dup["documents"] else ""))
    out.print(f"[dim]the advisor reads the count: ftharness advise --domain-corpus-tokens {r['domain_corpus_tokens']}"
              " (or --corpus PATH)[/]")


def render(report: dict[str, Any]) -> None:
    from ftharness.cli.render import console

    out = console()
    _render_one(out, report, "train" if "eval" in report else "data")
    if "eval" in report:
        _render_one(out, report["eval"], "eval")
        _render_leakage(out, report["leakage"])


def _render_one(out: Any, r: dict[str, Any], label: str) -> None:
    from rich.markup import escape
    from rich.table import Table

    out.rule(f"[bold]{label}: {escape(r['file'])}")
    out.print(f"format [bold]{r['format']}[/]  examples [bold]{r['examples']}[/]  labeled {r['labeled_examples']}  "
              f"preference pairs {r['preference_pairs']}  multi-turn {r['multi_turn']}  sha256 {r['sha256'][:12]}")
    lengths = Table(title=escape(f"length in {r['length_unit']}"), title_justify="left")
    for col in ("", "p50", "p90", "p99", "max", "mean", "total"):
        lengths.add_column(col, justify="right" if col else "left")
    for name, d in r["lengths"].items():
        lengths.add_row(name, *(str(d[k]) for k in ("p50", "p90", "p99", "max", "mean", "total")))
    out.print(lengths)
    if r["fields"]:
        fields = Table(title="fields", title_justify="left")
        for col in ("field", "present", "empty", "repeated"):
            fields.add_column(col, justify="left" if col == "field" else "right")
        for name, d in r["fields"].items():
            fields.add_row(escape(name), str(d["present"]), _warn(d["empty"]), str(d["repeated"]))
        out.print(fields)
    exact, near = r["exact_duplicates"], r["near_duplicates"]
    out.print(f"exact duplicates: {_warn(exact['count'])}" + (f"  lines {_groups(exact['groups'])}" if exact["groups"] else ""))
    out.print(f"near duplicates (Jaccard >= {near['threshold']}): {_warn(near['count'])}"
              + (f"  lines {', '.join(f'{a}~{b}' for a, b in (p['lines'] for p in near['pairs']))}" if near["pairs"] else ""))
    out.print(f"prompts with conflicting completions: {_warn(r['conflicting_completions'])}")
    if r["meta_fields"]:
        out.print(f"other fields (usable as slices): {escape(', '.join(r['meta_fields']))}")


def _render_leakage(out: Any, leak: dict[str, Any]) -> None:
    out.rule("[bold]train/eval overlap (leakage)")
    out.print(f"eval prompts found in train: exact {_warn(leak['exact'])}, near (Jaccard >= {leak['threshold']}) "
              f"{_warn(leak['near'])}, {leak['share']:.1%} of {leak['eval_examples']}")
    for kind in ("exact_pairs", "near_pairs"):
        if leak[kind]:
            out.print(f"  {kind.split('_')[0]}: " + ", ".join(f"eval:{p['eval_line']}=train:{p['train_line']}" for p in leak[kind]))
    out.print(f"[dim]{leak['method']}[/]")


def _warn(n: int) -> str:
    return f"[yellow]{n}[/]" if n else "0"


def _groups(groups: list[list[int]]) -> str:
    return "; ".join("=".join(str(x) for x in g) for g in groups)
