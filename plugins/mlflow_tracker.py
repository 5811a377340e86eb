"""The ``mlflow`` tracker: each option of a finished run logged as an MLflow run.

``trackers: {mlflow: {tracking_uri: ..., experiment: ...}}`` in a task file. Each option becomes one MLflow
run named ``RUN_ID/OPTION`` in the experiment (default: the task's name), with

- parameters: the option's spec as the task file wrote it (nested keys dotted: ``hyperparameters.r``), and
  its kind and answer;
- metrics: every value the option measured (``task.field_accuracy``...), its prompt tokens and latency;
- tags: each gate's verdict (``gate.SUITE.METRIC.VALUE``: ``passed: >= 0.98``), the run's decision
  (``ftharness.decision``, ``ftharness.recommended``) and whether this option is the recommended one, the
  ftharness run id and folder;
- artifacts: the run's ``report.html`` and ``results.json``.

Where: ``tracking_uri`` as MLflow takes it (a tracking server ``http://...``, ``sqlite:///mlflow.db``,
``databricks``...); null logs to a local file store beside the run folders, ``REPORTS/mlruns``
(MLflow's file backend, which MLflow keeps in maintenance mode and asks to be allowed with
``MLFLOW_ALLOW_FILE_STORE``: this tracker allows it for a file store it was told to use, and only then).
Needs ``mlflow-skinny`` (``pip install -e '.[mlflow]'``): the client alone, no server.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftharness.hookspecs import hookimpl
from ftharness.typed import from_mapping, spec

BATCH = 100  # items per log_batch request (MLflow's limit for params and tags: mlflow.utils.validation)
MAX_PARAM_CHARS = 6000  # MLflow's limit on a parameter's value (mlflow.utils.validation.MAX_PARAM_VAL_LENGTH)


@dataclass
class MlflowSettings:
    tracking_uri: str | None = spec(None, help="an MLflow tracking URI (server, sqlite:///..., databricks); null: "
                                               "a local file store, REPORTS/mlruns")
    experiment: str | None = spec(None, help="the MLflow experiment (null: the task's name)")


def flat(value: Any, prefix: str = "") -> dict[str, str]:
    """A JSON-like value as dotted keys and string values (what MLflow parameters are)."""
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for k, v in value.items():
            out.update(flat(v, f"{prefix}{k}."))
        return out
    text = value if isinstance(value, str) else json.dumps(value)
    return {prefix.rstrip("."): text[:MAX_PARAM_CHARS]}


class MlflowTracker:
    name = "mlflow"

    def unavailable_reason(self) -> str | None:
        if importlib.util.find_spec("mlflow") is None:
            return "needs mlflow (the client, mlflow-skinny): pip install -e '.[mlflow]'"
        return None

    def check_settings(self, settings: dict[str, Any], *, source: Any, field: str) -> MlflowSettings:
        return from_mapping(MlflowSettings, settings, source=source, prefix=f"{field}.")

    def log_run(self, results: dict[str, Any], folder: Path, settings: MlflowSettings) -> str:
        uri = settings.tracking_uri or (folder.parent / "mlruns").resolve().as_uri()
        if uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        name = settings.experiment or results["task"]["name"]
        experiment = client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else client.create_experiment(name)
        decision = results["decision"]
        ids = []
        for option in results["options"]:
            params = flat(option["spec"])
            params.update(kind=option["kind"], answer=option["answer"])
            metrics = {k: v for k, v in option["metrics"].items() if isinstance(v, int | float)}
            cost = option.get("cost") or {}
            metrics.update({f"cost.{k}": v for k, v in cost.items() if isinstance(v, int | float)})
            tags = {f"gate.{g.get('suite') or 'task'}.{g['name']}": f"{g['verdict']}: {g['op']} {g['threshold']:g}"
                    for g in option["gates"]}
            tags.update({"ftharness.run_id": results["run_id"], "ftharness.folder": str(folder),
                         "ftharness.decision": decision["verdict"], "ftharness.recommended": str(decision["recommended"]),
                         "ftharness.is_recommended": str(option["name"] == decision["recommended"]).lower(),
                         "ftharness.passed": str(option["passed"]).lower()})
            run = client.create_run(experiment_id, run_name=f"{results['run_id']}/{option['name']}")
            now = int(time.time() * 1000)
            batches = ([Metric(k, float(v), now, 0) for k, v in metrics.items()],
                       [Param(k, v) for k, v in params.items()], [RunTag(k, str(v)) for k, v in tags.items()])
            for what, items in zip(("metrics", "params", "tags"), batches, strict=True):
                for start in range(0, len(items), BATCH):  # MLflow takes at most 100 params or tags a request
                    client.log_batch(run.info.run_id, **{what: items[start:start + BATCH]})
            for artifact in ("report.html", "results.json"):
                if (folder / artifact).is_file():
                    client.log_artifact(run.info.run_id, str(folder / artifact))
            client.set_terminated(run.info.run_id)
            ids.append(run.info.run_id)
        return f"{len(ids)} MLflow run(s) in experiment {name!r} at {uri}"


@hookimpl
def register_trackers(register: Any) -> None:
    register(MlflowTracker())
