"""An option's scores: each suite run on its samples (with the weights its engine holds, where a suite reads
them), the task's own gates, and the option's record."""

from __future__ import annotations

import dataclasses
import statistics
from typing import Any

from ftharness import faults
from ftharness.compare.backend import Option
from ftharness.report.records import Cost, OptionRecord
from ftharness.suites.gates import GateOutcome
from ftharness.suites.runner import SuiteResult
from ftharness.suites.slices import compute_slices

RETRIEVES_NOTHING = "reads what an option retrieved, and this option retrieves nothing (no retrieval: block)"


class Scoring:
    """The scoring half of :class:`~ftharness.compare.experiment.Experiment` (a mixin: it reads the
    experiment's task, backend, phases and shared suite results, and calls its ``usage``)."""

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
            m, ps = metrics_of(res, len(gens))
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


def metrics_of(
    result: SuiteResult, n: int
) -> tuple[dict[str, float | None], dict[str, list[float | None]]]:
    """``metric.value -> number`` and the per-sample scores (those covering all ``n`` samples) of one
    suite result."""
    metrics = {f"{mname}.{vname}": v for mname, m in result.metrics.items() for vname, v in m.values.items()}
    per_sample = {name: scores for name, scores in result.per_sample().items() if len(scores) == n}
    return metrics, per_sample

