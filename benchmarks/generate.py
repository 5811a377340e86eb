"""Generation speed: the batched engine against a plain loop of one-prompt ``model.generate`` calls.

Same prompts, same model, same greedy settings, in one run. Prints generated tokens/s of both, the ratio,
and whether the outputs agree token for token (they must, for greedy decoding).

    .venv/bin/python benchmarks/generate.py                      # embedded model, 32 prompts, 64 new tokens,
                                                                 # the engine's default batch, 3 runs
    .venv/bin/python benchmarks/generate.py --batch-sizes 8,16,32 # try several engine batch sizes
    .venv/bin/python benchmarks/generate.py --json out.json       # also write the figures
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

INSTRUCTIONS = [
    "What is the capital of France?",
    "Write a haiku about autumn leaves.",
    "Explain photosynthesis in two sentences.",
    "List three uses of a paperclip.",
    "Translate 'good morning' into Spanish.",
    "What is 17 times 23?",
    "Give me a JSON object describing a cat with name and age.",
    "Summarise the plot of Romeo and Juliet in one sentence.",
    "Why do we have seasons on Earth?",
    "Suggest a name for a coffee shop by the sea.",
    "Write a Python function that reverses a string.",
    "What are the primary colors?",
    "Describe the taste of a lemon to someone who has never had one.",
    "How many legs does a spider have?",
    "Write a short motivational quote.",
    "What is the boiling point of water at sea level in Celsius?",
    "Name two planets that have rings.",
    "Explain what a neural network is to a child.",
    "Give three tips for sleeping better.",
    "What does HTTP stand for?",
    "Write the first line of a mystery novel.",
    "Convert 5 kilometres to miles.",
    "What is the difference between weather and climate?",
    "Recommend a book for someone who likes science fiction.",
    "Extract the name and the city from: 'Anna Berg moved to Oslo in 2019.' Answer as JSON.",
    "Write a polite email declining a meeting invitation.",
    "What is the largest mammal?",
    "Give an example of a metaphor.",
    "Explain why the sky is blue.",
    "List the days of the week in French.",
    "What is a prime number? Give two examples.",
    "Write a limerick about a cat who loves to nap in the sun all afternoon long.",
]


def main() -> None:
    from ftharness.models.generation import GenerationSettings

    default_batch = GenerationSettings().batch_size
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model spec (default: the embedded model)")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-sizes", default=str(default_batch),
                        help=f"comma-separated engine batch sizes to time (default: the engine's, {default_batch})")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of both sides; the ratio printed last is their median (it swings by ~1x)")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--json", help="write the figures to this JSON file")
    args = parser.parse_args()

    import torch

    from ftharness.models.generation import generate
    from ftharness.models.loading import load_model
    from ftharness.models.prompts import render_prompt

    lm = load_model(args.model, dtype=args.dtype)
    questions = [INSTRUCTIONS[i % len(INSTRUCTIONS)] for i in range(args.prompts)]
    prompts = [render_prompt(lm.tokenizer, [{"role": "user", "content": q}]) for q in questions]
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    print(f"model {lm.name} ({lm.dtype}, {lm.device}), {len(prompts)} prompts, max_new_tokens {args.max_new_tokens}, "
          f"torch threads {torch.get_num_threads()}, {platform.processor() or platform.machine()}")

    # Warm-up: the first generate call pays one-off costs that would otherwise land on whichever side runs first.
    generate(lm, prompts[:2], GenerationSettings(max_new_tokens=4, batch_size=2), progress=False)

    figures = {"model": lm.name, "device": lm.device, "prompts": len(prompts), "max_new_tokens": args.max_new_tokens,
               "runs": []}
    for run in range(1, args.repeats + 1):
        single = one_at_a_time(lm, prompts, args.max_new_tokens)
        print(f"run {run}: one prompt at a time: {single['tokens']} tokens in {single['seconds']:.1f} s = "
              f"{single['tokens_per_s']:.1f} tokens/s")
        engine = []
        for size in sizes:
            settings = GenerationSettings(max_new_tokens=args.max_new_tokens, batch_size=size)
            start = time.perf_counter()
            results = generate(lm, prompts, settings, progress=False)
            engine_s = time.perf_counter() - start
            tokens = sum(r.new_tokens for r in results)
            agree = sum(r.text == t for r, t in zip(results, single["texts"], strict=True))
            rate = tokens / engine_s
            print(f"run {run}: engine, batch {size:>3}: {tokens} tokens in {engine_s:.1f} s = {rate:.1f} tokens/s, "
                  f"speed-up {rate / single['tokens_per_s']:.2f}x, outputs identical {agree}/{len(prompts)}")
            engine.append({"batch_size": size, "tokens": tokens, "seconds": round(engine_s, 2),
                           "tokens_per_s": round(rate, 2), "speedup": round(rate / single["tokens_per_s"], 2),
                           "identical": agree})
        figures["runs"].append({"single": {k: v for k, v in single.items() if k != "texts"}, "engine": engine})
    for i, size in enumerate(sizes):
        ratios = [r["engine"][i]["speedup"] for r in figures["runs"]]
        print(f"batch {size}: speed-up over one prompt at a time, median of {len(ratios)} runs: "
              f"{statistics.median(ratios):.2f}x ({', '.join(f'{x:.2f}x' for x in ratios)})")
    if args.json:
        from ftharness.io import atomic_write_json

        atomic_write_json(args.json, figures)


def one_at_a_time(lm, prompts: list[str], max_new_tokens: int) -> dict:
    """The baseline: plain ``model.generate`` on one prompt at a time, same greedy settings."""
    import torch

    from ftharness.models.generation import GenerationSettings, encode_prompt, generation_config

    config = generation_config(lm, GenerationSettings(max_new_tokens=max_new_tokens))
    eos = set(config.eos_token_id)
    texts, tokens = [], 0
    start = time.perf_counter()
    with torch.inference_mode():
        for p in prompts:
            ids = torch.tensor([encode_prompt(lm.tokenizer, p)], device=lm.device)
            out = lm.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config)
            new = out[0, ids.shape[1]:].tolist()
            tokens += len(new)
            kept = new[:-1] if new and new[-1] in eos else new
            texts.append(lm.tokenizer.decode(kept, skip_special_tokens=True))
    seconds = time.perf_counter() - start
    return {"tokens": tokens, "seconds": round(seconds, 2), "tokens_per_s": round(tokens / seconds, 2), "texts": texts}


if __name__ == "__main__":
    main()
