"""Engines as plugins (``ftharness.hookspecs.Engine``): the registry, the ``engine:`` field, a third-party
engine through ``compare``, the server engine's launch commands, and a trained candidate served by a
``transformers serve`` the harness starts, answering as the local engine does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_engine import RuleEngine, register_engine
from ftharness_plugins.server_engine import ServerSettings, launch_command
from helpers import example_rows
from test_compare import EXAMPLE, FakeBackend, builtin_plugins, fake, write_task  # noqa: F401 - fake: the fixture

from ftharness.cli import main
from ftharness.hookspecs import Engine, hookimpl
from ftharness.plugins import Plugins

# --- the registry and the field ----------------------------------------------------------------------


def test_the_built_in_engines_are_registered_and_follow_the_protocol():
    plugins = Plugins(entry_points=False)
    engines = plugins.get("engines")
    assert {"local", "openai", "server"} <= set(engines)
    assert all(isinstance(e, Engine) for e in engines.values())


def test_an_engine_that_breaks_the_protocol_is_refused_and_a_duplicate_name_too():
    plugins = Plugins(entry_points=False)

    class NoStart:
        name = "nostart"

        def unavailable_reason(self):
            return None

    class Plugin:
        @hookimpl
        def register_engines(self, register):
            register(NoStart())
            register(RuleEngine("local", lambda lm, p, c: []))

    info = plugins.add_plugin(Plugin(), name="bad-engines")
    assert "nostart" not in plugins.get("engines") and "start" in " ".join(info.errors)
    assert any("refused: the name is taken" in e for e in info.errors)


@pytest.mark.parametrize("engine, field, expected", [
    ("engine: warp", "engine", "unknown engine 'warp'; installed: local, openai, server"),
    ("engine: {launcher: vllm}", "engine", "needs `kind:`"),
    ("engine: {kind: server, launcher: tgi}", "engine.launcher", "tgi"),
    ("engine: {kind: server, tensor_parallel_size: 2}", "engine", "set launcher: vllm"),
    ("engine: {kind: local, port: 1}", "engine", "takes no settings"),
])
def test_a_bad_engine_is_one_line_and_exit_2_before_any_work(engine, field, expected, tmp_path, monkeypatch,
                                                              capsys):
    builtin_plugins(monkeypatch)
    path = write_task(tmp_path, extra=engine)
    code = main(["compare", str(path), "--out", str(tmp_path / "reports"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f": {field}:" in err and expected in err, err
    assert not (tmp_path / "reports").exists()


def test_a_constrained_option_on_a_server_that_cannot_enforce_the_schema_is_refused(tmp_path, monkeypatch, capsys):
    builtin_plugins(monkeypatch)
    path = write_task(tmp_path)
    path.write_text(path.read_text().replace("  - {name: few-shot-2, kind: few-shot, k: 2}",
                                             "  - {name: c, kind: zero-shot, constrained: json-schema, "
                                             "engine: {kind: server}}"))
    code = main(["compare", str(path), "--out", str(tmp_path / "reports"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "baselines.c.engine" in err and "cannot enforce the task's schema" in err, err


# --- a third-party engine ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("fake")
def test_a_third_party_engine_is_one_plugin_and_compare_runs_with_it(tmp_path, capsys):
    """An engine registered under a new name serves every option the task points at it; the records say so."""
    served: list[str] = []

    def rule(lm, prompts, constrained):
        served.append(lm.name)
        return FakeBackend.live.generate(lm, prompts, constrained)

    register_engine(RuleEngine("rules", rule), override=False)
    path = write_task(tmp_path, extra="engine: rules")
    assert main(["plugins"]) == 0 and "rules" in capsys.readouterr().out
    code = main(["compare", str(path), "--out", str(tmp_path / "r"), "--run-id", "x", "--no-progress"])
    assert code in (0, 1)
    results = json.loads((tmp_path / "r" / "x" / "results.json").read_text())
    assert {o["name"]: o["engine"]["name"] for o in results["options"]} == {
        "zero-shot": "rules", "few-shot-2": "rules", "lora": "rules"}
    assert {"base", "trained"} <= set(served)
    lora = next(o for o in results["options"] if o["name"] == "lora")
    assert lora["engine"]["served"] == "as trained" and lora["spec"]["engine"] == "rules"
    assert "engine: rules, as trained" in (tmp_path / "r" / "x" / "report.html").read_text()


@pytest.mark.usefixtures("fake")
def test_an_option_s_own_engine_wins_over_the_task_s(tmp_path):
    register_engine(RuleEngine("rules", lambda lm, p, c: FakeBackend.live.generate(lm, p, c)), override=False)
    path = write_task(tmp_path, extra="engine: rules")
    path.write_text(path.read_text().replace("{name: zero-shot, kind: zero-shot}",
                                             "{name: zero-shot, kind: zero-shot, engine: local}"))
    assert main(["compare", str(path), "--out", str(tmp_path / "r"), "--run-id", "x", "--no-progress"]) in (0, 1)
    results = json.loads((tmp_path / "r" / "x" / "results.json").read_text())
    engines = {o["name"]: o["engine"]["name"] for o in results["options"]}
    assert engines["zero-shot"] == "local" and engines["few-shot-2"] == "rules"


# --- the server engine's launch commands -------------------------------------------------------------------


def test_vllm_launch_passes_parallelism_through_and_loads_an_adapter(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 32}))
    settings = ServerSettings(launcher="vllm", tensor_parallel_size=2, data_parallel_size=4, adapter=True)
    cmd, cwd, model = launch_command(settings, folder=tmp_path / "base", port=8123, name="lora", adapter=adapter)
    assert cmd[:3] == ["vllm", "serve", str(tmp_path / "base")]
    flags = dict(zip(cmd[3::2], cmd[4::2], strict=False))
    assert flags["--tensor-parallel-size"] == "2" and flags["--data-parallel-size"] == "4"
    assert flags["--port"] == "8123" and flags["--host"] == "127.0.0.1"
    assert "--enable-lora" in cmd and f"lora-adapter={adapter}" in cmd and model == "lora-adapter"
    assert cmd[cmd.index("--max-lora-rank") + 1] == "32"


def test_transformers_launch_serves_the_folder_by_its_name(tmp_path):
    cmd, cwd, model = launch_command(ServerSettings(), folder=tmp_path / "served-merged", port=9000, name="x")
    assert "serve" in cmd and "served-merged" in cmd and cwd == tmp_path and model == "served-merged"


def test_the_server_engine_asks_vllm_to_enforce_the_schema_in_the_request():
    from ftharness.models.endpoint import EndpointConfig, request_body
    from ftharness.models.generation import GenerationSettings

    config = EndpointConfig(base_url="http://127.0.0.1:1/v1", model="m", price_per_million_input=0,
                            price_per_million_output=0)
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    settings = GenerationSettings(max_new_tokens=8, json_schema=schema)
    body = request_body(config, [{"role": "user", "content": "x"}], settings, schema_on_server=True)
    assert body["response_format"]["json_schema"]["schema"] == schema
    assert "response_format" not in request_body(config, [{"role": "user", "content": "x"}], settings)


# --- a trained candidate served by transformers serve ----------------------------------------------------------


@pytest.mark.usefixtures("loopback_without_proxy")
def test_a_trained_candidate_served_by_transformers_serve_answers_as_the_local_engine(
        tmp_path, varied_tiny_model_dir, isolated_cache, one_torch_thread, monkeypatch):
    """The same LoRA (one training, shared by its content key) evaluated twice: merged in this process, and
    merged, saved and served by a `transformers serve` the harness starts and stops. Greedy outputs agree
    row for row; the record names each engine; no server is left running."""
    pytest.importorskip("fastapi", reason="transformers serve needs the serve extra (pip install -e '.[serve]')")
    builtin_plugins(monkeypatch)
    example_rows(tmp_path, train=10, eval=4)
    hp = "{r: 4, max_steps: 2, batch_size: 4, learning_rate: 0.05}"
    path = tmp_path / "task.yaml"
    path.write_text(f"""
name: served
base_model: {varied_tiny_model_dir}
instruction: Extract the order as JSON.
data: {{train: train.jsonl, eval: eval.jsonl}}
validation: {{fraction: 0.2, min: 2}}
generation: {{max_new_tokens: 12, batch_size: 1}}
candidates:
  - {{name: here, method: lora, hyperparameters: {hp}}}
  - {{name: there, method: lora, hyperparameters: {hp}, engine: {{kind: server, concurrency: 2}}}}
suites: [task]
decision: {{metric: task.exact_match, bootstrap_samples: 100, merged_latency_prompts: 0}}
""")
    code = main(["compare", str(path), "--out", str(tmp_path / "r"), "--run-id", "x", "--no-progress"])
    assert code in (0, 1)
    run = tmp_path / "r" / "x"
    results = json.loads((run / "results.json").read_text())
    by = {o["name"]: o for o in results["options"]}
    assert by["here"]["engine"]["name"] == "local" and by["there"]["engine"]["name"] == "server"
    assert by["there"]["engine"]["served"] == "merged" and by["there"]["engine"]["url"].startswith("http://127.0.0.1:")
    assert by["there"]["engine"]["launcher"] == "transformers serve" and "in process" in by["there"]["engine"]["weights"]
    assert by["here"]["training"]["artifact"] == by["there"]["training"]["artifact"]  # one training
    outputs = {n: [json.loads(line)["output"] for line in (run / "samples" / f"{n}.jsonl").read_text().splitlines()]
               for n in ("here", "there")}
    assert len(set(outputs["here"])) > 1  # outputs that differ by row: equality means something
    assert outputs["here"] == outputs["there"]
    log = Path(by["there"]["engine"]["log"])
    assert log.is_file()
    import psutil

    assert not [p for p in psutil.process_iter(["cmdline"]) if str(log.parent) in " ".join(p.info["cmdline"] or [])
                or "served-merged" in " ".join(p.info["cmdline"] or [])]

