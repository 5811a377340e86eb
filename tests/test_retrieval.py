"""Retrieval over a knowledge base: chunking, the index cache, RAG prompts, retrieval-augmented training
rows, the retrieval metric, third-party retrievers, and the decision over the four answers.

The comparisons here run the real task loading, retrieval (BM25 on the bundled facts knowledge base),
prompt building, suites, statistics, decision and reports, with the fake backend of test_compare in place
of the model: a "reader" that answers with the reference when the reference is in the chunks its prompt
holds, and "I do not know" otherwise.
"""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest
from fake_engine import use_rule_engine
from test_compare import FakeBackend, builtin_plugins

from ftharness.cli import main
from ftharness.compare import run as run_mod
from ftharness.data.knowledge import ChunkingSpec, Document, KnowledgeBase, chunk_documents, load_knowledge
from ftharness.retrieval import HEADER, RetrievalSpec, build_knowledge

FACTS = Path(__file__).resolve().parents[1] / "examples" / "facts"


@pytest.fixture(scope="module")
def tokenizer(embedded_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(embedded_dir)


# --- chunking and the index ---------------------------------------------------------------------------


def test_a_short_document_is_one_chunk_and_a_long_one_is_cut_at_sentence_ends(tokenizer):
    long_text = " ".join(f"Sentence number {i} says the kettle holds {i} cups." for i in range(60))
    kb = KnowledgeBase([Document("short", "The A kettle costs $10.", "A kettle"), Document("long", long_text)],
                       "mem", "x")
    chunks = chunk_documents(kb, tokenizer, ChunkingSpec(size=40, overlap=8))
    assert chunks[0].id == "short#0" and chunks[0].text == "The A kettle costs $10." and chunks[0].title == "A kettle"
    rest = [c for c in chunks if c.doc_id == "long"]
    assert len(rest) > 5 and [c.id for c in rest] == [f"long#{i}" for i in range(len(rest))]
    for c in rest:
        assert c.tokens <= 40
        assert c.text in long_text  # a span of the document, never re-tokenised
        assert len(tokenizer(c.text, add_special_tokens=False)["input_ids"]) <= 41
    assert sum(c.text.endswith(".") for c in rest[:-1]) >= len(rest) - 2  # cut where a sentence ends
    again = chunk_documents(kb, tokenizer, ChunkingSpec(size=40, overlap=8))
    assert [(c.id, c.text, c.start) for c in again] == [(c.id, c.text, c.start) for c in chunks]
    # overlap: a chunk starts before the previous one ends
    assert all(b.start < a.start + len(a.text) for a, b in zip(rest, rest[1:], strict=False))


def test_the_index_is_built_once_and_cached_by_content_and_settings(tokenizer, isolated_cache):
    kb = load_knowledge(FACTS / "knowledge.jsonl")
    first = build_knowledge(kb, tokenizer, ChunkingSpec(), RetrievalSpec())
    second = build_knowledge(kb, tokenizer, ChunkingSpec(), RetrievalSpec())
    assert not first.cached and second.cached and first.key == second.key
    queries = ["What is the price of the Zalove V300 desk lamp?", "warranty of a kettle", "zzz"]
    assert first.search(queries, 3) == second.search(queries, 3)
    other = build_knowledge(kb, tokenizer, ChunkingSpec(), RetrievalSpec(settings={"k1": 1.2, "b": 0.75,
                                                                                  "method": "lucene",
                                                                                  "stopwords": True}))
    assert other.key != first.key and not other.cached
    top = first.search(["What is the price of the Zalove V300 desk lamp?"], 2)[0]
    assert top[0].doc_id == "zalove-v300-desk-lamp" and top[0].rank == 1 and top[0].score >= top[1].score


# --- the retrieval metric -----------------------------------------------------------------------------


def test_recall_at_k_and_mrr_equal_hand_computed_values():
    from ftharness_plugins.retrieval_metric import score_retrieval

    from ftharness.suites.metric import Sample

    def hits(*docs):
        return [{"id": f"{d}#0", "doc_id": d, "score": 1.0} for d in docs]

    samples = [
        Sample(id=0, input="q", output="24 months", reference="24 months", meta={"doc_id": "a"},
               retrieved=hits("a", "b"), context="[a#0] A\nwarranty of 24 months"),
        Sample(id=1, input="q", output="$10", reference="$12", meta={"doc_id": "a"},
               retrieved=hits("b", "a"), context="[b#0] B\ncosts $10"),
        Sample(id=2, input="q", output="blue", reference="x", meta={"doc_ids": ["a", "c"]},
               retrieved=hits("c", "b"), context="nothing"),
        Sample(id=3, input="q", output="the", reference="y", meta={}, retrieved=hits("b"), context="y"),
    ]
    r = score_retrieval(samples)
    assert r.per_sample["recall_at_k"][:3] == [1.0, 1.0, 0.5]
    assert r.per_sample["mrr"][:3] == [1.0, 0.5, 1.0]
    assert r.values["recall_at_k"] == pytest.approx(2.5 / 3)
    assert r.values["mrr"] == pytest.approx(2.5 / 3)
    assert r.per_sample["reference_in_context"] == [1.0, 0.0, 0.0, 1.0]
    assert r.per_sample["groundedness"][:3] == [1.0, 1.0, 0.0]  # "10" is in the context; "blue" is not
    assert r.per_sample["groundedness"][3] != r.per_sample["groundedness"][3]  # no content word: not scored
    assert r.details["scored"]["recall_at_k"] == 3


# --- compare with retrieval -------------------------------------------------------------------------------


class ReaderBackend(FakeBackend):
    """A fake model that reads: the reference when its prompt's retrieved chunks hold it, else a refusal.
    It records what each candidate trained on."""

    trained_on: dict = {}

    def train(self, option, data, parent, progress):
        ReaderBackend.trained_on[option.name] = data
        return super().train(option, data, parent, progress)

    def generate(self, lm, prompts, constrained=None):
        refs = {ex.input_text: ex.completion for ex in [*self._data.eval.examples, *self._data.train.examples]}
        out = []
        for p in prompts:
            inp, ref = next((i, r) for i, r in refs.items() if p.endswith(i))
            head = p[: len(p) - len(inp)]
            context = head.rsplit(HEADER, 1)[1] if HEADER in head else ""
            text = ref if ref in context else "I do not know"
            out.append(types.SimpleNamespace(text=text, prompt_tokens=len(p) // 4, new_tokens=4, latency_s=0.1,
                                             finish_reason="eos"))
        return out


def facts_task(tmp_path: Path, options: str, extra: str = "") -> Path:
    text = f"""
name: facts
instruction: Answer with the value alone.
data:
  train: {FACTS / "train.jsonl"}
  eval: {FACTS / "eval.jsonl"}
  knowledge: {FACTS / "knowledge.jsonl"}
slices: [slice]
generation: {{max_new_tokens: 16, batch_size: 8}}
{options}
suites: [task, rag]
decision: {{metric: task.exact_match, bootstrap_samples: 500}}
{extra}
"""
    p = tmp_path / "task.yaml"
    p.write_text(text)
    return p


@pytest.fixture
def reader(monkeypatch, tmp_path, check_results, isolated_cache):
    builtin_plugins(monkeypatch)
    ReaderBackend.calls, ReaderBackend.fail_on, ReaderBackend.trained_on = {}, None, {}
    monkeypatch.setattr(run_mod, "Backend", ReaderBackend)
    use_rule_engine(FakeBackend)
    yield ReaderBackend
    for path in tmp_path.rglob("results.json"):
        check_results(path)


def _compare(tmp_path: Path, task: Path, capsys) -> tuple[int, dict, Path]:
    code = main(["compare", str(task), "--out", str(tmp_path / "r"), "--json", "--no-progress"])
    captured = capsys.readouterr()
    assert code in (0, 1), captured.err
    results = json.loads(captured.out)
    return code, results, tmp_path / "r" / results["run_id"]


FOUR = """
baselines:
  - {name: few-shot, kind: few-shot, k: 2}
  - {name: rag, kind: rag, shots: retrieved, k: 1, retrieval: {k: 2}}
candidates:
  - {name: lora, method: lora, hyperparameters: {epochs: 1}}
  - {name: rag-lora, method: lora, retrieval: {k: 2}, hyperparameters: {epochs: 1}}
  - {name: raft-lora, method: lora, retrieval: {k: 2, distractors: 1, oracle_fraction: 0.5},
     hyperparameters: {epochs: 1}}
"""


def test_the_four_answers_are_measured_and_the_simplest_within_the_noise_wins(tmp_path, reader, capsys):
    code, results, run_dir = _compare(tmp_path, facts_task(tmp_path, FOUR), capsys)
    by = {o["name"]: o for o in results["options"]}
    assert {n: o["answer"] for n, o in by.items()} == {
        "few-shot": "prompt", "rag": "rag", "lora": "finetune", "rag-lora": "rag+finetune",
        "raft-lora": "rag+finetune"}
    assert by["rag"]["metrics"]["task.exact_match"] > 0.8 > by["few-shot"]["metrics"]["task.exact_match"]
    # the reader answers whenever retrieval delivered the fact: exact match equals reference-in-context
    assert by["rag"]["metrics"]["task.exact_match"] == pytest.approx(
        by["rag"]["metrics"]["retrieval.reference_in_context"])
    assert 0.8 < by["rag"]["metrics"]["retrieval.recall_at_k"] <= 1.0
    assert "suite rag" in by["lora"]["unavailable"] and "retrieval.recall_at_k" not in by["lora"]["metrics"]
    d = results["decision"]
    # rag and the retrieval-augmented candidates read the same chunks: a tie goes to the simpler answer
    assert d["verdict"] == "rag" and d["recommended"] == "rag" and code == 0
    answers_weighed = sorted(by[c["reference"]]["answer"] for c in d["comparisons"])
    assert answers_weighed == ["finetune", "prompt", "rag+finetune"]  # the best of each other answer
    samples = [json.loads(line) for line in (run_dir / "samples" / "rag.jsonl").read_text().splitlines()]
    assert all(len(s["retrieved"]) == 2 and s["context"].startswith("[") for s in samples)
    html = (run_dir / "report.html").read_text()
    assert "rag+finetune" in html and "retrieved: " in html
    assert main(["advise", "--from-run", str(run_dir), "--json"]) == 0
    advice = json.loads(capsys.readouterr().out)
    assert advice["recommendation"] == "rag"
    assert advice["reasons"][0]["rule"] == "measured_rag_wins"


def test_a_trained_reader_with_retrieval_beats_prompting_with_it(tmp_path, reader, monkeypatch, capsys):
    """When only the candidate trained with retrieval reads well, the decision is rag+finetune."""
    read = ReaderBackend.generate

    def generate(self, lm, prompts, constrained=None):
        outs = read(self, lm, prompts, constrained)
        if lm.name != "trained":
            for o in outs:
                o.text = "I do not know"
        return outs

    monkeypatch.setattr(ReaderBackend, "generate", generate)
    options = FOUR.replace("  - {name: raft-lora", "  - {name: raft-lora-unused").split("  - {name: raft")[0]
    code, results, run_dir = _compare(tmp_path, facts_task(tmp_path, options), capsys)
    d = results["decision"]
    assert d["verdict"] == "rag+finetune" and d["recommended"] == "rag-lora"
    assert d["comparison"]["verdict"] == "better"
    assert main(["advise", "--from-run", str(run_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["recommendation"] == "rag+finetune"


def test_a_retrieving_candidate_is_trained_on_its_serving_prompt_byte_for_byte(tmp_path, reader, capsys, tokenizer):
    from ftharness.baselines import zero_shot_messages
    from ftharness.compare.backend import LoadedData, options_of
    from ftharness.compare.experiment import Experiment
    from ftharness.compare.task import load_task
    from ftharness.models.prompts import render_prompt, training_pair
    from ftharness.training.sequences import example_messages

    options = "candidates:\n  - {name: rag-lora, method: lora, retrieval: {k: 2}, hyperparameters: {epochs: 1}}\n"
    code, _, _ = _compare(tmp_path, facts_task(tmp_path, options), capsys)
    fit = ReaderBackend.trained_on["rag-lora"].fit.examples
    assert all(ex.context for ex in fit)
    task = load_task(facts_task(tmp_path, options))
    exp = Experiment(task, types.SimpleNamespace(), ReaderBackend(task), progress=False)  # view() needs no run
    exp.data = exp.backend.load_data()
    option = options_of(task)[0]
    system = option.entry.system_prompt(task.instruction)
    plain = [e for e in exp.data.fit.examples][:12]
    served, _ = exp.retrieval.view(option, plain)
    assert isinstance(exp.data, LoadedData)
    for trained, serving in zip(fit[:12], served, strict=True):
        prompt, _ = training_pair(tokenizer, example_messages(system, trained), trained.completion)
        assert prompt == render_prompt(tokenizer, zero_shot_messages(system, serving))
        assert HEADER in prompt and trained.input_text in prompt


def test_no_eval_answer_reaches_a_training_prompt_except_through_the_knowledge_base(tmp_path, reader, capsys):
    from ftharness.baselines import zero_shot_messages

    code, results, _ = _compare(tmp_path, facts_task(tmp_path, FOUR), capsys)
    kb = {json.loads(line)["id"]: json.loads(line) for line in (FACTS / "knowledge.jsonl").read_text().splitlines()}
    answers = {json.loads(line)["completion"] for line in (FACTS / "eval.jsonl").read_text().splitlines()}
    for name in ("lora", "rag-lora", "raft-lora"):
        data = ReaderBackend.trained_on[name]
        for ex in [*data.fit.examples, *data.validation.examples]:
            own = "\n".join(m["content"] for m in zero_shot_messages(None, ex.__class__(messages=ex.messages)))
            assert not any(a in own for a in answers if a not in ex.input_text), (name, own)
            if ex.context is None:
                assert name == "lora"
                continue
            for block in ex.context.split("\n\n"):  # every chunk shown is a knowledge-base document
                header, text = block.split("\n", 1)
                doc_id = header[1:].split("#", 1)[0]
                assert kb[doc_id]["text"] == text


def test_raft_rows_keep_the_gold_chunk_in_the_oracle_fraction_and_add_distractors(tmp_path, reader, capsys):
    _compare(tmp_path, facts_task(tmp_path, FOUR), capsys)
    fit = ReaderBackend.trained_on["raft-lora"].fit.examples
    with_gold = 0
    for ex in fit:
        ids = [block.split("]", 1)[0][1:].split("#")[0] for block in ex.context.split("\n\n")]
        assert len(ids) == 2 and len(set(ids)) == 2
        with_gold += ex.meta["doc_id"] in ids
    assert 0.3 < with_gold / len(fit) < 0.7  # oracle_fraction 0.5, drawn with the task's seed


def test_a_third_party_retriever_registered_by_a_plugin_runs_in_compare(tmp_path, reader, capsys):
    from ftharness.hookspecs import hookimpl
    from ftharness.plugins import get_plugins

    class FirstWordIndex:
        def __init__(self, texts):
            self.texts = texts

        def search(self, queries, k):
            out = []
            for q in queries:
                words = set(q.lower().split())
                scored = [(i, float(len(words & set(t.lower().split())))) for i, t in enumerate(self.texts)]
                out.append(sorted(scored, key=lambda s: (-s[1], s[0]))[:k])
            return out

    class Overlap:
        name = "overlap"

        def unavailable_reason(self):
            return None

        def index(self, texts, settings):
            return FirstWordIndex(texts)

    class TeamSearch:  # a plugin: any object with @hookimpl functions, as a module would be
        @hookimpl
        def register_retrievers(self, register):
            register(Overlap())

    info = get_plugins().add_plugin(TeamSearch(), name="team-search")
    assert info.provides == {"retrievers": ["overlap"]} and not info.errors
    options = "baselines:\n  - {name: rag-overlap, kind: rag, retrieval: {retriever: overlap, k: 2}}\n"
    code, results, _ = _compare(tmp_path, facts_task(tmp_path, options), capsys)
    option = results["options"][0]
    assert option["retrieval"]["retriever"] == "overlap"
    assert option["metrics"]["retrieval.recall_at_k"] > 0.5


def test_a_document_holding_html_shows_as_text_in_the_report(tmp_path, reader, capsys):
    kb = tmp_path / "kb.jsonl"
    lines = (FACTS / "knowledge.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["text"] += " <script>alert('kb')</script><b>bold</b>"
    kb.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    eval_rows = [json.loads(line) for line in (FACTS / "eval.jsonl").read_text().splitlines()][:4]
    eval_rows[0] = {"prompt": f"What does the {first['title']} cost?", "completion": "x", "doc_id": first["id"],
                    "slice": "asked"}
    ev = tmp_path / "eval.jsonl"
    ev.write_text("".join(json.dumps(r) + "\n" for r in eval_rows))
    task = facts_task(tmp_path, "baselines:\n  - {name: rag, kind: rag}\n")
    task.write_text(task.read_text().replace(str(FACTS / "knowledge.jsonl"), str(kb))
                    .replace(str(FACTS / "eval.jsonl"), str(ev)))
    _, _, run_dir = _compare(tmp_path, task, capsys)
    html = (run_dir / "report.html").read_text()
    assert "&lt;script&gt;alert(" in html and "<script>alert" not in html and "<b>bold" not in html


def test_the_facts_task_runs_unchanged_on_another_knowledge_base_and_question_set(tmp_path, reader, capsys):
    """Another seed of the generator writes a different knowledge base and questions in the same format;
    the bundled task file, copied beside them, runs on them as it is."""
    import subprocess
    import sys

    out = tmp_path / "facts7"
    subprocess.run([sys.executable, str(FACTS / "generate.py"), "--seed", "7", "--out", str(out)], check=True,
                   capture_output=True)
    text = (FACTS / "task.yaml").read_text()
    assert "suites: [task, rag, forgetting]" in text  # the fake model has no weights to measure forgetting on
    (out / "task.yaml").write_text(text.replace("suites: [task, rag, forgetting]", "suites: [task, rag]"))
    assert (out / "knowledge.jsonl").read_bytes() != (FACTS / "knowledge.jsonl").read_bytes()
    code, results, _ = _compare(tmp_path, out / "task.yaml", capsys)
    by = {o["name"]: o for o in results["options"]}
    assert set(by) == {"few-shot-2", "rag-bm25", "lora", "raft-lora"}
    assert by["rag-bm25"]["retrieval"]["documents"] == 40
    assert set(by["rag-bm25"]["slices"]["slice"]) == {"asked", "unasked", "unseen-product", "changed"}
    assert results["decision"]["verdict"] in ("rag", "rag+finetune")


def test_a_candidate_trains_on_its_own_knowledge_base_and_is_served_with_the_task_s(tmp_path, reader, capsys):
    """Facts changed after training: the candidate's rows retrieved from the base it trained with
    (retrieval.knowledge), its eval rows from data.knowledge, and the artifact did not change with the
    served base."""
    old = tmp_path / "old.jsonl"
    docs = [json.loads(line) for line in (FACTS / "knowledge.jsonl").read_text().splitlines()]
    for d in docs:
        d["text"] = d["text"] + " (catalogue of last year)"
    old.write_text("".join(json.dumps(d) + "\n" for d in docs))
    options = f"candidates:\n  - {{name: rag-lora, method: lora, retrieval: {{k: 2, knowledge: {old}}}}}\n"
    code, results, run_dir = _compare(tmp_path, facts_task(tmp_path, options), capsys)
    fit = ReaderBackend.trained_on["rag-lora"].fit.examples
    assert all("(catalogue of last year)" in ex.context for ex in fit)
    samples = [json.loads(line) for line in (run_dir / "samples" / "rag-lora.jsonl").read_text().splitlines()]
    assert not any("(catalogue of last year)" in s["context"] for s in samples)
    option = results["options"][0]
    assert option["retrieval"]["training_knowledge"] == str(old)
    assert option["retrieval"]["knowledge"] == str(FACTS / "knowledge.jsonl")
