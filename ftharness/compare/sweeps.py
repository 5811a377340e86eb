"""Sweeps chosen without the eval set: every point trained and served on the validation rows, scored by what
a sweep may read (``ftharness.compare.selection.selection_suite``), one finalist kept per sweep; with
``sweep_strategy: halving``, successive halving over the points' training budgets."""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

from ftharness.compare import replay
from ftharness.compare.backend import Option, generated_row
from ftharness.compare.phases import release_memory
from ftharness.compare.scoring import metrics_of
from ftharness.compare.selection import halving_budgets, rank, selection_suite, survivors
from ftharness.compare.task import HalvingSpec
from ftharness.jsonrecord import from_json, to_json
from ftharness.report.records import PointOutput, Rung, Selection, SweepPoint
from ftharness.suites.gates import GateOutcome
from ftharness.suites.runner import SuiteResult


class Sweeps:
    """The sweep half of :class:`~ftharness.compare.experiment.Experiment` (a mixin: it reads the experiment's
    task, data, backend, run folder, phases and retrieval, and calls its ``artifact``, ``serving``,
    ``task_gates`` and ``_samples``)."""

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
            samples = self._samples(examples, [generated_row(g) for g in outs],
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
                metrics.update(metrics_of(res, len(samples))[0])
                results.append(res)
                gates.extend(dataclasses.replace(g, suite=suite.name) for g in res.gates if g.value is not None)
        gates.extend(g for g in self.task_gates(metrics, results) if g.value is not None)
        return metrics, gates
