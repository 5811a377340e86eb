"""`ftharness advise` through the CLI: --json contract, flags over files, bad input as one line and exit 2,
the no-terminal message, and no heavy imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ftharness.cli import main

SCENARIOS = Path(__file__).resolve().parents[1] / "examples" / "scenarios"
TICKETS = str(SCENARIOS / "json-extraction-support-tickets.yaml")


def run_json(capsys, *argv: str) -> dict:
    assert main(["advise", *argv, "--json"]) == 0
    out = capsys.readouterr().out
    return json.loads(out)  # one JSON document and nothing else on stdout


def test_json_output_for_a_scenario_file(capsys):
    d = run_json(capsys, "--scenario", TICKETS)
    assert set(d) == {"recommendation", "method", "reasons", "assumptions", "next_steps", "plan", "alternatives"}
    assert d["recommendation"] == "finetune" and d["method"] == "lora"
    assert d["plan"] is not None and "peak_gb" in d["plan"]


def test_flags_alone_and_flags_override_the_file(capsys):
    d = run_json(capsys, "--problems", "format,knowledge", "--knowledge-refresh", "daily",
                 "--labeled-examples", "800", "--prompting-exhausted")
    assert d["recommendation"] == "rag+finetune"
    d = run_json(capsys, "--scenario", TICKETS, "--labeled-examples", "100")
    assert d["recommendation"] == "collect-data"
    d = run_json(capsys, "--scenario", TICKETS, "--no-prompting-exhausted")
    assert d["recommendation"] == "prompt"


def test_rich_output_has_the_sections(capsys):
    assert main(["advise", "--scenario", TICKETS]) == 0
    out = capsys.readouterr().out
    for part in ("finetune", "lora", "Why", "Assumptions", "Next steps", "Plan", "Alternatives considered"):
        assert part in out


def test_names_as_people_type_them_become_the_catalogue_entries(tmp_path, capsys):
    scenario = _bad(tmp_path, "s.yaml", "model: llama3.1 8b\ngpu: H100 SXM\n")
    d = run_json(capsys, "--scenario", scenario, "--problems", "format",
                 "--labeled-examples", "2000", "--prompting-exhausted")
    assert d["plan"]["model"] == "llama-3.1-8b" and [r["name"] for r in d["plan"]["gpus"]] == ["h100"]
    d = run_json(capsys, "--scenario", TICKETS, "--gpu", "a100 80GB")
    assert [r["name"] for r in d["plan"]["gpus"]] == ["a100-80gb"]


def _bad(tmp_path: Path, name: str, text: str) -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


BAD_FILES = {
    "not-yaml": ("s.yaml", "problems: [format\nlabeled_examples: 3\n", "not valid YAML"),
    "not-json": ("s.json", "{\"problems\": [\"format\"],}", "not valid JSON"),
    "not-a-mapping": ("s.yaml", "- format\n", "mapping"),
    "unknown-field": ("s.yaml", "problems: [format]\nexamples: 800\n", "examples: unknown field"),
    "wrong-type": ("s.yaml", "labeled_examples: lots\n", "labeled_examples: expected a whole number"),
    "wrong-bool": ("s.yaml", "prompting_exhausted: 3\n", "prompting_exhausted: expected true or false"),
    "negative-count": ("s.yaml", "labeled_examples: -5\n", "labeled_examples: must be >= 0"),
    "negative-pairs": ("s.yaml", "preference_pairs: -1\n", "preference_pairs: must be >= 0"),
    "score-above-1": ("s.yaml", "prompting_score: 1.2\n", "prompting_score: must be <= 1"),
    "score-below-0": ("s.yaml", "target_score: -0.1\n", "target_score: must be >= 0"),
    "unknown-refresh": ("s.yaml", "knowledge_refresh: hourly\n", "knowledge_refresh: 'hourly' is not one of"),
    "unknown-problem": ("s.yaml", "problems: [format, speed]\n", "problems[1]: 'speed' is not one of"),
    "unknown-gpu": ("s.yaml", "gpu: tpu-v9\n", "gpu: unknown GPU"),
    "unknown-model": ("s.yaml", "model: gpt-17\n", "model: unknown model"),
    "ambiguous-gpu": ("s.yaml", "gpu: A100\n", "gpu: GPU 'A100' matches 2 catalogue entries; did you mean"),
    "missing-config": ("s.yaml", "model: ./nowhere/config.json\n", "model: config file not found"),
    "zero-gpus": ("s.yaml", "gpu_count: 0\n", "gpu_count: must be >= 1"),
    "empty": ("s.yaml", "", "empty"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_scenario_file_is_one_line_and_exit_2(tmp_path, capsys, case):
    name, text, expected = BAD_FILES[case]
    path = _bad(tmp_path, name, text)
    assert main(["advise", "--scenario", path, "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err
    assert expected in lines[0] and path in lines[0]


BAD_FLAGS = {
    "missing-file": (["--scenario", "/no/such/scenario.yaml"], "file not found"),
    "int-flag": (["--labeled-examples", "many"], "--labeled-examples: expected a whole number"),
    "negative-flag": (["--labeled-examples", "-5"], "--labeled-examples: must be >= 0"),
    "score-flag": (["--prompting-score", "2"], "--prompting-score: must be <= 1"),
    "float-flag": (["--budget-usd", "cheap"], "--budget-usd: expected a number"),
    "problem-flag": (["--problems", "format,speed"], "--problems: 'speed' is not one of"),
    "refresh-flag": (["--knowledge-refresh", "hourly"], "--knowledge-refresh: 'hourly' is not one of"),
    "gpu-flag": (["--gpu", "tpu-v9"], "--gpu: unknown GPU"),
    "model-flag": (["--model", "gpt-17"], "--model: unknown model"),
    "ambiguous-gpu-flag": (["--gpu", "a100"], "--gpu: GPU 'a100' matches 2 catalogue entries"),
}


@pytest.mark.parametrize("case", sorted(BAD_FLAGS))
def test_bad_flag_is_one_line_and_exit_2(capsys, case):
    argv, expected = BAD_FLAGS[case]
    assert main(["advise", *argv]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err
    assert expected in lines[0]


def test_no_terminal_and_no_input_says_what_to_pass(capsys, monkeypatch):
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False, raising=False)
    assert main(["advise", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "--scenario" in lines[0]


def test_terminal_without_input_runs_the_questionnaire(capsys, monkeypatch):
    import ftharness.advisor.questionnaire as q

    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(q, "run_questionnaire",
                        lambda ask, say: {"problems": ["knowledge"], "knowledge_refresh": "daily"})
    d = run_json(capsys)
    assert d["recommendation"] == "rag"


def test_advise_does_not_import_torch_or_trainers():
    code = (
        "import sys; from ftharness.cli import main; "
        f"rc = main(['advise', '--scenario', {TICKETS!r}, '--json']); "
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'trl', 'sklearn', 'bitsandbytes') "
        "if m in sys.modules]; "
        "print('HEAVY', heavy, file=sys.stderr); sys.exit(rc or (1 if heavy else 0))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stderr
    assert json.loads(proc.stdout)["recommendation"] == "finetune"
