"""pytest plugin: every gate of a suite file is a test item.

    pytest suites/ --ftharness-model M --ftharness-data D [--ftharness-adapter A]
    pytest suites/ --ftharness-predictions P.jsonl

Registered through the ``pytest11`` entry point, so it loads in every pytest run of an environment with
ftharness installed. It therefore imports nothing heavy here and collects nothing unless
``--ftharness-model`` or ``--ftharness-predictions`` is given: an ordinary ``pytest`` run is unaffected.
Each suite is evaluated once, when its first gate item runs; its items then report the measured value
and threshold, and ``--junitxml`` records them like any test.

A gate the run gives nothing to measure is skipped with the reason, not failed: every gate of a suite
that needs the model (forgetting, redteam) when only predictions are given, and a gate whose metric says
why it could not measure the value (``details["missing"]``: no reference answers, no latencies, no base
model). A value that was measured and misses its threshold, or is not a finite number, fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

SUFFIXES = (".yaml", ".yml")
_MODELS_KEY = pytest.StashKey[dict]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ftharness", "ftharness evaluation suites as tests")
    from ftharness.suites.options import OPTIONS

    for option in OPTIONS:
        group.addoption(f"--ftharness-{option.name}", **option.kwargs())
    group.addoption("--ftharness-out", help="write each suite's results.json under this folder")


def _active(config: pytest.Config) -> bool:
    return bool(config.getoption("ftharness_model") or config.getoption("ftharness_predictions"))


def pytest_configure(config: pytest.Config) -> None:
    if not _active(config):
        return
    if config.getoption("ftharness_model") and config.getoption("ftharness_predictions"):
        raise pytest.UsageError("give --ftharness-model or --ftharness-predictions, not both")
    if config.getoption("ftharness_model") and not config.getoption("ftharness_data"):
        raise pytest.UsageError("--ftharness-model needs --ftharness-data (the evaluation set)")
    config.stash[_MODELS_KEY] = {}


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix in SUFFIXES and _active(parent.config) and _is_suite(file_path):
        return SuiteFile.from_parent(parent, path=file_path)
    return None


def _is_suite(path: Path) -> bool:
    """A YAML file with top-level ``metrics`` (a cheap look before the full, strict load)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except Exception:
        return False
    return isinstance(data, dict) and "metrics" in data


class SuiteError(Exception):
    """An ftharness error while loading or evaluating a suite, reported as one line."""


class SuiteFile(pytest.File):
    def collect(self):
        from ftharness.errors import FtharnessError
        from ftharness.suites.suite import load_suite

        try:
            self.suite = load_suite(self.path)
        except FtharnessError as e:
            raise self.CollectError(str(e)) from None
        self._evaluation: Any = None
        self._error: str | None = None
        if not self.suite.gates:
            yield GateItem.from_parent(self, name="(values only)", gate=None)
        for gate in self.suite.gates:
            yield GateItem.from_parent(self, name=gate.name, gate=gate)

    def evaluation(self) -> Any:
        """Run the suite once for all of its gate items."""
        from ftharness.suites.evaluate import model_only

        if self._error:
            raise SuiteError(self._error)
        if self.config.getoption("ftharness_predictions") and model_only(self.suite):
            pytest.skip(
                f"suite {self.suite.name!r} measures the model ({', '.join(self.suite.metrics)}), and this run "
                "has only predictions; run it with --ftharness-model"
            )
        if self._evaluation is None:
            from ftharness.errors import FtharnessError

            try:
                self._evaluation = self._evaluate()
            except FtharnessError as e:
                self._error = f"{type(e).__name__}: {e}"
                raise SuiteError(self._error) from None
        return self._evaluation

    def _evaluate(self) -> Any:
        from ftharness.suites.evaluate import (
            evaluate_model,
            evaluate_predictions,
            suite_needs_model,
            write_results,
        )
        from ftharness.typed import load_json_schema

        opt = self.config.getoption
        schema_file = opt("ftharness_schema")
        schema = load_json_schema(schema_file, field="--ftharness-schema") if schema_file else None
        if opt("ftharness_predictions"):
            ev = evaluate_predictions(self.suite, opt("ftharness_predictions"), schema=schema,
                                      limit=opt("ftharness_limit"), progress=False)
        else:
            from ftharness.models.generation import GenerationSettings

            _, need_base = suite_needs_model(self.suite)
            lm, base = self._models(need_base)
            ev = evaluate_model(self.suite, lm, opt("ftharness_data"), base_lm=base,
                                instruction=opt("ftharness_instruction"), schema=schema,
                                limit=opt("ftharness_limit"),
                                generation=GenerationSettings(max_new_tokens=opt("ftharness_max_new_tokens")),
                                progress=False)
        if opt("ftharness_out"):
            write_results(ev, Path(opt("ftharness_out")) / self.suite.name)
        return ev

    def _models(self, need_base: bool) -> tuple[Any, Any]:
        """Models load once per session, shared by every suite."""
        from ftharness.suites.evaluate import load_models

        opt = self.config.getoption
        cache = self.config.stash[_MODELS_KEY]
        key = (opt("ftharness_model"), opt("ftharness_adapter"), opt("ftharness_base_model"), need_base)
        if key not in cache:
            reuse = cache.get(key[:3] + (True,))
            cache[key] = reuse or load_models(*key[:3], need_base=need_base)
        return cache[key]


class GateFailure(Exception):
    pass


def _nothing_to_measure(result: Any, gate: Any) -> bool:
    """The gate's metric was skipped, or said why it could not measure the gated value (the metric
    protocol's ``details["missing"]``): the run gave it nothing to measure."""
    if gate.metric in result.skipped:
        return True
    metric = result.metrics.get(gate.metric)
    details = metric.details if metric is not None else {}
    return isinstance(details, dict) and gate.value in details.get("missing", {})


class GateItem(pytest.Item):
    def __init__(self, *, gate: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate = gate

    def runtest(self) -> None:
        ev = self.parent.evaluation()
        self.user_properties.append(("suite", ev.result.suite))
        if self.gate is None:
            return
        outcome = next(g for g in ev.result.gates if g.name == self.gate.name)
        self.user_properties.append(("measured", "" if outcome.value is None else repr(outcome.value)))
        self.user_properties.append(("threshold", f"{outcome.op} {outcome.threshold:g}"))
        if outcome.value is None and _nothing_to_measure(ev.result, self.gate):
            pytest.skip(outcome.message)
        if not outcome.passed:
            raise GateFailure(outcome.message)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, GateFailure | SuiteError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        text = self.gate.text if self.gate else "values only"
        return self.path, None, f"{self.parent.suite.name}: {text}"
