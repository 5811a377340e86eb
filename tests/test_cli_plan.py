"""`ftharness plan` through the CLI: the JSON contract, the table, and one-line exit-2 bad input."""

from __future__ import annotations

import json

import pytest

from ftharness.cli import main


def test_plan_json_is_one_document_with_the_issue_keys(capsys):
    rc = main(["plan", "--model", "llama-3-8b", "--method", "qlora", "--gpu", "rtx-4090", "--batch-size", "1",
               "--gradient-checkpointing", "--examples", "1000", "--epochs", "2", "--json"])
    out = capsys.readouterr().out
    assert rc == 0
    plan = json.loads(out)
    assert plan["trainable_params"] == 41_943_040  # r=16 on every linear of Llama 3 8B
    assert set(plan["components_gb"]) == {"weights", "gradients", "optimizer", "activations", "logits", "overhead"}
    assert plan["device_gb"] > plan["peak_gb"] > 0
    (row,) = plan["gpus"]
    assert row["name"] == "rtx-4090" and row["fits"] is True
    assert row["hours"] > 0 and row["cost_usd"] > 0
    assert plan["assumptions"]["mfu"] > 0


def test_plan_without_gpu_lists_the_catalogue_and_dpo_has_reference(capsys):
    assert main(["plan", "--model", "smollm2-135m", "--method", "dpo", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert len(plan["gpus"]) > 10
    assert "reference" in plan["components_gb"]


def test_plan_table_output(capsys):
    assert main(["plan", "--model", "gpt2", "--method", "full", "--gpu", "t4", "--precision", "fp16"]) == 0
    out = capsys.readouterr().out
    assert "peak (max_memory_allocated)" in out and "t4" in out and "--examples" in out


def test_plan_takes_names_as_people_type_them(capsys):
    assert main(["plan", "--model", "Llama-3.1-8B", "--method", "qlora", "--gpu", "RTX 4090", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["model"] == "llama-3.1-8b" and [r["name"] for r in plan["gpus"]] == ["rtx-4090"]


def test_plan_reads_a_config_json(tmp_path, capsys):
    config = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 176, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000,
              "max_position_embeddings": 256, "tie_word_embeddings": True}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert main(["plan", "--model", str(path), "--gpu", "l4", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["total_params"] == 1000 * 64 + 2 * (64 * 64 * 2 + 64 * 32 * 2 + 3 * 64 * 176 + 2 * 64) + 64


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--model", "llama-9-1b"], "unknown model"),
        (["--model", "/no/such/config.json"], "config file not found"),
        (["--model", "gpt2", "--gpu", "rtx-9090"], "unknown GPU"),
        (["--model", "gpt2", "--gpu", "a100"], "did you mean a100-40gb or a100-80gb?"),
        (["--model", "gpt2", "--batch-size", "0"], "--batch-size"),
        (["--model", "gpt2", "--seq-len", "-3"], "--seq-len"),
        (["--model", "gpt2", "--rank", "0"], "--rank"),
        (["--model", "gpt2", "--method", "magic"], "--method"),
        (["--model", "gpt2", "--precision", "int2"], "--precision"),
        (["--model", "gpt2", "--optimizer", "lion"], "--optimizer"),
        (["--model", "gpt2", "--lora-dropout", "2"], "--lora-dropout"),
        (["--model", "gpt2", "--targets", "q_proj"], "targets"),
        (["--model", "gpt2", "--examples", "10", "--train-tokens", "100"], "not both"),
        (["--model", "gpt2", "--epochs", "0"], "--epochs"),
        (["--model", "gpt2", "--strategy", "zero9"], "fsdp"),
        (["--model", "gpt2", "--processes", "0"], "--processes"),
        ([], "--model"),
    ],
)
def test_bad_input_is_one_line_exit_2(argv, needle, capsys):
    rc = None
    try:
        rc = main(["plan", *argv])
    except SystemExit as e:  # argparse usage errors exit 2 themselves
        rc = e.code
    captured = capsys.readouterr()
    assert rc == 2
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0]


def test_bad_config_file_is_one_line(tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_text("{oops")
    assert main(["plan", "--model", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not valid JSON" in err[0]


def test_examples_without_epochs_defaults_to_one_epoch(capsys):
    assert main(["plan", "--model", "gpt2", "--gpu", "h100", "--examples", "100", "--seq-len", "128", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["train_tokens"] == 100 * 128


def test_unknown_strategy_names_the_choices(capsys):
    assert main(["plan", "--model", "gpt2", "--strategy", "zero9"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--strategy" in err[0] and "zero9" in err[0]
    for name in ("ddp", "fsdp", "deepspeed-zero2", "deepspeed-zero3"):
        assert name in err[0]


def test_sharding_over_processes_plans_less_memory_per_gpu(capsys):
    argv = ["plan", "--model", "qwen2.5-7b", "--method", "full", "--gpu", "h100", "--processes", "8", "--json"]
    assert main(argv) == 0
    ddp = json.loads(capsys.readouterr().out)
    assert main([*argv, "--strategy", "fsdp"]) == 0
    fsdp = json.loads(capsys.readouterr().out)
    assert (ddp["processes"], ddp["strategy"], fsdp["strategy"]) == (8, "ddp", "fsdp")
    assert fsdp["peak_gb"] < ddp["peak_gb"] / 3
    assert fsdp["gpus"][0]["fits"] is True and ddp["gpus"][0]["fits"] is False
    assert "gpu_count" not in fsdp


def test_plan_table_names_the_strategy_and_processes(capsys):
    assert main(["plan", "--model", "qwen2.5-7b", "--method", "full", "--gpu", "h100", "--processes", "4",
                 "--strategy", "deepspeed-zero3"]) == 0
    out = capsys.readouterr().out
    assert "processes 4, strategy deepspeed-zero3" in out and "gather_buffers" in out
