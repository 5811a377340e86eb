"""A real run: LoRA on the embedded model (SmolLM2-135M-Instruct) on the bundled extraction data lowers the
completion loss on held-out examples."""

from __future__ import annotations

from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parent.parent / "examples" / "extraction"


@pytest.mark.e2e
@pytest.mark.slow
def test_lora_on_the_embedded_model_lowers_eval_loss(embedded_dir, isolated_cache):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ftharness.data.loading import load_dataset
    from ftharness.models.loading import load_model
    from ftharness.training.run import train_candidate
    from ftharness.training.sequences import completion_loss, sft_rows
    from ftharness.training.trainer import CandidateSpec

    before_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the 2 cores are shared: one thread avoids oversubscription
    try:
        train = load_dataset(EXAMPLE / "train.jsonl")
        evald = load_dataset(EXAMPLE / "eval.jsonl")
        train.examples, evald.examples = train.examples[:24], evald.examples[:8]
        instruction = (EXAMPLE / "instruction.txt").read_text().strip()
        spec = CandidateSpec(name="e2e-lora", method="lora", hyperparameters={
            "max_steps": 3, "batch_size": 8, "learning_rate": 1e-3, "max_length": 384,
            "early_stopping_patience": None})
        art = train_candidate(spec, train, None, system_prompt=instruction, progress=False)
        tok = AutoTokenizer.from_pretrained(embedded_dir)
        rows, _ = sft_rows(tok, evald.examples, instruction, max_length=384)
        before = completion_loss(AutoModelForCausalLM.from_pretrained(embedded_dir), rows)
        after = completion_loss(load_model(**art.model_args()).model, rows)
    finally:
        torch.set_num_threads(before_threads)
    print(f"eval completion loss {before:.4f} -> {after:.4f}; {art.result.tokens_per_s:.1f} trained tokens/s")
    assert after < 0.8 * before, (before, after)
