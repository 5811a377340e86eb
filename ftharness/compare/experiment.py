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

The heavy pieces sit behind :class:`Backend` so the orchestration is tested with fakes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftharness import faults, ui
from ftharness.compare import distill, replay
from ftharness.compare.backend import Backend, LoadedData, Option, options_of, staged
from ftharness.compare.phases import Phases, release_memory
from ftharness.compare.retrieving import Retrieval
from ftharness.compare.selection import halving_budgets, rank, selection_suite, survivors
from ftharness.compare.task import CandidateEntry, HalvingSpec, Task
from ftharness.errors import BadInput
from ftharness.io import append_jsonl, repair_jsonl, sha256_file, sha256_json
from ftharness.jsonrecord import doc, from_json, to_json
from ftharness.models.endpoint import EndpointGeneration
from ftharness.models.engines import DEFAULT_ENGINE, EngineChoice
from ftharness.report.records import (
    MERGED_LATENCY,
    PLAN,
    Cost,
    DataFile,
    Distillation,
    EndpointUsage,
    EngineRecord,
    OptionRecord,
    Phase,
    PointOutput,
    Rung,
    Selection,
    SweepPoint,
    Training,
)
from ftharness.report.run_dir import RunDir
from ftharness.suites.gates import GateOutcome
from ftharness.suites.runner import SuiteResult
from ftharness.suites.slices import check_slice_fields, compute_slices

STATE_VERSION = 3  # 3: sweep points carry their gates and rungs
RETRIEVES_NOTHING = "reads what an option retrieved, and this option retrieves nothing (no retrieval: block)"


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


class Experiment:
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
        self._base_loaded = False
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
        """How the option's engine served it, for the report."""
        choice = self.task.engines.get(option.name) or EngineChoice(DEFAULT_ENGINE)
        return from_json(EngineRecord, {"name": choice.name, **served.record()})

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

    # sweeps, chosen without the eval set (ftharness.compare.selection) -----------------------------
    def select_sweeps(
        self, by_name: dict[str, Option], suites: list[Any], keys: dict[str, str]
    ) -> dict[str, Selection]:
        """Train the points of every sweep (all of them to the end, or by successive halving), score each
        on the validation rows and the selection part of the forgetting reference, keep one finalist."""
        spec = self.task.spec.decision
        out: dict[str, Selection] = {}
        for sweep, names in self.task.sweeps.items():
            strategy = by_name[names[0]].entry.sweep_strategy
            if strategy == "halving" and len(names) > 1:
                points, finalists, full = self.halve(names, by_name, suites, keys)
            else:
                points = [self.validate(by_name[n], by_name, suites, keys[n]) for n in names]
                finalists, full = names, None
            chosen = rank([p for p in points if p.name in finalists], spec.metric, spec.higher_is_better)[0]
            why = "" if chosen.feasible is not False else " (no point passed every gate measurable without the eval set)"
            self.events.append(f"validation chose {chosen.name} from sweep {sweep}{why}")
            trained = [p.global_step for p in points]
            out[sweep] = Selection(
                chosen=chosen.name,
                metric=spec.metric,
                on="validation",
                n=len(self.data.validation) if self.data.validation is not None else 0,
                points=points,
                strategy=strategy,
                feasible=chosen.feasible is not False,
                steps_trained=sum(trained) if all(t is not None for t in trained) else None,
                steps_grid=sum(self.full_steps(by_name[n]) for n in names) if full else None,
            )
        return out

    def halve(self, names: list[str], by_name: dict[str, Option], suites: list[Any],
              keys: dict[str, str]) -> tuple[list[SweepPoint], list[str], int]:
        """Successive halving over one sweep's points: (every point with its rungs, the points that reached
        the full budget, that budget in steps)."""
        spec = self.task.spec.decision
        full = max(self.full_steps(by_name[n]) for n in names)
        settings = by_name[names[0]].entry.halving or HalvingSpec()
        budgets = halving_budgets(full, len(names), settings.eta, settings.first)
        alive, stage, last = list(names), {}, {}
        rungs: dict[str, list[Rung]] = {n: [] for n in names}
        for r, steps in enumerate(budgets):
            final = r == len(budgets) - 1
            points = []
            for n in alive:
                option = by_name[n]
                art = self.artifact(option, by_name, stop_at_step=None if final else steps, resume_from=stage.get(n))
                stage[n] = art
                name = n if final else f"{n}@{steps}"
                points.append(self.validate(option, by_name, suites, f"{keys[n]}:{name}", art=art, state=name))
            keep = set() if final else {p.name for p in rank(points, spec.metric, spec.higher_is_better)[
                :survivors(len(points), settings.eta)]}
            for p in points:
                rungs[p.name].append(Rung(rung=r, steps=p.global_step if p.global_step is not None else steps,
                                          value=p.metrics.get(spec.metric), feasible=p.feasible is not False,
                                          promoted=p.name in keep))
                last[p.name] = p
            self.events.append(f"halving: rung {r} at {steps} steps validated {', '.join(p.name for p in points)}"
                               + (f"; {', '.join(sorted(keep))} continue" if keep else ""))
            if not final:
                alive = [n for n in alive if n in keep]
        points = [dataclasses.replace(last[n], rungs=rungs[n]) for n in names]
        return points, alive, full

    def full_steps(self, option: Option) -> int:
        """The optimizer steps a candidate trains at its full budget: ``max_steps``, else epochs times the
        steps of one pass over its rows (task rows, replay rows included) in batches of ``batch_size x
        grad_accum`` (as transformers counts them on one device)."""
        c = option.entry
        hp = self.task.hyperparameters[c.name]
        if getattr(hp, "max_steps", None):
            return int(hp.max_steps)
        rows = len(self.data.fit)
        if c.replay is not None:
            rows += replay.replay_count(c.replay.fraction, rows)
        per_step = int(getattr(hp, "batch_size", 8)) * int(getattr(hp, "grad_accum", 1))
        return max(1, math.ceil(float(getattr(hp, "epochs", 1.0)) * math.ceil(rows / per_step)))

    def validate(self, option: Option, by_name: dict[str, Option], suites: list[Any], key: str, *,
                 art: Any | None = None, state: str | None = None) -> SweepPoint:
        """One sweep point (``art``: one stage of it) served on the validation rows, scored by what a sweep
        may read (``ftharness.compare.selection.selection_suite``) and checked against the gates those
        values reach."""
        name = state or option.name
        saved = self.run_dir.read_state("validation", name)
        if saved and saved.get("key") == key and saved.get("done"):
            self.events.append(f"reused validation of {name}")
            if art is None:
                self.artifact(option, by_name)  # from the artifact cache; its training record is needed
            return from_json(SweepPoint, saved["record"])
        b = self.backend
        art = art if art is not None else self.artifact(option, by_name)
        examples = self.data.validation.examples
        shown, hits = self.retrieval.view(option, examples, training=True)
        with self.serving(option, art, name=name) as served:
            with self.phases("validate: generate", name):
                conversations = b.messages(option, self.data, shown)
                self._status(f"generating {name} on {len(conversations)} validation rows")
                t0 = time.perf_counter()
                outs = served.generate(conversations, b.settings(option.entry.constrained))
                wall = time.perf_counter() - t0
            samples = self._samples(examples, [_generated(g) for g in outs],
                                    self.retrieval.rows_fields(option, hits, training=True))
            metrics, gates = self._selection_scores(suites, samples, served, name, wall, retrieves=hits is not None)
        release_memory()
        training = self._training[option.name]
        extra = training.extra  # what the trainer reports beyond the common figures
        losses = [p["eval_loss"] for p in training.loss_curve if p.get("eval_loss") is not None]
        point = SweepPoint(
            name=option.name,
            hyperparameters=dict(option.entry.hyperparameters),
            replay_fraction=option.entry.replay.fraction if option.entry.replay is not None else None,
            metrics=metrics,
            validation_loss=min(losses) if losses else None,  # the kept (best) checkpoint's
            stopped_early=extra.get("stopped_early"),
            restored_best_from_step=extra.get("restored_best_from_step"),
            training_wall_s=training.wall_s,
            global_step=extra.get("global_step"),
            outputs=[PointOutput(id=s.id, output=s.output) for s in samples],
            gates=gates,
            feasible=all(g.passed for g in gates),
        )
        self.run_dir.write_state("validation", name, {"key": key, "done": True, "record": to_json(point)})
        return point

    def _selection_scores(self, suites: list[Any], samples: list[Any], served: Any, name: str, wall: float, *,
                          retrieves: bool) -> tuple[dict[str, float | None], list[GateOutcome]]:
        """What a sweep point is chosen on, and the gates it reaches: each suite's selection part, then the
        task's own gates on those values. A gate on a value nothing measured here is left out."""
        b = self.backend
        metrics: dict[str, float | None] = {}
        results: list[SuiteResult] = []
        gates: list[GateOutcome] = []
        with self.phases("validate: score", name):
            for suite in suites:
                part = selection_suite(suite)
                if part is None or (not retrieves and b.retrieval_only(suite)):
                    continue
                res = b.run_suite(part, samples, served.weights if b.reads_model(part) else None, name, wall)
                metrics.update(_metrics_of(res, len(samples))[0])
                results.append(res)
                gates.extend(dataclasses.replace(g, suite=suite.name) for g in res.gates if g.value is not None)
        gates.extend(g for g in self.task_gates(metrics, results) if g.value is not None)
        return metrics, gates

    def task_gates(self, metrics: dict[str, float | None], results: list[SuiteResult]) -> list[GateOutcome]:
        """The task file's own gates on ``metrics`` (METRIC.VALUE), each reading its value's interval where
        a suite result gives one."""
        from ftharness.suites.gates import check_gate

        intervals = {f"{name}.{k}": v for res in results for name, m in res.metrics.items()
                     for k, v in m.intervals.items()}
        out = []
        for gate in self.task.gates:
            values = {gate.value: metrics[gate.name]} if gate.name in metrics else None
            why = None if values else f"no suite of this task measures {gate.name}"
            out.append(check_gate(gate, values, why, suite="task", interval=intervals.get(gate.name)))
        return out

    def artifact(self, option: Option, by_name: dict[str, Option], *, stop_at_step: int | None = None,
                 resume_from: Any | None = None) -> Any:
        """Train (or take from the cache) a candidate and everything it starts from. ``stop_at_step`` and
        ``resume_from`` train one stage of successive halving (``ftharness.training.run``); a stage that
        stops early is not the candidate's artifact, the stage that trains to the end is."""
        if option.name in self._artifacts and stop_at_step is None and resume_from is None:
            return self._artifacts[option.name]
        parent = None
        if option.entry.start_from:
            parent = self.artifact(by_name[option.entry.start_from], by_name)
        data = self.data
        if option.entry.teacher:  # distilled: it trains on its teacher's labels, not on the training labels
            data = dataclasses.replace(data, fit=self.distill(option, by_name))
        data = self.retrieval.training_data(option, data)
        data = self.replay_data(option, data)
        stage = "" if stop_at_step is None else f" (to step {stop_at_step})"
        self.backend.drop_base()  # not two copies of the weights in memory while training
        release_memory()
        with self.phases("train", option.name + stage):
            art = self.backend.train(option, data, parent, self.progress, **staged(stop_at_step, resume_from))
        release_memory()
        result = art.result.to_dict() if hasattr(art.result, "to_dict") else dict(art.result)
        parent = self._training.get(option.entry.start_from or "")
        earlier = self._training.get(option.name) if resume_from is not None else None
        self._training[option.name] = from_json(
            Training,
            {
                **result,
                "cached": bool(getattr(art, "cached", False)),
                "artifact": str(art.path),
                # a continued stage adds to the stages before it (which hold the parent's time already)
                "total_wall_s": float(result["wall_s"]) + (
                    earlier.total_wall_s if earlier is not None else (parent.total_wall_s if parent else 0.0)),
                "start_from": option.entry.start_from,
            },
        )
        self.events.append(
            ("reused training of " if getattr(art, "cached", False) else "trained ") + option.name + stage
        )
        self._artifacts[option.name] = art
        return art

    def replay_data(self, option: Option, data: LoadedData) -> LoadedData:
        """The training rows with the candidate's replay rows mixed in (``ftharness.compare.replay``)."""
        spec = getattr(option.entry, "replay", None)
        if spec is None or data.fit is None:
            return data
        n = replay.replay_count(spec.fraction, len(data.fit))
        if n == 0:
            return data
        seed = option.spec["seed"]
        if spec.source == "self":
            prompts = replay.self_prompts()
            answers = replay.self_answers_cached(
                {"model": self.backend.model_identity(), "generation": distill.generation_key(self.task, None)},
                prompts, self._base_answers)
            rows = replay.self_rows(prompts, answers, n, seed)
        else:
            rows = replay.text_rows(spec.source, self.task.replay_paths.get(option.name), n, seed)
        self.events.append(f"{option.name} trains on {len(rows)} replay rows ({spec.source}) beside "
                           f"{len(data.fit)} task rows")
        return dataclasses.replace(data, fit=replay.with_replay(data.fit, rows))

    def _base_answers(self, prompts: list[str]) -> list[str]:
        b = self.backend
        with self.serving(None) as served, self.phases("replay: generate", "base model"):
            self._status(f"the base model answers {len(prompts)} general prompts for self-rehearsal")
            outs = served.generate([[{"role": "user", "content": p}] for p in prompts], b.settings(None))
        return [_generated(g)["output"] for g in outs]

    # distillation (ftharness.compare.distill) ----------------------------------------------------
    def distill(self, option: Option, by_name: dict[str, Option]) -> Any:
        """A distilled candidate's training rows: its teacher's labels of its inputs, from the label cache
        or generated now, those that fail the task's schema dropped. Records what it did and cost."""
        c = option.entry
        teacher = by_name[c.teacher]
        inputs, excluded = distill.teacher_inputs(self.data, self.task.unlabeled_paths.get(option.name))
        if not inputs.examples:
            raise BadInput("no input left to label: every one also occurs in the eval set or the validation split",
                           file=self.task.file, field=f"candidates.{option.name}.unlabeled")
        constrained = teacher.entry.constrained
        key = distill.labels_key(self.teacher_identity(teacher, by_name), inputs.examples,
                                 distill.generation_key(self.task, constrained))
        labels = distill.read_labels(key, len(inputs.examples))
        cached = labels is not None
        if labels is None:
            with self.phases("label: teacher", option.name):
                # a retrieving teacher reads the chunks each input retrieves, as it does when evaluated
                conversations = self.backend.teacher_messages(teacher, self.retrieval.prompt_data(teacher, self.data),
                                                              self.retrieval.view(teacher, inputs.examples)[0])
                self._status(f"teacher {teacher.name} labelling {len(conversations)} inputs for {option.name}")
                t0 = time.perf_counter()
                outs = self.teacher_generate(teacher, by_name, conversations)
                wall = time.perf_counter() - t0
            release_memory()
            labels = distill.write_labels(key, teacher.name, [_generated(g) for g in outs], wall)
        self.events.append(f"{'reused' if cached else 'made'} teacher labels of {teacher.name} for {option.name}")
        train, dropped, errors = distill.keep_valid(inputs, labels["rows"], self.task.schema)
        # what the artifact's record and model card name as its training data: the labels, not the inputs' file
        labels_file = distill.labels_path(key)
        train = dataclasses.replace(train, file=str(labels_file), sha256=sha256_file(labels_file))
        rows = labels["rows"]
        self._distillation[option.name] = Distillation(
            teacher=teacher.name,
            teacher_kind=distill.teacher_kind(teacher.entry),
            inputs=str(self.task.unlabeled_paths.get(option.name) or "train"),
            excluded=excluded,
            labelled=len(rows),
            kept=len(train.examples),
            dropped=dropped,
            drop_reasons=errors,
            cached=cached,
            key=key,
            wall_s=float(labels["wall_s"]),
            prompt_tokens=sum(int(r["prompt_tokens"]) for r in rows),
            new_tokens=sum(int(r["new_tokens"]) for r in rows),
            **self._labelling_price(teacher, rows),
        )
        if not train.examples:
            raise BadInput(f"teacher {teacher.name} wrote no label valid under the task's schema for the "
                           f"{len(rows)} inputs; choose a stronger teacher or constrain it (constrained: json-schema)",
                           file=self.task.file, field=f"candidates.{option.name}.teacher")
        return train

    def teacher_identity(self, teacher: Option, by_name: dict[str, Option]) -> dict[str, Any]:
        """What a teacher's labels depend on besides the inputs and generation settings: a candidate's
        artifact key (its base model, data, settings) and prompt; a baseline's spec (an endpoint's server and
        model), the local base model's hash, the instruction and the pool its shots are drawn from (and kept
        apart from)."""
        if teacher.kind == "candidate":
            return {"candidate": self.artifact(teacher, by_name).key, "spec": teacher.spec,
                    "instruction": self.task.instruction,
                    **({"knowledge": self.data.hashes.get("knowledge")} if teacher.entry.retrieval else {})}
        shots = None if teacher.entry.prompt_kind == "zero-shot" else [self.data.hashes["train"],
                                                                       self.data.hashes["eval"]]
        identity = {"baseline": teacher.spec, "instruction": self.task.instruction, "shots": shots}
        if teacher.entry.retrieval is not None:  # its prompts hold chunks of the knowledge base
            identity["knowledge"] = self.data.hashes.get("knowledge")
        if teacher.entry.kind != "endpoint":  # the base model's weights answer it, on whatever engine
            identity["base_model"] = self.backend.model_identity()
        return identity

    def teacher_generate(self, teacher: Option, by_name: dict[str, Option],
                         conversations: list[list[dict[str, str]]]) -> list[Any]:
        """The teacher's answers, generated as it is evaluated, by its engine (a candidate's artifact, a
        baseline's base model or endpoint)."""
        art = self.artifact(teacher, by_name) if teacher.kind == "candidate" else None
        with self.serving(teacher, art) as served:
            return served.generate(conversations, self.backend.settings(teacher.entry.constrained))

    def usage(self, option: Option, rows: list[dict[str, Any]]) -> EndpointUsage | None:
        """What the rows cost at the option's server's stated token prices (an engine with ``usage``: a
        hosted endpoint), else None."""
        from ftharness.plugins import get_plugins

        choice = self.task.engines.get(option.name) or EngineChoice(DEFAULT_ENGINE)
        price = getattr(get_plugins().engine(choice.name), "usage", None)
        return price(choice.settings, rows) if callable(price) else None

    def _labelling_price(self, teacher: Option, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """``usd`` and ``price_basis`` of a Distillation record: the teacher's tokens at its server's stated
        prices; a teacher without token prices costs its time."""
        usage = self.usage(teacher, rows)
        if usage is None:
            return {"usd": None, "price_basis": "a local teacher has no token price: its cost is its time (wall_s)"}
        return {"usd": usage.usd, "price_basis": f"{usage.model} at ${usage.price_per_million_input:g} per million "
                f"input and ${usage.price_per_million_output:g} per million output tokens (stated in the task)"}

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
                    merged = attempt(lambda: served.merged_latency(conversations[:n], settings), MERGED_LATENCY,
                                     unavailable)
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
            served=engine.served if option.kind == "candidate" else None,
        )

    def _score(self, option: Option, suites: list[Any], samples: list[Any], served: Any, gen_wall: float,
               retrieves: bool, unavailable: dict[str, str]) -> dict[str, SuiteResult]:
        """Each suite's result for the option; a suite it cannot run is filed under ``unavailable`` with why
        (it retrieves nothing; its engine has no weights here). A baseline's suites that read weights read
        the base model's, measured once and shared."""
        b = self.backend
        out: dict[str, SuiteResult] = {}
        for suite in suites:
            name = suite.name
            if not retrieves and b.retrieval_only(suite):
                unavailable[f"suite {name}"] = RETRIEVES_NOTHING
                continue
            shared = option.kind == "baseline" and b.model_only(suite)
            if shared and name in self._shared_suites:
                out[name] = dataclasses.replace(self._shared_suites[name], option=option.name,
                                                shared_with_base_model=True)
                continue
            weights = served.weights if b.reads_model(suite) else None
            if weights is None and b.model_only(suite):
                unavailable[f"suite {name}"] = served.weights_reason or "its engine has no weights to read here"
                continue
            self._status(f"scoring {option.name} with suite {name}")
            faults.reached("score")  # test hook (ftharness.faults)
            with self.phases(f"score: {name}", option.name):
                res = b.run_suite(suite, samples, weights, option.name, gen_wall)
            if shared:
                self._shared_suites[name] = res
            out[name] = res
        return out

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
                        **_generated(g),
                        **(retrieved[i] if retrieved is not None else {}),
                        "batch_wall_s": took,
                        "batch_n": len(batch),
                    }
                    done[i] = row
                    rows.append(row)
                append_jsonl(path, rows)
                step.advance(len(batch))
        return [done[i] for i in range(len(prompts))], wall

    def _record(
        self,
        option: Option,
        suites: dict[str, SuiteResult],
        samples: list[Any],
        gens: list[dict],
        gen_wall: float,
        slice_fields: list[str],
        **candidate: Any,
    ) -> OptionRecord:
        """The option's record; ``candidate`` holds the fields only a candidate fills (training, plan, ...)."""
        metrics: dict[str, float | None] = {}
        per_sample: dict[str, list[float | None]] = {}
        gates = []
        for sname, res in suites.items():
            m, ps = _metrics_of(res, len(gens))
            for k, v in m.items():
                metrics.setdefault(k, v)
            for k, v in ps.items():
                per_sample.setdefault(k, v)
            gates.extend(dataclasses.replace(g, suite=sname) for g in res.gates)
        gates.extend(self.task_gates(metrics, list(suites.values())))
        slices = compute_slices(samples, per_sample, slice_fields, file=self.task.file)
        lat = [g["latency_s"] for g in gens]
        new = sum(g["new_tokens"] for g in gens)
        cost = Cost(
            prompt_tokens_mean=statistics.fmean(g["prompt_tokens"] for g in gens) if gens else 0.0,
            new_tokens_mean=statistics.fmean(g["new_tokens"] for g in gens) if gens else 0.0,
            latency_s_mean=statistics.fmean(lat) if lat else None,
            latency_s_p50=statistics.median(lat) if lat else None,
            generation_wall_s=gen_wall,
            tokens_per_s=new / gen_wall if gen_wall > 0 else None,
            hit_max_new_tokens=sum(1 for g in gens if g.get("finish_reason") == "length"),
        )
        return OptionRecord(
            name=option.name,
            kind=option.kind,
            spec=option.spec,
            metrics=metrics,
            per_sample=per_sample,
            gates=gates,
            slices=slices,
            suites=suites,
            cost=cost,
            samples_file=f"samples/{option.name}.jsonl",
            endpoint=self.usage(option, gens),
            **candidate,
        )


def attempt(fn: Callable[[], Any], what: str, unavailable: dict[str, str]) -> Any:
    """``fn()``, or None with the reason filed under ``unavailable[what]``: an estimate or a provenance
    record that cannot be made is reported, never fatal."""
    try:
        return fn()
    except Exception as e:
        unavailable[what] = f"{type(e).__name__}: {e}"
        ui.warn(f"{what} unavailable: {unavailable[what]}")
        return None


def _generated(g: Any) -> dict[str, Any]:
    """One generation (``ftharness.models.generation.Generation``) as the plain fields a row keeps; an
    endpoint's also whether it came from the cache, how many HTTP attempts it took and whether the server
    reported its token usage."""
    row = {
        "output": g.text,
        "prompt_tokens": int(g.prompt_tokens),
        "new_tokens": int(g.new_tokens),
        "latency_s": float(g.latency_s),
        "finish_reason": g.finish_reason,
    }
    if isinstance(g, EndpointGeneration):
        row.update(cached=g.cached, attempts=g.attempts, usage=g.usage, cut=g.cut)
    return row


def _cached_wall(outs: list[Any], concurrency: int) -> float:
    """Endpoint rows answered from the cache take no time now: their latency as first measured, spread over
    the engine's ``concurrency``, stands in for the wall time they took then (0 for anything else)."""
    cached = [g.latency_s for g in outs if isinstance(g, EndpointGeneration) and g.cached]
    if not cached:
        return 0.0
    return sum(cached) / min(max(1, concurrency), len(outs))


def _metrics_of(
    result: SuiteResult, n: int
) -> tuple[dict[str, float | None], dict[str, list[float | None]]]:
    """``metric.value -> number`` and the per-sample scores (those covering all ``n`` samples) of one
    suite result."""
    metrics = {f"{mname}.{vname}": v for mname, m in result.metrics.items() for vname, v in m.values.items()}
    per_sample = {name: scores for name, scores in result.per_sample().items() if len(scores) == n}
    return metrics, per_sample

