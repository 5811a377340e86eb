"""Continued pretraining: raw-text corpora (reading, checking, packing into blocks), a tiny-model training that
lowers the loss on its corpus and a supervised candidate trained on top of it through `compare` (forgetting
measured on the chain), the corpus's token count in `data inspect` and `advise`, the planner's cost, and the
task file's checks (exit 2 naming the file and the field)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from ftharness.cli import main
from ftharness.data.corpus import APPROXIMATION, approx_tokens, check_corpus, load_corpus
from ftharness.data.records import Example
from ftharness.errors import BadInput
from ftharness.training.sequences import corpus_blocks

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "extraction"
TINY = Path(__file__).parent / "data" / "train_tiny.jsonl"


class WordTokenizer:
    """Each word's length as its id (so a test can write the expected stream by hand); end-of-sequence is 0."""

    eos_token_id = 0

    def __call__(self, text, add_special_tokens=True):
        assert add_special_tokens is False  # a document gets no BOS: only the separator is added
        return {"input_ids": [len(w) for w in text.split()]}


def docs(*texts):
    return [Example(messages=[], completion=t) for t in texts]


# --- packing ---------------------------------------------------------------------------------------------------


def test_blocks_cut_the_stream_every_block_size_tokens_with_eos_after_each_document():
    rows, stats = corpus_blocks(WordTokenizer(), docs("a bb ccc", "dddd e", "ff"), block_size=3)
    # the stream 1 2 3 EOS 4 1 EOS 2 EOS, cut every 3 tokens: a block may span two documents
    assert [r["input_ids"] for r in rows] == [[1, 2, 3], [0, 4, 1], [0, 2, 0]]
    assert all(r["labels"] == r["input_ids"] for r in rows)  # next-token loss on every token
    assert (stats["documents"], stats["tokens"], stats["blocks"]) == (3, 9, 3)


def test_the_last_partial_block_is_kept_unless_it_is_one_token():
    tok = WordTokenizer()
    rows, stats = corpus_blocks(tok, docs("a bb ccc dddd", "e"), block_size=4)  # 1 2 3 4 EOS 1 EOS: 4 + 3
    assert [r["input_ids"] for r in rows] == [[1, 2, 3, 4], [0, 1, 0]]
    assert (stats["blocks"], stats["last_block_tokens"], stats["dropped_tokens"]) == (2, 3, 0)
    rows, stats = corpus_blocks(tok, docs("a bb ccc"), block_size=2)  # 1 2 | 3 EOS: exact, nothing partial
    assert [r["input_ids"] for r in rows] == [[1, 2], [3, 0]] and stats["dropped_tokens"] == 0
    rows, stats = corpus_blocks(tok, docs("a bb"), block_size=2)  # 1 2 | EOS: a lone token predicts nothing
    assert [r["input_ids"] for r in rows] == [[1, 2]] and stats["dropped_tokens"] == 1


# --- reading and checking corpora -----------------------------------------------------------------------------


def test_a_corpus_is_a_text_file_a_folder_of_them_or_jsonl_with_text(tmp_path):
    folder = tmp_path / "notes"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.txt").write_text("second note\n")
    (folder / "sub" / "a.txt").write_text("first note")
    (folder / "empty.txt").write_text("  \n")
    (folder / "skip.md").write_text("not text of the corpus")
    corpus = load_corpus(folder)
    assert [e.completion for e in corpus.examples] == ["second note\n", "first note"]  # path order, empty left out
    assert corpus.format == "text" and not corpus.examples[0].messages
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text('{"text": "one", "source": "wiki"}\n\n{"text": "two"}\n')
    assert [(e.completion, e.line) for e in load_corpus(jsonl).examples] == [("one", 1), ("two", 3)]


@pytest.mark.parametrize("case", ["missing", "empty folder", "empty text", "no text field", "text not a string"])
def test_bad_corpora_name_the_file_and_the_field(case, tmp_path):
    path = tmp_path / "corpus.jsonl"
    if case == "empty folder":
        path = tmp_path / "folder"
        path.mkdir()
    elif case == "empty text":
        path.write_text('{"text": "   "}\n')
    elif case == "no text field":
        path.write_text('{"text": "fine"}\n{"body": "no text"}\n')
    elif case == "text not a string":
        path.write_text('{"text": 3}\n')
    with pytest.raises(BadInput) as e:
        load_corpus(path, source="task.yaml", field="data.corpus")
    where = str(e.value)
    if case in ("no text field", "text not a string"):
        line = 2 if case == "no text field" else 1
        assert where.startswith(f"{path}:{line}: text: ") and "`text` string" in where
    else:
        assert where.startswith("task.yaml: data.corpus: ") and ("empty corpus" in where or "not found" in where)


def test_the_task_check_stops_at_the_first_document_with_text(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": ""}\n{"text": "words"}\n{"body": "checked when loaded"}\n')
    check_corpus(path)  # reads up to line 2
    with pytest.raises(BadInput, match=":3: text"):
        load_corpus(path)


# --- task files: exit 2, one line, file and field ---------------------------------------------------------------


def write_task(tmp_path: Path, base_model: Path, corpus: str | None, cpt_hp: str = "{max_steps: 2}") -> Path:
    data_corpus = f"\n  corpus: {corpus}" if corpus else ""
    path = tmp_path / "task.yaml"
    path.write_text(f"""
name: cpt-chain
base_model: {base_model}
data:
  train: {TINY}
  eval: {TINY}{data_corpus}
validation: {{fraction: 0.2, min: 2}}
generation: {{max_new_tokens: 4, batch_size: 16}}
baselines:
  - {{name: zero-shot, kind: zero-shot}}
candidates:
  - name: cpt
    method: continued-pretraining
    hyperparameters: {cpt_hp}
  - name: cpt-then-lora
    method: lora
    start_from: cpt
    hyperparameters: {{max_steps: 2, learning_rate: 2.0e-2, batch_size: 4}}
suites: [format, forgetting]
decision: {{bootstrap_samples: 200, merged_latency_prompts: 0}}
""")
    return path


@pytest.mark.parametrize("case", ["not set", "missing file", "empty", "no text field", "block too long"])
def test_task_file_corpus_mistakes_exit_2_naming_file_and_field(case, tmp_path, tiny_model_dir, capsys):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"text": "a support note"}\n')
    hp = "{max_steps: 2}"
    expected = "data.corpus"
    if case == "not set":
        corpus, expected = None, "candidates.cpt.data: this candidate trains on a raw-text corpus"
    elif case == "missing file":
        corpus = tmp_path / "nope.jsonl"
    elif case == "empty":
        corpus.write_text("\n")
    elif case == "no text field":
        corpus.write_text('{"body": "x"}\n')
        expected = f"{corpus}:1: text: missing"
    elif case == "block too long":
        hp, expected = "{block_size: 4096}", "candidates.cpt.hyperparameters.block_size: 4096 is longer than the model's 512"
    path = write_task(tmp_path, tiny_model_dir, corpus, hp)
    code = main(["compare", str(path), "--out", str(tmp_path / "reports"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert expected in err
    if case != "no text field":
        assert str(path) in err
    assert not (tmp_path / "reports").exists()


# --- training -------------------------------------------------------------------------------------------------


def corpus_loss(model_dir: Path, adapter: Path | None, rows: list[dict]) -> float:
    """Mean next-token loss over the packed rows (every token a target)."""
    import torch

    from ftharness.models.loading import load_model

    lm = load_model(str(model_dir), adapter=str(adapter) if adapter else None)
    total = count = 0.0
    with torch.no_grad():
        for r in rows:
            ids = torch.tensor([r["input_ids"]])
            out = lm.model(input_ids=ids, labels=ids, use_cache=False)
            total += float(out.loss) * (ids.size(1) - 1)
            count += ids.size(1) - 1
    return total / count


@pytest.mark.usefixtures("one_torch_thread")
def test_continued_pretraining_lowers_the_loss_on_its_corpus_and_sft_trains_on_top(tiny_model_dir, isolated_cache):
    from transformers import AutoTokenizer

    from ftharness.data.loading import load_dataset
    from ftharness.training.run import train_candidate
    from ftharness.training.trainer import CandidateSpec

    corpus = load_corpus(EXAMPLE / "corpus.jsonl")
    corpus.examples = corpus.examples[:8]
    spec = CandidateSpec("cpt", "peft", "continued-pretraining", base_model=str(tiny_model_dir),
                         hyperparameters={"block_size": 64, "learning_rate": 2e-2, "epochs": 3, "batch_size": 8})
    cpt = train_candidate(spec, corpus, None, progress=False)
    packed = cpt.result.extra["sequences"]
    rows, stats = corpus_blocks(AutoTokenizer.from_pretrained(tiny_model_dir), corpus.examples, 64)
    assert packed == stats and stats["block_size"] == 64
    assert cpt.result.train_tokens == 3 * sum(len(r["input_ids"]) for r in rows)  # every block, no padding
    before, after = corpus_loss(tiny_model_dir, None, rows), corpus_loss(tiny_model_dir, cpt.path, rows)
    assert after < before - 0.05, (before, after)

    # a small rate: what the chained model knows of the corpus must come from the CPT weights it starts from
    sft = train_candidate(CandidateSpec("sft", "peft", "lora", base_model=str(tiny_model_dir), start_from="cpt",
                                        hyperparameters={"max_steps": 2, "learning_rate": 1e-5, "batch_size": 4}),
                          load_dataset(TINY), None, start_from=cpt, progress=False)
    assert sft.record["start_from"]["key"] == cpt.key and sft.result.extra["continued_adapter"] == str(cpt.path)
    assert sft.kind == "adapter" and sft.base_model_path == Path(tiny_model_dir)  # one adapter on the base
    cpt_weights = (cpt.path / "adapter_model.safetensors").read_bytes()
    assert (sft.path / "adapter_model.safetensors").read_bytes() != cpt_weights  # SFT trained the CPT adapter on
    chained = corpus_loss(tiny_model_dir, sft.path, rows)
    assert abs(chained - after) < abs(chained - before), (before, after, chained)


@pytest.mark.usefixtures("one_torch_thread")
def test_compare_trains_the_chain_and_measures_forgetting_on_it(tiny_model_dir, isolated_cache, tmp_path, capsys):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in map(json.loads, (EXAMPLE / "corpus.jsonl")
                                                               .read_text().splitlines()[:6])))
    path = write_task(tmp_path, tiny_model_dir, str(corpus), "{block_size: 64, max_steps: 2, batch_size: 4}")
    code = main(["compare", str(path), "--out", str(tmp_path / "reports"), "--json", "--no-progress"])
    doc = json.loads(capsys.readouterr().out)
    assert code in (0, 1)
    options = {o["name"]: o for o in doc["options"]}
    chain = options["cpt-then-lora"]
    assert chain["training"]["start_from"] == "cpt"
    assert chain["training"]["total_wall_s"] > chain["training"]["wall_s"]  # the CPT's time is counted in
    assert options["cpt"]["training"]["extra"]["sequences"]["block_size"] == 64
    assert doc["data"]["corpus"]["n"] == 6
    for name in ("cpt", "cpt-then-lora"):  # forgetting measured against the base model on both
        assert math.isfinite(options[name]["metrics"]["forgetting.ppl_delta_pct"]), name
    assert options["cpt"]["plan"]["train_tokens"] == options["cpt"]["training"]["extra"]["sequences"]["tokens"]
    assert options["cpt"]["plan"]["assumptions"]["train_tokens_from"].startswith("corpus tokens x epochs")


# --- counting, advising, planning -----------------------------------------------------------------------------


def test_data_inspect_counts_the_corpus_tokens_with_the_tokenizer_or_estimates_them(tiny_model_dir, capsys):
    from transformers import AutoTokenizer

    texts = [json.loads(line)["text"] for line in (EXAMPLE / "corpus.jsonl").read_text().splitlines()]
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    exact = sum(len(tok(t, add_special_tokens=False)["input_ids"]) + 1 for t in texts)
    assert main(["data", "inspect", str(EXAMPLE / "corpus.jsonl"), "--model", str(tiny_model_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["documents"], report["domain_corpus_tokens"], report["tokens_exact"]) == (len(texts), exact, True)
    assert main(["data", "inspect", str(EXAMPLE / "corpus.jsonl"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["domain_corpus_tokens"] == sum(math.ceil(len(t) / 4) + 1 for t in texts)
    assert not report["tokens_exact"] and "4 characters per token" in report["length_unit"]


def test_advise_reads_the_corpus_count_against_the_rules_threshold(tmp_path, monkeypatch, capsys):
    import ftharness.advisor.rules as rules

    corpus = tmp_path / "notes"
    corpus.mkdir()
    (corpus / "a.txt").write_text("domain words " * 50)
    tokens = approx_tokens("domain words " * 50)
    args = ["advise", "--problems", "domain", "--prompting-exhausted", "--model", "llama-3.2-1b", "--corpus", str(corpus),
            "--json"]
    assert main(args) == 0
    small = json.loads(capsys.readouterr().out)
    assert small["recommendation"] != "continued-pretraining"
    assert any(APPROXIMATION in a and str(corpus) in a for a in small["assumptions"])
    bar = rules.thresholds()
    monkeypatch.setattr(rules, "thresholds", lambda: type(bar)(**{**bar.__dict__, "domain_corpus_min_tokens": tokens}))
    assert main(args) == 0
    big = json.loads(capsys.readouterr().out)
    assert big["recommendation"] == "continued-pretraining"
    plan = next(s for s in big["next_steps"] if "ftharness plan" in s).split("`")[1].split()[2:]
    assert "--method continued-pretraining" in " ".join(plan) and f"--corpus-tokens {tokens}" in " ".join(plan)
    assert main(["plan", *plan, "--json"]) == 0  # the command it names runs
    assert json.loads(capsys.readouterr().out)["train_tokens"] == tokens
    assert main([*args[:-1], "--domain-corpus-tokens", "5", "--json"]) == 0  # the flag wins over the estimate
    assert json.loads(capsys.readouterr().out)["recommendation"] != "continued-pretraining"


def test_plan_prices_corpus_tokens_times_epochs_through_the_adapter_it_trains():
    from ftharness.planner import PlanRequest, estimate

    def plan(**kw):
        return estimate(PlanRequest(model="llama-3-8b", gpu="a100-80gb", seq_len=1024, **kw))

    lora = plan(method="lora", train_tokens=3_000_000)
    cpt = plan(method="continued-pretraining", corpus_tokens=1_000_000, epochs=3)
    assert cpt.train_tokens == 3_000_000 and cpt.flops == lora.flops
    assert (cpt.trainable_params, cpt.peak_bytes) == (lora.trainable_params, lora.peak_bytes)
    full = plan(method="continued-pretraining", adapter="full", corpus_tokens=1_000_000)
    assert full.trainable_params == full.total_params
    for kw, field in (({"examples": 10}, "examples"), ({"corpus_tokens": 10, "train_tokens": 10}, "corpus_tokens")):
        with pytest.raises(BadInput) as e:
            plan(method="continued-pretraining", **kw)
        assert e.value.field == field
    with pytest.raises(BadInput, match="is for --method continued-pretraining"):
        plan(method="lora", corpus_tokens=10)


def test_candidate_files_name_the_corpus_and_refuse_the_other_data(tmp_path, capsys):
    from ftharness.training.spec import load_candidate_file

    chain = load_candidate_file(EXAMPLE.parent / "candidates" / "lora-on-continued-pretraining.yaml")
    assert chain.start_from.spec.method == "continued-pretraining"
    assert chain.start_from.corpus_path.resolve() == (EXAMPLE / "corpus.jsonl").resolve()
    for method, data, field in (("continued-pretraining", f"train: {TINY}", "data.corpus"),
                                ("continued-pretraining", f"corpus: {EXAMPLE / 'corpus.jsonl'}\n  eval: {TINY}",
                                 "data.eval"),
                                ("lora", f"train: {TINY}\n  corpus: {EXAMPLE / 'corpus.jsonl'}", "data.corpus")):
        path = tmp_path / "candidate.yaml"
        path.write_text(f"name: c\nmethod: {method}\ndata:\n  {data}\n")
        assert main(["train", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert f"{path}: {field}: " in err and len(err.splitlines()) == 1, err
