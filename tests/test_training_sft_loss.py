"""The harness's SFT loss: the vocabulary projection on completion tokens only must give the loss and the
gradients of the standard computation (TRL's fused head and transformers' own loss over the full logits)."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
SYSTEM = "Extract the order as JSON."

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _rows(tiny_model_dir, n=4):
    from transformers import AutoTokenizer

    from ftharness.data.loading import load_dataset
    from ftharness.training.sequences import sft_rows

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    examples = load_dataset(DATA / "train_tiny.jsonl").examples[:n]
    rows, _ = sft_rows(tok, examples, SYSTEM, max_length=512)
    return tok, [{k: r[k] for k in ("input_ids", "labels")} for r in rows]


def _trainer(model, tok, rows, tmp_path, **config):
    import datasets
    from trl import SFTConfig

    from ftharness.training.sequences import SequenceCollator
    from ftharness.training.sft import make_sft_trainer_class

    args = SFTConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to="none", max_length=None,
                     padding_free=False, dataset_kwargs={"skip_prepare_dataset": True}, remove_unused_columns=False,
                     disable_tqdm=True, **{"gradient_checkpointing": False, **config})
    return make_sft_trainer_class()(model=model, args=args, train_dataset=datasets.Dataset.from_list(rows),
                                    processing_class=tok, data_collator=SequenceCollator(tok.pad_token_id))


def _model(tiny_model_dir, method):
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32, attn_implementation="sdpa")
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        # no dropout: both computations must see the same forward
        model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, lora_dropout=0.0,
                                                 target_modules=["q_proj", "v_proj", "down_proj"]))
        for name, p in model.named_parameters():  # B starts at zero: give the adapter something to say
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=0.02)
    return model.train()


def _loss_and_grads(trainer, model, batch, *, fast, num_items_in_batch=None):
    import torch

    trainer._selected_logits = fast
    model.zero_grad(set_to_none=True)
    loss = trainer.compute_loss(model, {k: v.clone() for k, v in batch.items()},
                                num_items_in_batch=num_items_in_batch)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert grads and all(torch.isfinite(g).all() for g in grads.values())
    return float(loss.detach()), grads


@pytest.mark.parametrize("method", ["lora", "full"])
@pytest.mark.parametrize("padding_free", [False, True])
def test_completion_only_projection_gives_the_standard_loss_and_gradients(tiny_model_dir, tmp_path, method,
                                                                           padding_free):
    import torch

    from ftharness.training.sequences import SequenceCollator, batch_tokens

    tok, rows = _rows(tiny_model_dir)
    model = _model(tiny_model_dir, method)
    trainer = _trainer(model, tok, rows, tmp_path)
    batch = SequenceCollator(tok.pad_token_id, padding_free=padding_free)(rows)
    model = trainer.model
    assert trainer._completion_logits_only(model, batch)  # CPU: TRL's fused head would project every position
    completion = int((batch["labels"][:, 1:] != -100).sum())
    assert completion < 0.6 * batch["input_ids"].numel()  # most positions are prompt (and padding): skipped

    projected = []
    head = (model.get_base_model() if hasattr(model, "get_base_model") else model).get_output_embeddings()
    hook = head.register_forward_hook(lambda mod, args, out: projected.append(args[0].shape[:-1].numel()))
    try:
        fast_loss, fast_grads = _loss_and_grads(trainer, model, batch, fast=True)
    finally:
        hook.remove()
    assert projected == [completion]  # the lm_head saw the completion positions, nothing else
    trl_loss, trl_grads = _loss_and_grads(trainer, model, batch, fast=False)

    # transformers' own loss over the full logits (mean over the labelled next tokens)
    with torch.no_grad():
        own = model(**{k: v for k, v in batch.items()}, use_cache=False).loss
    assert fast_loss == pytest.approx(trl_loss, rel=1e-5)
    assert fast_loss == pytest.approx(float(own), rel=1e-5)
    assert fast_grads.keys() == trl_grads.keys()
    for name, g in fast_grads.items():
        torch.testing.assert_close(g, trl_grads[name], rtol=1e-4, atol=1e-6, msg=name)

    # gradient accumulation: divided by the labelled tokens of every accumulated micro-batch, as TRL does
    total = torch.tensor(3 * completion)
    fast_acc, fast_acc_grads = _loss_and_grads(trainer, model, batch, fast=True, num_items_in_batch=total)
    trl_acc, trl_acc_grads = _loss_and_grads(trainer, model, batch, fast=False, num_items_in_batch=total)
    assert fast_acc == pytest.approx(trl_acc, rel=1e-5) and fast_acc == pytest.approx(fast_loss / 3, rel=1e-5)
    for name, g in fast_acc_grads.items():
        torch.testing.assert_close(g, trl_acc_grads[name], rtol=1e-4, atol=1e-6, msg=name)

    # TRL's token count goes on; its entropy and accuracy (which the harness never reads) only from TRL's path
    logged = trainer._metrics["train"]
    assert logged["num_tokens"] == [4 * batch_tokens(batch)]
    assert len(logged["entropy"]) == 2


def test_a_batch_without_completion_tokens_gives_a_zero_loss_that_backpropagates(tiny_model_dir, tmp_path):
    from ftharness.training.sequences import SequenceCollator

    tok, rows = _rows(tiny_model_dir, n=2)
    trainer = _trainer(_model(tiny_model_dir, "lora"), tok, rows, tmp_path)
    batch = SequenceCollator(tok.pad_token_id, padding_free=False)(rows)
    batch["labels"][:] = -100
    loss, grads = _loss_and_grads(trainer, trainer.model, batch, fast=True)
    assert loss == 0.0 and all(float(g.abs().max()) == 0.0 for g in grads.values())


def test_eval_loss_of_the_fast_path_matches_under_no_grad(tiny_model_dir, tmp_path):
    import torch

    from ftharness.training.sequences import SequenceCollator

    tok, rows = _rows(tiny_model_dir)
    model = _model(tiny_model_dir, "lora").eval()
    trainer = _trainer(model, tok, rows, tmp_path)
    batch = SequenceCollator(tok.pad_token_id, padding_free=False)(rows)
    losses = []
    for fast in (True, False):
        trainer._selected_logits = fast
        with torch.no_grad():
            losses.append(float(trainer.compute_loss(trainer.model, {k: v.clone() for k, v in batch.items()})))
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


def test_fast_path_only_where_positions_can_be_selected(tiny_model_dir, tmp_path):
    import torch
    from peft import PromptTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from ftharness.training.sft import fused_head_compacts, selected_logits_supported

    assert not fused_head_compacts(torch.device("cpu"))
    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert selected_logits_supported(plain)
    assert selected_logits_supported(_model(tiny_model_dir, "lora"))
    prompt = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                            PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4))
    assert not selected_logits_supported(prompt)  # virtual tokens shift every position: the standard loss
    tok, rows = _rows(tiny_model_dir, n=2)
    smoothed = _trainer(_model(tiny_model_dir, "lora"), tok, rows, tmp_path, label_smoothing_factor=0.1)
    assert not smoothed._completion_logits_only(smoothed.model, {"labels": torch.zeros(1, 2, dtype=torch.long)})


def test_the_validation_loss_projects_labelled_positions_only_and_equals_the_full_projection(tiny_model_dir,
                                                                                            tmp_path):
    import torch

    from ftharness.training.sequences import SequenceCollator

    tok, rows = _rows(tiny_model_dir)
    model = _model(tiny_model_dir, "lora").eval()
    trainer = _trainer(model, tok, rows, tmp_path)
    batch = SequenceCollator(tok.pad_token_id, padding_free=False)(rows)
    completion = int((batch["labels"][:, 1:] != -100).sum())
    head = trainer.model.get_base_model().get_output_embeddings()
    losses, projected = [], []
    hook = head.register_forward_hook(lambda mod, args, out: projected.append(args[0].shape[:-1].numel()))
    try:
        for fast in (True, False):  # what Trainer.evaluate calls: prediction_step, loss only
            trainer._selected_logits = fast
            loss, _, _ = trainer.prediction_step(trainer.model, {k: v.clone() for k, v in batch.items()},
                                                 prediction_loss_only=True)
            losses.append(float(loss))
            if fast:
                assert projected == [completion]  # the lm_head saw the labelled positions, nothing else
    finally:
        hook.remove()
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    assert torch.isfinite(torch.tensor(losses)).all()
