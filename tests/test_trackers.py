"""Trackers as plugins (``ftharness.hookspecs.Tracker``): a finished run logged to MLflow, read back with
MLflow's own client; a tracker that is unknown, or cannot log from here, is found before any work."""

from __future__ import annotations

import json

import pytest
from test_compare import fake, write_task  # noqa: F401 - fake: the fixture

from ftharness.cli import main


@pytest.mark.usefixtures("fake")
def test_each_option_of_a_run_is_an_mlflow_run_read_back_by_mlflow_s_client(tmp_path, capsys, monkeypatch):
    pytest.importorskip("mlflow", reason="the mlflow tracker needs mlflow-skinny (pip install -e '.[mlflow]')")
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    path = write_task(tmp_path, extra="trackers: {mlflow: {experiment: tiny-runs}}")
    assert main(["compare", str(path), "--out", str(tmp_path / "r"), "--run-id", "a", "--no-progress", "--json"]) in (0, 1)
    captured = capsys.readouterr()
    results = json.loads(captured.out)
    assert "could not log" not in captured.err, captured.err
    client = MlflowClient(tracking_uri=(tmp_path / "r" / "mlruns").resolve().as_uri())
    experiment = client.get_experiment_by_name("tiny-runs")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {f"a/{o['name']}" for o in results["options"]}
    for option in results["options"]:
        run = runs[f"a/{option['name']}"]
        measured = {k: v for k, v in option["metrics"].items() if isinstance(v, int | float)}
        assert {k: run.data.metrics[k] for k in measured} == pytest.approx(measured)
        assert run.data.params["kind"] == option["kind"]
        assert run.data.tags["ftharness.decision"] == results["decision"]["verdict"]
        gates = {k[len("gate."):]: v for k, v in run.data.tags.items() if k.startswith("gate.")}
        assert gates == {f"{g['suite'] or 'task'}.{g['name']}": f"{g['verdict']}: {g['op']} {g['threshold']:g}"
                         for g in option["gates"]}
        assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"report.html", "results.json"}
    assert runs["a/lora"].data.params["hyperparameters.epochs"] == "1"


@pytest.mark.parametrize("trackers, code, expected", [
    ("trackers: {nosuch: {}}", 2, "trackers.nosuch: unknown tracker 'nosuch'; installed: mlflow"),
    ("trackers: {mlflow: {where: x}}", 2, "trackers.mlflow.where"),
])
def test_a_bad_tracker_is_found_before_any_work(trackers, code, expected, tmp_path, monkeypatch, capsys):
    from test_compare import builtin_plugins

    builtin_plugins(monkeypatch)
    path = write_task(tmp_path, extra=trackers)
    assert main(["compare", str(path), "--out", str(tmp_path / "r"), "--no-progress"]) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "r").exists()
