"""`ftharness train CANDIDATE.yaml`: train one candidate (or reuse its cached artifact) on its own.

``compare`` calls the same ``train_candidate``. A candidate that starts from another (``start_from``) or
combines others (``method: combine``) trains those first, each cached. ``--merge-to DIR`` also writes the
trained adapter merged into its base model as a standalone model folder.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one candidate from a candidate file (cached; resumes if interrupted)")
    p.add_argument("candidate", metavar="CANDIDATE.yaml", help="candidate file (see examples/candidates/)")
    p.add_argument("--launch", metavar="YAML", help="train on several processes, overriding the file's launch: "
                   "e.g. '{processes: 2, strategy: fsdp}' (strategies: ddp, fsdp, deepspeed-zero2, deepspeed-zero3)")
    p.add_argument("--merge-to", metavar="DIR", help="also write the adapter merged into its base model to DIR")
    p.add_argument("--no-progress", action="store_true", help="no progress bars or status lines on stderr")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ftharness.training.spec import load_candidate_file

    cf = load_candidate_file(args.candidate)
    if args.launch is not None:
        cf = _with_launch(cf, args.launch)
    if args.merge_to:
        from ftharness.training.merging import check_merge_target

        _check_mergeable(cf)
        check_merge_target(args.merge_to)
    artifact = train_file(cf)
    merged = None
    if args.merge_to:
        from ftharness.training.merging import merge_artifact

        merged = merge_artifact(artifact, args.merge_to)
    if args.json:
        from ftharness.cli.render import print_json

        print_json({**artifact.to_dict(), "merged_to": str(merged) if merged else None})
        return 0
    _show(artifact, merged)
    return 0


def train_file(cf):
    """Train a loaded candidate file, the candidates it builds on first."""
    from ftharness.training.spec import COMBINE_METHOD, corpus_method

    if cf.spec.method == COMBINE_METHOD:
        from ftharness.training.merging import combine_adapters

        return combine_adapters(cf.spec, [train_file(part) for part in cf.combine])
    from ftharness.data.loading import load_dataset
    from ftharness.plugins import get_plugins
    from ftharness.training.run import train_candidate

    parent = train_file(cf.start_from) if cf.start_from is not None else None
    if corpus_method(cf.spec):
        from ftharness.data.corpus import load_corpus

        corpus = load_corpus(cf.corpus_path, source=cf.path, field="data.corpus")
        return train_candidate(cf.spec, corpus, None, system_prompt=cf.system_prompt, start_from=parent,
                               typed_hyperparameters=cf.hyperparameters, launch=cf.launch)
    needs_completion = get_plugins().training_method(cf.spec.trainer, cf.spec.method).data == "supervised"
    train = load_dataset(cf.train_path, format=cf.data_format, require_completion=needs_completion)
    evald = (load_dataset(cf.eval_path, format=cf.data_format, require_completion=needs_completion)
             if cf.eval_path else None)
    return train_candidate(cf.spec, train, evald, system_prompt=cf.system_prompt, start_from=parent,
                           typed_hyperparameters=cf.hyperparameters, launch=cf.launch)


def _with_launch(cf, text: str):
    """``cf`` launched as ``--launch`` says (a YAML mapping; a config path in it is relative to the working
    folder)."""
    import dataclasses
    from pathlib import Path

    import yaml

    from ftharness.errors import BadInput
    from ftharness.planner.strategies import LaunchSettings
    from ftharness.training.launch import check_launch
    from ftharness.typed import from_mapping

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise BadInput(f"not a YAML mapping: {str(e).splitlines()[0]}", field="--launch") from None
    if not isinstance(data, dict):
        raise BadInput("give a mapping, e.g. '{processes: 2, strategy: fsdp}'", field="--launch")
    launch = from_mapping(LaunchSettings, data, prefix="--launch.")
    return dataclasses.replace(cf, launch=check_launch(launch, source=None, field="--launch", folder=Path.cwd()))


def _check_mergeable(cf) -> None:
    """``--merge-to`` needs an adapter that folds into the base weights: say so before training."""
    from ftharness.errors import BadInput
    from ftharness.plugins import get_plugins
    from ftharness.training.spec import COMBINE_METHOD

    if cf.spec.method == COMBINE_METHOD:  # combined LoRA adapters merge like their parts
        return
    method = get_plugins().training_method(cf.spec.trainer, cf.spec.method, file=cf.path)
    if method.output != "adapter":
        raise BadInput(f"{cf.spec.method} trains a full model folder; --merge-to has nothing to merge",
                       file=cf.path, field="method")
    if not method.mergeable:
        raise BadInput(f"{cf.spec.method} adapters do not fold into the base weights; --merge-to cannot merge them",
                       file=cf.path, field="method")


def _show(artifact, merged) -> None:
    from rich.markup import escape
    from rich.table import Table

    from ftharness.cli.render import console

    r = artifact.result
    train_losses = [p["loss"] for p in r.loss_curve if "loss" in p]
    eval_losses = [p["eval_loss"] for p in r.loss_curve if "eval_loss" in p]
    table = Table(title=escape(f"candidate {artifact.spec.name}"), title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("value")
    rows = [
        ("artifact", f"{artifact.path}" + (" (cached)" if artifact.cached else "")),
        ("trainer / method", f"{artifact.spec.trainer} / {artifact.spec.method}"),
        ("trainable / total params", f"{r.trainable_params:,} / {r.total_params:,}"),
        ("wall time", f"{r.wall_s:.1f} s"),
        ("trained tokens", f"{r.train_tokens:,} ({r.tokens_per_s:.1f} tokens/s)"),
        ("peak memory", f"{r.peak_memory_bytes / 2**30:.2f} GiB ({r.memory_kind})"),
    ]
    if train_losses:
        rows.append(("train loss first -> last", f"{train_losses[0]:.4f} -> {train_losses[-1]:.4f}"))
    if eval_losses:
        rows.append(("eval loss per epoch", ", ".join(f"{x:.4f}" for x in eval_losses)))
    for k in ("rewards/margins", "rewards/accuracies"):
        if r.extra.get(k) is not None:
            rows.append((k, f"{r.extra[k]:.4f}"))
    if merged:
        rows.append(("merged model", str(merged)))
    for k, v in rows:
        table.add_row(k, escape(v))
    console().print(table)
