"""The experiment: every baseline and candidate through the same eval set, suites and gates.

Order of work:
1. Load the data and carve the validation split from the training data (``ftharness.data.split``).
   Candidates train on the rest; the validation rows serve early stopping and the best checkpoint (the
   trainer's validation loss) and the choice within a sweep. The eval set is read only to be judged on.
2. Sweeps: every point is trained and served on the validation rows; ``ftharness.compare.selection``
   picks one finalist per sweep from those scores. Only finalists go on to step 3.
3. Every baseline and every remaining candidate is generated on the eval rows (``train_candidate`` for
   the weights, ``generate`` for the outputs, ``run_suite`` for the scores). A distilled candidate's
   training rows are its teacher's labels of its inputs (``ftharness.compare.distill``), made (or read
   from the label cache) just before it trains.

Per-sample outputs stream to ``samples/NAME.jsonl`` as they are produced, and each finished evaluation
and validation is recorded in the run's ``state/`` under a key that hashes everything the result depends
on (option spec and its ``start_from`` chain, data hashes, base model, generation settings, suites, gates,
instruction, schema, seed). A rerun after a kill reuses every finished evaluation, and every sample
already generated for a half-finished one (a samples line a kill cut short is dropped and its row
generated again); trainings are reused from the artifact cache. The state files
hold the records of ``ftharness.report.records`` as JSON and read them back, those an earlier version
wrote included (``from_older``). Each phase's wall time and peak memory is recorded
(``ftharness.compare.phases``), and each candidate's model is freed when its evaluation ends.

Every option generates through its engine (``ftharness.models.engines``; :meth:`Experiment.serving`): the
experiment never asks which one. The heavy pieces sit behind :class:`~ftharness.compare.backend.Backend`
(data, models, training, suites), so the orchestration is tested with a fake backend and a registered fake
engine. The experiment's halves live beside it: sweeps (``ftharness.compare.sweeps``), trainings
(``ftharness.compare.artifacts``) and scoring (``ftharness.compare.scoring``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftharness import faults, ui
from ftharness.compare.artifacts import Artifacts
from ftharness.compare.backend import Backend, LoadedData, Option, generated_row, options_of
from ftharness.compare.phases import Phases, release_memory
from ftharness.compare.retrieving import Retrieval
from ftharness.compare.scoring import Scoring
from ftharness.compare.sweeps import Sweeps
from ftharness.compare.task import CandidateEntry, Task
from ftharness.io import append_jsonl, repair_jsonl, sha256_file, sha256_json
from ftharness.jsonrecord import doc, from_json, to_json
from ftharness.models.endpoint import EndpointGeneration
from ftharness.models.engines import DEFAULT_ENGINE, EngineChoice
from ftharness.report.records import (
    MERGED_LATENCY,
    PLAN,
    DataFile,
    Distillation,
    EngineRecord,
    MergedLatency,
    OptionRecord,
    Phase,
    Selection,
    Training,
)
from ftharness.report.run_dir import RunDir
from ftharness.suites.runner import SuiteResult
from ftharness.suites.slices import check_slice_fields

STATE_VERSION = 3  # 3: sweep points carry their gates and rungs
@dataclass(kw_only=True)
class ExperimentResult:
    """What :meth:`Experiment.run` measured, before the decision."""

    options: list[OptionRecord] = doc("every baseline and every finalist candidate, in task order")
    selection: dict[str, Selection] = doc("each sweep's points and finalist, by sweep name")
    data: dict[str, DataFile] = doc("train, eval, preference and validation rows, and the corpus's documents")
    suites: list[dict[str, Any]] = doc("the suites as defined")
    keys: dict[str, str] = doc("each option's evaluation key (what its state and samples are filed under)")
    wall_s: float = doc("seconds the experiment took")
    events: list[str] = doc("what was reused or computed, in order")
    phases: list[Phase] = doc("each phase's time and memory")


class Experiment(Sweeps, Artifacts, Scoring):
    """One run of a task in a run folder. ``run()`` returns the option records and run metadata."""

    def __init__(
        self, task: Task, run: RunDir, backend: Backend | None = None, *, progress: bool = True
    ) -> None:
        self.task = task
        self.run_dir = run
        self.backend = backend or Backend(task)
        self.progress = progress
        self.data: LoadedData | None = None
        self._artifacts: dict[str, Any] = {}
        self._training: dict[str, Training] = {}
        self._distillation: dict[str, Distillation] = {}
        self._shared_suites: dict[str, SuiteResult] = {}
        self.events: list[str] = []  # what was reused / computed, for the terminal and tests
        self.phases = Phases()
        self.retrieval = Retrieval(task, self.backend, self.phases, self.events)

    # engines ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def serving(self, option: Option | None, art: Any | None = None, *, name: str | None = None) -> Iterator[Any]:
        """The option's model served by its engine (``Task.engines``; ``option`` None: the base model on the
        local engine), closed however the block ends."""
        from ftharness.plugins import get_plugins

        choice = self.task.engines.get(option.name) if option is not None else None
        choice = choice or EngineChoice(DEFAULT_ENGINE)
        name = name or (option.name if option is not None else "base model")
        target = self.backend.engine_target(name, choice.settings, art, self.run_dir.root / "servers")
        with self.phases("load model", name):
            served = get_plugins().engine(choice.name).start(target)
        try:
            yield served
        finally:
            served.close()

    def engine_record(self, option: Option, served: Any) -> EngineRecord:
        """How the option's engine served it, for the report (the fields of ``record()`` the record has; an
        engine's own extras are left out)."""
        choice = self.task.engines.get(option.name) or EngineChoice(DEFAULT_ENGINE)
        known = {f.name for f in dataclasses.fields(EngineRecord)}
        fields = {k: v for k, v in served.record().items() if k in known}
        fields.setdefault("served", "unknown")
        fields.setdefault("schema", "unknown")
        fields.setdefault("weights", "in process" if served.weights_reason is None else served.weights_reason)
        return from_json(EngineRecord, {**fields, "name": choice.name})

    # keys ------------------------------------------------------------------------------------
    def eval_key(self, option: Option, options: dict[str, Option], suites: list[Any]) -> str:
        t = self.task
        return sha256_json(
            {
                "v": STATE_VERSION,
                "option": option.spec,
                "kind": option.kind,
                "parents": self._depends_on(option, options),
                "data": self.data.hashes if self.data else {},
                "base_model": t.spec.base_model,
                "generation": dataclasses.asdict(t.spec.generation),
                "seed": t.spec.seed,
                "suites": [s.to_dict() if hasattr(s, "to_dict") else str(s) for s in suites],
                "gates": [str(getattr(g, "text", g)) for g in t.gates],
                "instruction": t.instruction,
                "schema": t.schema,
            }
        )

    def _depends_on(self, option: Option, options: dict[str, Option]) -> list[Any]:
        """The specs of everything a candidate's weights depend on: its ``start_from`` chain, and its
        teacher with the teacher's own chain and the file of inputs it labels."""
        chain: list[Any] = []
        current = option
        while isinstance(current.entry, CandidateEntry):
            entry = current.entry
            if entry.teacher:
                teacher = options[entry.teacher]
                unlabeled = self.task.unlabeled_paths.get(current.name)
                chain.append({"teacher": teacher.spec, "teacher_parents": self._depends_on(teacher, options),
                              "unlabeled": sha256_file(unlabeled) if unlabeled else None})
            if not entry.start_from:
                break
            current = options[entry.start_from]
            chain.append(current.spec)
        return chain

    # the run ---------------------------------------------------------------------------------
    def run(self) -> ExperimentResult:
        t0 = time.perf_counter()
        with self.phases("load data"):
            self.data = self.backend.load_data()
        suites = self.backend.suites()
        # A slice field the eval rows lack is bad input: say so now, not after every option has run.
        check_slice_fields(
            (ex.meta for ex in self.data.eval.examples), self.slice_fields(suites), file=self.task.file
        )
        options = options_of(self.task)
        by_name = {o.name: o for o in options}
        keys = {o.name: self.eval_key(o, by_name, suites) for o in options}
        selection = self.select_sweeps(by_name, suites, keys)
        dropped = {p.name for s in selection.values() for p in s.points if p.name != s.chosen}
        records = []
        for option in options:
            if option.name in dropped:
                continue
            state = self.run_dir.read_state("eval", option.name)
            if state and state.get("key") == keys[option.name] and state.get("done"):
                self.events.append(f"reused evaluation of {option.name}")
                record = dataclasses.replace(from_json(OptionRecord, state["record"]), reused=True)
                records.append(record)
                if record.training is not None:
                    self._training[option.name] = record.training
                self.card(record)
                continue
            record = self.evaluate(option, by_name, suites, keys[option.name])
            self.run_dir.write_state(
                "eval", option.name, {"key": keys[option.name], "done": True, "record": to_json(record)}
            )
            records.append(record)
            self.card(record)
            release_memory()
        return ExperimentResult(
            options=records,
            selection=selection,
            data=self._data_record(),
            suites=[s.to_dict() for s in suites],
            keys={k: v for k, v in keys.items() if k not in dropped},
            wall_s=time.perf_counter() - t0,
            events=self.events,
            phases=self.phases.records,
        )

    def card(self, record: OptionRecord) -> None:
        """A scored candidate's eval-set values and gates into its artifact's model card
        (:func:`ftharness.training.card.record_evaluation`)."""
        from ftharness.training.card import record_evaluation

        if record.training is not None and record.training.artifact:
            record_evaluation(Path(record.training.artifact), run=self.run_dir.run_id, option=record.name,
                              metrics=record.metrics, gates=record.gates)

    def slice_fields(self, suites: list[Any]) -> list[str]:
        """The fields every option is sliced by: the task's, then each suite's, each once."""
        return list(dict.fromkeys([*self.task.spec.slices, *(f for s in suites for f in s.slices)]))

    def _data_record(self) -> dict[str, DataFile]:
        d = self.data
        out = {
            k: DataFile(path=str(p), sha256=d.hashes.get(k), n=len(ds))
            for k, p, ds in (
                ("train", self.task.train_path, d.train),
                ("eval", self.task.eval_path, d.eval),
                ("preference", self.task.preference_path, d.preference),
                ("corpus", self.task.corpus_path, d.corpus),
            )
            if ds is not None
        }
        if d.validation is not None:
            v = self.task.spec.validation
            out["validation"] = DataFile(
                path=str(self.task.validation_path) if self.task.validation_path else None,
                carved_from=None if self.task.validation_path else "train",
                fraction=None if self.task.validation_path else v.fraction,
                sha256=d.hashes.get("validation"),
                n=len(d.validation),
                trained_on=len(d.fit),
            )
        return out

    def evaluate(self, option: Option, by_name: dict[str, Option], suites: list[Any], key: str) -> OptionRecord:
        b = self.backend
        art = training = plan = merged = None
        unavailable: dict[str, str] = {}
        shown, hits = self.retrieval.view(option, self.data.eval.examples)
        conversations = b.messages(option, self.retrieval.prompt_data(option, self.data), shown)
        settings = b.settings(option.entry.constrained)
        if option.kind == "candidate":
            art = self.artifact(option, by_name)
            training = self._training[option.name]
        with self.serving(option, art) as served:
            n = self.task.spec.decision.merged_latency_prompts
            if option.kind == "candidate" and n and hasattr(served, "merged_latency"):
                with self.phases("merged latency", option.name):  # attached first, then merged, as it is served
                    merged = attempt(lambda: _record_of(MergedLatency, served.merged_latency(conversations[:n], settings)),
                                     MERGED_LATENCY, unavailable)
            with self.phases("generate", option.name):
                gens, gen_wall = self._generate_streaming(
                    option, conversations, lambda batch: served.generate(batch, settings), key, hits,
                    concurrency=getattr(served, "concurrency", 1))
            samples = self._samples(self.data.eval.examples, gens, self.retrieval.rows_fields(option, hits))
            suite_results = self._score(option, suites, samples, served, gen_wall, hits is not None, unavailable)
            engine = self.engine_record(option, served)
        if option.kind == "candidate":
            plan = attempt(lambda: b.plan(option, self.data, self._seq_len(gens)), PLAN, unavailable)
        return self._record(
            option, suite_results, samples, gens, gen_wall, self.slice_fields(suites),
            training=training, plan=plan, merged_latency=merged, unavailable=unavailable,
            distillation=self._distillation.get(option.name),
            retrieval=self.retrieval.record(option), engine=engine,
            served=engine.served if option.kind == "candidate" and engine.served in ("merged", "as trained") else None,
        )

    def _samples(self, examples: list[Any], gens: list[dict[str, Any]],
                 retrieved: list[dict[str, Any]] | None = None) -> list[Any]:
        """The suites' samples: each example with its generated row (``_generated`` fields) and, for an option
        that retrieves, what its prompt held (``retrieved``: ``Retrieval.rows_fields``)."""
        return [
            self.backend.sample(
                id=i,
                input=ex.input_text,
                output=g["output"],
                reference=ex.completion,
                meta=dict(ex.meta),
                prompt_tokens=g["prompt_tokens"],
                new_tokens=g["new_tokens"],
                latency_s=g["latency_s"],
                **(retrieved[i] if retrieved is not None else {}),
            )
            for i, (ex, g) in enumerate(zip(examples, gens, strict=True))
        ]

    def _seq_len(self, gens: list[dict]) -> int:
        longest = max((g["prompt_tokens"] + g["new_tokens"] for g in gens), default=256)
        return int(longest)

    def _status(self, message: str) -> None:
        if self.progress:
            ui.status(message)

    def _generate_streaming(
        self, option: Option, prompts: list[Any], generate: Callable[[list[Any]], list[Any]], key: str,
        hits: list[list[Any]] | None = None, *, concurrency: int = 1,
    ) -> tuple[list[dict], float]:
        """Generate in batches of similar length (``generate(batch)`` of conversations), appending each
        finished batch to the samples file; samples already
        in the file for this key are kept, not generated again. A line a kill cut short is dropped from the
        file first (its row is generated again), so no row is ever glued to it."""
        path = self.run_dir.samples_file(option.name)
        retrieved = self.retrieval.rows_fields(option, hits)
        done = {r["id"]: r for r in repair_jsonl(path) if r.get("key") == key}
        if path.exists() and not done:
            path.unlink()  # samples of an older key: start the file again
        todo = [i for i in range(len(prompts)) if i not in done]
        todo.sort(key=lambda i: len(str(prompts[i])))
        size = max(1, self.task.spec.generation.batch_size)
        examples = self.data.eval.examples
        wall = sum(
            float(r.get("batch_wall_s", 0.0)) / max(1, int(r.get("batch_n", 1))) for r in done.values()
        )
        with ui.progress(f"generating {option.name}", len(prompts), completed=len(done), show=self.progress) as step:
            for start in range(0, len(todo), size):
                batch = todo[start : start + size]
                faults.reached("generate")  # test hook (ftharness.faults)
                t0 = time.perf_counter()
                outs = generate([prompts[i] for i in batch])
                took = time.perf_counter() - t0 + _cached_wall(outs, concurrency)
                wall += took
                rows = []
                for i, g in zip(batch, outs, strict=True):
                    row = {
                        "key": key,
                        "option": option.name,
                        "id": i,
                        "input": examples[i].input_text,
                        "reference": examples[i].completion,
                        "meta": examples[i].meta,
                        **generated_row(g),
                        **(retrieved[i] if retrieved is not None else {}),
                        "batch_wall_s": took,
                        "batch_n": len(batch),
                    }
                    done[i] = row
                    rows.append(row)
                append_jsonl(path, rows)
                step.advance(len(batch))
        return [done[i] for i in range(len(prompts))], wall

def attempt(fn: Callable[[], Any], what: str, unavailable: dict[str, str]) -> Any:
    """``fn()``, or None with the reason filed under ``unavailable[what]``: an estimate or a provenance
    record that cannot be made is reported, never fatal."""
    try:
        return fn()
    except Exception as e:
        unavailable[what] = f"{type(e).__name__}: {e}"
        ui.warn(f"{what} unavailable: {unavailable[what]}")
        return None


def _record_of(cls: type, fields: dict[str, Any] | None) -> Any:
    """A report record from the fields a plugin returned (plugins sit below the reports and return dicts)."""
    return None if fields is None else from_json(cls, fields)


def _cached_wall(outs: list[Any], concurrency: int) -> float:
    """Endpoint rows answered from the cache take no time now: their latency as first measured, spread over
    the engine's ``concurrency``, stands in for the wall time they took then (0 for anything else)."""
    cached = [g.latency_s for g in outs if isinstance(g, EndpointGeneration) and g.cached]
    if not cached:
        return 0.0
    return sum(cached) / min(max(1, concurrency), len(outs))
