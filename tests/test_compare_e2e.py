"""One real end-to-end `ftharness compare` on the embedded model: a tiny task through the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftharness.cli import main

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "extraction"


@pytest.mark.e2e
def test_compare_tiny_task_end_to_end(tmp_path, isolated_cache, capsys, check_results):
    for name, n in (("train", 16), ("eval", 8)):
        lines = (EXAMPLE / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()[:n]
        (tmp_path / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    task = tmp_path / "task.yaml"
    task.write_text(
        f"""
name: tiny-e2e
instruction_file: {EXAMPLE / "instruction.txt"}
schema: {EXAMPLE / "schema.json"}
data: {{train: train.jsonl, eval: eval.jsonl}}
slices: [template]
generation: {{max_new_tokens: 80, batch_size: 8}}
validation: {{fraction: 0.25, min: 4}}
baselines:
  - {{name: zero-shot, kind: zero-shot}}
  - {{name: few-shot-2, kind: few-shot, k: 2}}
  - {{name: zero-shot-constrained, kind: zero-shot, constrained: json-schema}}
candidates:
  - name: lora-r8
    method: lora
    prompt: bare
    hyperparameters: {{r: 8, lora_alpha: 16, target_modules: [q_proj, v_proj], epochs: 1, batch_size: 8}}
    sweep: {{learning_rate: [1.0e-4, 1.0e-3]}}
suites: [format, safety]
decision: {{bootstrap_samples: 1000, merged_latency_prompts: 2}}
""",
        encoding="utf-8",
    )
    out = tmp_path / "reports"
    code = main(["compare", str(task), "--out", str(out), "--run-id", "e2e", "--no-progress"])
    printed = capsys.readouterr().out
    run = out / "e2e"
    results = check_results(run / "results.json")
    decision = results["decision"]
    assert code == (0 if decision["passes_all_gates"] else 1)
    assert decision["headline"] in printed.replace("\n", " ") or "Decision" in printed
    assert str(run / "report.html") in printed.replace("\n", "")
    chosen = results["selection"]["lora-r8"]["chosen"]
    assert chosen in ("lora-r8-lr1e-4", "lora-r8-lr1e-3")
    assert {p["name"] for p in results["selection"]["lora-r8"]["points"]} == {"lora-r8-lr1e-4", "lora-r8-lr1e-3"}
    assert [o["name"] for o in results["options"]] == ["zero-shot", "few-shot-2", "zero-shot-constrained", chosen]
    assert results["data"]["validation"]["n"] == 4 and results["data"]["validation"]["trained_on"] == 12
    by = {o["name"]: o for o in results["options"]}
    by["lora-r8"] = by.pop(chosen)
    constrained = [row["outputs"]["zero-shot-constrained"] for row in results["samples"]]
    for out in constrained:  # every row whose JSON closed is valid; the others were cut at 80 new tokens
        assert out["strict_ok"] or out["finish_reason"] == "length", out
    assert results["settings"]["constrained_decoding"]["library"] == "xgrammar"
    phases = {p["phase"] for p in results["timing"]["phases"]}
    assert {"train", "validate: generate", "generate", "load data"} <= phases
    assert "Time and memory" in printed and (run / "run.log").exists()
    for o in by.values():
        assert 0.0 <= o["metrics"]["format.parse_rate"] <= 1.0
        assert len((run / "samples" / f"{o['name']}.jsonl").read_text(encoding="utf-8").splitlines()) == 8
        assert {g["suite"] for g in o["gates"]} == {"format", "safety"}
    lora = by["lora-r8"]
    assert lora["training"]["wall_s"] > 0 and lora["training"]["loss_curve"]
    assert lora["cost"]["prompt_tokens_mean"] < by["zero-shot"]["cost"]["prompt_tokens_mean"]  # bare: no instruction
    assert results["environment"]["libraries"]["torch"]
    assert results["settings"]["prompt_template"]["kind"] == "chat_template"
    assert results["data"]["train"]["n"] == 16 and len(results["data"]["train"]["sha256"]) == 64
    for name in ("junit.xml", "report.html", "run.json"):
        assert (run / name).stat().st_size > 0
    assert "recommend" in decision["headline"] or decision["verdict"] in ("prompt", "none")
