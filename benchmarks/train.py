"""Training speed: the harness's LoRA trainer against a plain TRL SFTTrainer with TRL's default padding.

One run trains the same LoRA candidate (same base model, data, chat template, hyperparameters, seed) twice:

- harness: ``ftharness.training.run.train_candidate`` in a fresh, empty FTHARNESS_CACHE (no cache hit), with
  the harness's own batching (padded batches grouped by length with SDPA/eager attention, padding-free with
  flash attention: ftharness/training/sft.py);
- plain: ``AutoModelForCausalLM`` + ``peft.LoraConfig`` + ``trl.SFTTrainer`` written the way TRL's docs show it
  (a prompt/completion dataset, TRL's default collator, which right-pads each batch in sampling order; no
  packing, no padding-free), with the hyperparameters the harness resolved (lr, schedule, warmup, grad-norm
  clip, dropout, optimizer) and TRL's other defaults, gradient checkpointing included (``SFTConfig`` turns it
  on by default). This is the baseline the goal is judged against;
- plain-no-gc: the same with ``gradient_checkpointing=False``, as the harness trains when memory allows: it
  separates what the harness gains from its batching (sorted by length) from what it gains by not
  recomputing activations.

The prompt/completion texts of the plain dataset are the harness's own (``training_pair`` on
``zero_shot_messages``), so both sides train on the same token ids; the script checks that they do.

Both sides are measured the same way:
- trained tokens = the non-padding tokens of the training sequences x epochs (every sequence is seen once per
  epoch); the harness's own count (its trainer counts real tokens batch by batch) is printed beside it;
- train wall time = from ``on_train_begin`` to ``on_train_end`` of the same TrainerCallback inside
  ``trainer.train()``: it leaves out model loading and tokenisation on both sides, and it includes the
  per-epoch eval pass on both sides (the harness evaluates every epoch for early stopping, so the plain run
  is given ``eval_strategy="epoch"`` on the same eval set) and the harness's checkpoint at the end of each
  epoch (its resume feature, a cost the plain run does not pay);
- eval loss = ``ftharness.training.sequences.completion_loss`` after training: mean cross-entropy per completion
  token over the eval set (prompt masked), the same function on both trained models.
End-to-end seconds (loading, tokenising, training, saving) are printed too, for information.

Before the change below, on the 2-core CPU (40 train / 16 eval examples, 1 epoch, LoRA r16 on q/k/v/o):
harness 84.7, plain 84.8, plain-no-gc 85.2 trained tokens/s (1.00x), eval loss 0.3163 / 0.3139 / 0.3139.
Padding-free batches were the harness's first design and ran at 0.72x (64.5 tokens/s): SDPA attention turns a
flattened batch into one block-diagonal mask over all its tokens, and these sequences (244-345 tokens) leave
only ~11 % padding to save in the first place. Gradient checkpointing, TRL's default, cost nothing measurable
for this LoRA on CPU.

Where the time went: TRL 1.16's ``SFTTrainer`` computes its loss through a fused LM head
(``trl.trainer.utils.add_fused_lm_head``) that projects only the labelled positions with its Triton kernels
(CUDA, XPU) but, on CPU, projects every position of the padded batch, prompt and padding included (2488
positions for 617 completion tokens in one batch of 8 here), in [4096 x 32768] tiles that it folds with
several elementwise passes (online log-sum-exp, entropy and top-1 checks for its logged metrics), and does
the projection again in the backward pass. One forward + backward of that batch on one thread: 41-43 s with
TRL's head, 21.5 s with the projection on the completion positions only, 20 s for the model body alone. The
harness now does the latter (``HarnessSFTTrainer.compute_loss`` -> ``completion_only_loss`` in
ftharness/training/sft.py: ``logits_to_keep`` given a boolean mask of the positions whose next label is not
-100, then the float32 cross-entropy of those, divided by ``num_items_in_batch`` as TRL does); the loss and
gradients equal TRL's and transformers' full computation to float tolerance
(tests/test_training_sft_loss.py). It also skips TRL's entropy and token-accuracy metrics there (1.5 % of a
step; nothing in the harness reads them). Nothing else measured faster without changing results: the rest of
a step is the model body's matrix products (~60 %), SDPA attention (~14 %) and LoRA dropout's random masks
(~7 %).

After (``.venv/bin/python benchmarks/train.py``; the CPU was shared with other jobs during most
runs, logged every 15 s with ``top``; with two torch threads, a third busy process on one of the two cores
slows whichever side is training by up to 3x, so only a run on a quiet CPU shows the ratio cleanly):

    run  CPU while it ran                                       harness / plain / plain-no-gc   ratio vs plain   eval loss (harness / plain)
    1    shared throughout (an earlier revision that still         29.7 / 33.0 / 30.5 tok/s      0.90x            0.3154 / 0.3139
         computed TRL's metrics)
    2    shared during the harness's first minute                  99.7 / 75.3 / 73.3 tok/s      1.32x            0.3171 / 0.3139 (+1.02 %)
    3    shared during the harness's first 90 s                    80.5 / 73.8 / 73.5 tok/s      1.09x            0.3143 / 0.3139
    4    quiet throughout                                         113.9 / 72.8 / 76.6 tok/s      1.57x            0.3161 / 0.3139 (+0.70 %)
         median s/step 16.6 / 28.1 / 28.5                                                        1.70x per step

On a quiet CPU the goal (1.3x at an eval loss within 1 %) is met: 1.57x in tokens/s, 1.70x per optimiser step.
The harness's eval loss moves from run to run (0.3143-0.3171 here, 0.3163 before the change) while the plain
runs' stays at 0.3139: the harness draws its adapter's initial weights before it sets the seed (the peft
plugin builds the adapter before ``run_sft`` calls ``set_seed``, and this torch seeds its default generator
differently in each process), so each run starts from another LoRA A; and with the first step at learning
rate 0 (warm-up), Adam's first real update is about lr x sign(gradient), which turns small differences into
different weights. Run 2's +1.02 % is that spread, not the loss computation. With TRL's batch order (random
sampling instead of grouping by length) the harness reached 0.3151.

    .venv/bin/python benchmarks/train.py                                       # 40 train / 16 eval, 1 epoch
    .venv/bin/python benchmarks/train.py --train-examples 160                  # the whole training file
    .venv/bin/python benchmarks/train.py --train-examples 16 --eval-examples 4  # a quick check
    .venv/bin/python benchmarks/train.py --json                                # one JSON document on stdout
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TASK = REPO / "examples" / "extraction"
GOAL_RATIO = 1.3  # the goal: at least 1.3x the plain baseline's trained tokens/s at equal or lower eval loss


def wall_clock_callback() -> Any:
    """A TrainerCallback that records the wall time of ``trainer.train()``'s loop (begin to end) and of each
    optimiser step (forward, backward and update: ``on_step_begin`` to ``on_step_end``, so without the logging,
    checkpoint and eval that follow a step)."""
    from transformers import TrainerCallback

    class WallClock(TrainerCallback):
        started = 0.0
        seconds = 0.0
        global_step = 0
        epoch = 0.0
        step_started = 0.0

        def on_train_begin(self, args, state, control, **kw):
            self.started = time.perf_counter()
            self.step_s: list[float] = []

        def on_step_begin(self, args, state, control, **kw):
            self.step_started = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            self.step_s.append(time.perf_counter() - self.step_started)

        def on_train_end(self, args, state, control, **kw):
            self.seconds = time.perf_counter() - self.started
            self.global_step = int(state.global_step)
            self.epoch = float(state.epoch or 0.0)

    return WallClock()


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def warm_up(model_dir: Path, rows: list[dict[str, Any]]) -> None:
    """One forward/backward pass on a throw-away copy of the model, so that one-off costs of the first
    training step (operator set-up, allocator growth) land on neither measured side."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    ids = torch.tensor([rows[0]["input_ids"]])
    model(input_ids=ids, labels=ids).loss.backward()
    del model


def run_harness(model_dir: Path, hp: dict[str, Any], seed: int, train: Any, eval_set: Any,
                instruction: str) -> dict[str, Any]:
    from ftharness.models.loading import load_model
    from ftharness.training.run import train_candidate
    from ftharness.training.trainer import CandidateSpec

    spec = CandidateSpec(name="bench-lora", trainer="peft", method="lora", base_model=str(model_dir),
                         hyperparameters=hp, seed=seed)
    clock = wall_clock_callback()
    previous = os.environ.get("FTHARNESS_CACHE")
    with tempfile.TemporaryDirectory(prefix="ftharness-bench-") as cache:
        os.environ["FTHARNESS_CACHE"] = cache  # empty cache: the candidate is trained, never found
        try:
            started = time.perf_counter()
            artifact = train_candidate(spec, train, eval_set, system_prompt=instruction, progress=False,
                                       callbacks=[clock])
            total_s = time.perf_counter() - started
            if artifact.cached:
                raise RuntimeError("the harness found a cached artifact in an empty cache")
            lm = load_model(**artifact.model_args())
        finally:
            if previous is None:
                os.environ.pop("FTHARNESS_CACHE", None)
            else:
                os.environ["FTHARNESS_CACHE"] = previous
    result = artifact.result
    return {"model": lm.model, "train_s": clock.seconds, "total_s": total_s, "global_step": clock.global_step,
            "step_s": clock.step_s,
            "epoch": clock.epoch, "counted_tokens": result.train_tokens, "own_wall_s": result.wall_s,
            "padding_free": result.extra.get("padding_free"), "peak_rss_bytes": result.peak_memory_bytes}


def run_plain(model_dir: Path, hp: dict[str, Any], seed: int, train: Any, eval_set: Any, instruction: str,
              *, gradient_checkpointing: bool) -> dict[str, Any]:
    """The plain TRL way: a prompt/completion dataset, TRL's tokenisation and default (padding) collator."""
    import datasets
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from ftharness.baselines import zero_shot_messages
    from ftharness.models.prompts import training_pair

    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)

    def as_rows(examples: list[Any]) -> datasets.Dataset:
        pairs = [training_pair(tokenizer, zero_shot_messages(instruction, ex), ex.completion) for ex in examples]
        return datasets.Dataset.from_list([{"prompt": p, "completion": c} for p, c in pairs])

    with tempfile.TemporaryDirectory(prefix="ftharness-bench-plain-") as out:
        config = SFTConfig(
            output_dir=out,
            num_train_epochs=hp["epochs"],
            per_device_train_batch_size=hp["batch_size"],
            per_device_eval_batch_size=hp["eval_batch_size"],
            gradient_accumulation_steps=hp["grad_accum"],
            learning_rate=hp["learning_rate"],
            lr_scheduler_type=hp["lr_scheduler"],
            warmup_steps=hp["warmup_ratio"],  # a float < 1 is a ratio of the total steps (transformers 5)
            weight_decay=hp["weight_decay"],
            max_grad_norm=hp["max_grad_norm"],
            optim=hp["optimizer"],
            max_length=hp["max_length"],
            gradient_checkpointing=gradient_checkpointing,
            eval_strategy="epoch",
            save_strategy="no",
            logging_steps=1,
            seed=seed,
            data_seed=seed,
            use_cpu=True,
            bf16=False,
            report_to=[],
            disable_tqdm=True,
        )
        lora = LoraConfig(task_type="CAUSAL_LM", r=hp["r"], lora_alpha=hp["lora_alpha"],
                          lora_dropout=hp["lora_dropout"], target_modules=hp["target_modules"], bias="none")
        clock = wall_clock_callback()
        trainer = SFTTrainer(model=model, args=config, train_dataset=as_rows(train.examples),
                             eval_dataset=as_rows(eval_set.examples), processing_class=tokenizer, peft_config=lora,
                             callbacks=[clock])
        trainer.train()
        trainer.save_model(out)
        total_s = time.perf_counter() - started
        train_ids = [list(ids) for ids in trainer.train_dataset["input_ids"]]
    return {"model": trainer.model, "train_s": clock.seconds, "total_s": total_s, "global_step": clock.global_step,
            "step_s": clock.step_s,
            "epoch": clock.epoch, "train_ids": train_ids}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-examples", type=int, default=40,
                        help="first N of examples/extraction/train.jsonl (the file has 160; 40 keeps the run to about "
                             "7 minutes on 2 CPU cores, 64 took 10)")
    parser.add_argument("--eval-examples", type=int, default=16, help="first N of examples/extraction/eval.jsonl (24)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=384)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--alpha", type=int, default=32)
    parser.add_argument("--targets", default="q_proj,k_proj,v_proj,o_proj", help="comma-separated module names")
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--order", choices=("harness-first", "plain-first"), default="harness-first")
    parser.add_argument("--loss-tolerance", type=float, default=0.01,
                        help="relative eval-loss margin still counted as equal (dropout masks differ with batch shape)")
    parser.add_argument("--plain", choices=("both", "defaults", "no-gc"), default="both",
                        help="which plain runs: TRL's defaults (gradient checkpointing on), without it, or both")
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout instead of the table")
    args = parser.parse_args(argv)
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"  # TRL reports usage unless told not to; the harness phones no one

    import torch
    from transformers import AutoTokenizer

    from ftharness.data.loading import load_dataset
    from ftharness.data.records import Dataset
    from ftharness.models.loading import local_model_dir
    from ftharness.training.sequences import completion_loss, sft_rows
    from ftharness.training.spec import hyperparameter_values, validate_candidate
    from ftharness.training.trainer import CandidateSpec

    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    model_dir = Path(local_model_dir(None))  # resolved before the harness's cache is swapped for an empty one
    instruction = (TASK / "instruction.txt").read_text(encoding="utf-8").strip()
    full_train = load_dataset(TASK / "train.jsonl")
    full_eval = load_dataset(TASK / "eval.jsonl")
    train = Dataset(examples=full_train.examples[:args.train_examples], format=full_train.format, file=full_train.file)
    eval_set = Dataset(examples=full_eval.examples[:args.eval_examples], format=full_eval.format, file=full_eval.file)

    overrides = {"epochs": float(args.epochs), "batch_size": args.batch_size, "eval_batch_size": args.batch_size,
                 "max_length": args.max_length, "r": args.rank, "lora_alpha": args.alpha,
                 "target_modules": args.targets.split(","), "learning_rate": args.learning_rate}
    spec = CandidateSpec(name="bench-lora", method="lora", hyperparameters=overrides)
    hp = hyperparameter_values(validate_candidate(spec))

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    harness_rows, _ = sft_rows(tokenizer, train.examples, instruction, max_length=hp["max_length"])
    eval_rows, _ = sft_rows(tokenizer, eval_set.examples, instruction, max_length=hp["max_length"])
    lengths = [len(r["input_ids"]) for r in harness_rows]
    log(f"model {model_dir.name}, {len(train.examples)} train / {len(eval_set.examples)} eval examples, "
        f"{args.epochs} epoch(s), batch {hp['batch_size']}, torch threads {torch.get_num_threads()}, "
        f"{platform.processor() or platform.machine()}")
    warm_up(model_dir, harness_rows)

    plains = {"both": ["plain", "plain-no-gc"], "defaults": ["plain"], "no-gc": ["plain-no-gc"]}[args.plain]
    order = ["harness", *plains] if args.order == "harness-first" else [*plains, "harness"]
    runs: dict[str, dict[str, Any]] = {}
    for side in order:
        log(f"training: {side} ...")
        with contextlib.redirect_stdout(sys.stderr):  # the Trainer prints its logs on stdout: keep it for results
            if side == "harness":
                runs[side] = run_harness(model_dir, overrides, args.seed, train, eval_set, instruction)
            else:
                runs[side] = run_plain(model_dir, hp, args.seed, train, eval_set, instruction,
                                       gradient_checkpointing=side == "plain")
        log(f"  {side}: trained in {runs[side]['train_s']:.1f} s; computing eval loss ...")
        runs[side]["eval_loss"] = completion_loss(runs[side]["model"], eval_rows, batch_size=hp["eval_batch_size"])
        runs[side].pop("model")

    figures: dict[str, Any] = {
        "model": model_dir.name, "train_examples": len(train.examples), "eval_examples": len(eval_set.examples),
        "epochs": args.epochs, "threads": torch.get_num_threads(), "order": order, "hyperparameters": hp,
        "sequence_tokens": {"min": min(lengths), "max": max(lengths), "mean": round(sum(lengths) / len(lengths), 1)},
        "runs": {}, "ratios": {}, "median_step_ratios": {},
    }
    for side in order:
        r = runs[side]
        ids = r.pop("train_ids", None)
        if ids is not None:
            same = sum(a == row["input_ids"] for a, row in zip(ids, harness_rows, strict=False))
            r["identical_token_ids"] = (f"{same}/{len(harness_rows)}" if len(ids) == len(harness_rows)
                                        else f"row counts differ: {len(ids)} vs harness {len(harness_rows)}")
            r["tokens"] = sum(len(x) for x in ids) * args.epochs
        else:
            r["tokens"] = sum(lengths) * args.epochs
        r["tokens_per_s"] = r["tokens"] / r["train_s"] if r["train_s"] > 0 else 0.0
        r["median_step_s"] = statistics.median(r["step_s"]) if r["step_s"] else 0.0
        r["step_s"] = [round(x, 2) for x in r["step_s"]]
        figures["runs"][side] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}
    h = runs["harness"]
    for side in plains:
        figures["ratios"][side] = round(h["tokens_per_s"] / runs[side]["tokens_per_s"], 3)
        if h["median_step_s"] > 0:
            figures["median_step_ratios"][side] = round(runs[side]["median_step_s"] / h["median_step_s"], 3)
    goal = None
    if "plain" in runs:
        ratio = figures["ratios"]["plain"]
        loss_ok = h["eval_loss"] <= runs["plain"]["eval_loss"] * (1 + args.loss_tolerance)
        goal = {"against": "plain", "ratio_at_least": GOAL_RATIO, "loss_tolerance": args.loss_tolerance,
                "ratio": ratio, "ratio_met": ratio >= GOAL_RATIO, "loss_met": loss_ok,
                "met": ratio >= GOAL_RATIO and loss_ok}
    figures["goal"] = goal

    if args.json:
        from ftharness.cli.render import print_json

        print_json(figures)
        return 0
    print(f"model {model_dir.name}, {len(train.examples)} train / {len(eval_set.examples)} eval examples, "
          f"{args.epochs} epoch(s), LoRA r={hp['r']} alpha={hp['lora_alpha']} on {','.join(hp['target_modules'])}, "
          f"lr {hp['learning_rate']:g}, batch {hp['batch_size']}, max_length {hp['max_length']}, seed {args.seed}, "
          f"torch threads {torch.get_num_threads()}, order {', '.join(order)}")
    print(f"sequences: {min(lengths)}-{max(lengths)} tokens (mean {sum(lengths) / len(lengths):.1f}); "
          f"harness padding-free: {h['padding_free']}; same token ids: "
          + ", ".join(f"{side} {runs[side]['identical_token_ids']}" for side in plains))
    print(f"{'':12} {'tokens':>8} {'train s':>8} {'tokens/s':>9} {'steps':>6} {'s/step':>7} {'eval loss':>10} "
          f"{'total s':>8} {'harness x':>9}")
    for side in order:
        r = runs[side]
        x = f"{figures['ratios'][side]:.2f}x" if side in figures["ratios"] else ""
        print(f"{side:12} {r['tokens']:>8} {r['train_s']:>8.1f} {r['tokens_per_s']:>9.1f} {r['global_step']:>6} "
              f"{r['median_step_s']:>7.1f} {r['eval_loss']:>10.4f} {r['total_s']:>8.1f} {x:>9}")
    print("s/step: median optimiser step (forward, backward, update; no eval or checkpoint), less exposed than the "
          "totals to other work on a shared CPU: harness x "
          + ", ".join(f"{side} {figures['median_step_ratios'][side]:.2f}x" for side in figures["median_step_ratios"]))
    print(f"harness's own figures: {h['counted_tokens']} tokens counted in training batches, {h['own_wall_s']:.1f} s "
          f"around trainer.train()")
    if goal:
        p = runs["plain"]
        verdict = "met" if goal["met"] else "NOT met"
        print(f"goal (>= {GOAL_RATIO}x the plain TRL defaults' tokens/s at eval loss <= plain +{args.loss_tolerance:.0%}): "
              f"{verdict} ({goal['ratio']:.2f}x; eval loss {h['eval_loss']:.4f} vs {p['eval_loss']:.4f}, "
              f"{(h['eval_loss'] - p['eval_loss']) / p['eval_loss']:+.2%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
