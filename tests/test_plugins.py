"""The plugin registry: built-ins, third-party plugins installed by entry point, plugins registered in code;
refused duplicate names and explicit overrides; objects checked against their Protocol; hook calls through
pluggy; the trainers' method declarations as what plan, compare, train and advise go by."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import ftharness.plugins as plugins_mod
from ftharness.cli import main
from ftharness.hookspecs import Method, hookimpl
from ftharness.plugins import Plugins, get_plugins, reset_plugins

THIRD_PARTY = textwrap.dedent(
    '''
    from ftharness.hookspecs import Method, hookimpl

    CALLS = []

    class EchoTrainer:
        name = "echo"
        methods = (Method("echo-lora"),)

        def unavailable_reason(self, method=None):
            return None

        def train(self, job):
            raise NotImplementedError

    class NeedsTpu:
        name = "tpu-only"
        methods = (Method("lora"),)

        def unavailable_reason(self, method=None):
            return "needs a TPU; run it on a TPU host"

        def train(self, job):
            raise NotImplementedError

    @hookimpl
    def register_trainers(register):
        CALLS.append("register_trainers")
        register(EchoTrainer())
        register(NeedsTpu())
    '''
)


def _install_distribution(root: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """Lay out an installed distribution (a .dist-info with entry points) on a sys.path folder."""
    for name, source in modules.items():
        (root / f"{name}.py").write_text(source)
    info = root / f"{dist}-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.3\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[ftharness]\n{lines}\n")


@pytest.fixture
def third_party(tmp_path, monkeypatch):
    _install_distribution(
        tmp_path,
        "ftharness_echo",
        {"echo": "ftharness_echo_plugin", "broken": "ftharness_broken_plugin"},
        {
            "ftharness_echo_plugin": THIRD_PARTY,
            "ftharness_broken_plugin": "raise RuntimeError('this plugin is broken on purpose')\n",
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("FTHARNESS_LOAD_PLUGINS", raising=False)
    reset_plugins()
    yield tmp_path
    reset_plugins()
    sys.modules.pop("ftharness_echo_plugin", None)


def test_third_party_plugin_is_listed_and_called(third_party, capsys):
    plugins = get_plugins()
    assert "echo" in plugins.get("trainers")
    info = plugins.infos["echo"]
    assert (info.source.origin, info.source.entry_point, info.source.distribution, info.source.module) == (
        "entry point", "echo", "ftharness_echo 0.3", "ftharness_echo_plugin")
    assert plugins.entries("trainers")["echo"].source == info.source
    assert info.provides["trainers"] == ["echo", "tpu-only"]
    assert main(["plugins", "--json"]) == 0
    listed = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert listed["echo"]["unavailable"] == {"tpu-only": "needs a TPU; run it on a TPU host"}
    assert listed["echo"]["methods"]["echo"]["echo-lora"]["data"] == "supervised"
    import ftharness_echo_plugin

    assert ftharness_echo_plugin.CALLS == ["register_trainers"]


def test_broken_plugin_is_reported_not_fatal(third_party, capsys):
    assert main(["plugins", "--json"]) == 0
    listed = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert "this plugin is broken on purpose" in listed["broken"]["errors"][0]
    assert listed["echo"]["errors"] == []
    assert main(["plugins"]) == 0  # the table renders too
    out = capsys.readouterr().out
    assert "broken" in out and "echo" in out


def test_allow_list_limits_third_party_plugins(third_party, monkeypatch):
    monkeypatch.setenv("FTHARNESS_LOAD_PLUGINS", "echo")
    reset_plugins()
    names = set(get_plugins().infos)
    assert "echo" in names and "broken" not in names
    monkeypatch.setenv("FTHARNESS_LOAD_PLUGINS", "")
    reset_plugins()
    names = set(get_plugins().infos)
    assert "echo" not in names and "broken" not in names
    # built-ins load whatever the allow-list says
    assert all(get_plugins().infos[n].source.origin == "built-in" for n in names)


def test_failing_register_hook_is_reported(tmp_path, monkeypatch):
    _install_distribution(
        tmp_path,
        "ftharness_fails",
        {"fails": "ftharness_fails_plugin"},
        {
            "ftharness_fails_plugin": (
                "from ftharness.hookspecs import hookimpl\n\n"
                "@hookimpl\ndef register_metrics(register):\n    raise ValueError('no metrics today')\n"
            )
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    reset_plugins()
    try:
        info = get_plugins().infos["fails"]
        assert info.broken and "register_metrics failed" in info.errors[0] and "no metrics today" in info.errors[0]
    finally:
        reset_plugins()


def test_plugins_json_in_a_fresh_process_lists_builtins():
    """`ftharness plugins --json` prints one JSON document and nothing else on stdout."""
    env = {**os.environ, "FTHARNESS_LOAD_PLUGINS": ""}
    proc = subprocess.run(
        [sys.executable, "-m", "ftharness", "plugins", "--json"], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(proc.stdout)
    assert listed and all(p["source"]["origin"] == "built-in" and not p["errors"] for p in listed)


# --- names: duplicates refused, overrides explicit ---------------------------------------------------------

ACME_PEFT = textwrap.dedent(
    """
    from ftharness.hookspecs import Method, hookimpl

    class AcmePeft:
        name = "peft"
        methods = (Method("lora"),)

        def unavailable_reason(self, method=None):
            return None

        def train(self, job):
            raise NotImplementedError

    @hookimpl
    def register_trainers(register):
        register(AcmePeft(){override})
    """
)


def _acme(tmp_path, monkeypatch, override: str = "") -> None:
    _install_distribution(tmp_path, "ftharness_acme", {"acme": "ftharness_acme_plugin"},
                          {"ftharness_acme_plugin": ACME_PEFT.format(override=override)})
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("FTHARNESS_LOAD_PLUGINS", "acme")
    sys.modules.pop("ftharness_acme_plugin", None)
    reset_plugins()


def test_a_duplicate_name_is_refused_naming_both_sources(tmp_path, monkeypatch, capsys):
    _acme(tmp_path, monkeypatch)
    try:
        plugins = get_plugins()
        assert type(plugins.get("trainers")["peft"]).__module__ == "ftharness_plugins.peft_trainer"
        error = plugins.infos["acme"].errors[0]
        assert "trainer 'peft'" in error and "refused" in error and "override=True" in error
        assert "entry point 'acme' of ftharness_acme 0.3 (ftharness_acme_plugin)" in error
        assert "built-in (ftharness_plugins.peft_trainer)" in error
        assert plugins.infos["acme"].provides == {}
        assert main(["plugins"]) == 0
        assert "broken" in capsys.readouterr().out
    finally:
        reset_plugins()


def test_an_explicit_override_replaces_and_says_so(tmp_path, monkeypatch, capsys):
    _acme(tmp_path, monkeypatch, override=", override=True")
    try:
        plugins = get_plugins()
        entry = plugins.entries("trainers")["peft"]
        assert type(entry.obj).__module__ == "ftharness_acme_plugin" and not plugins.infos["acme"].errors
        assert entry.replaced.source.module == "ftharness_plugins.peft_trainer"
        assert main(["plugins", "--json"]) == 0
        listed = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
        assert listed["acme"]["replaced"] == {"peft": "replaces built-in (ftharness_plugins.peft_trainer)"}
        assert listed["peft_trainer"]["replaced"]["peft"].startswith("replaced by entry point 'acme'")
    finally:
        reset_plugins()


# --- plugins registered in code, checked against their Protocol, called through pluggy ---------------------


class EchoTrainer:
    name = "echo"
    methods = (Method("echo-lora", "echo LoRA"), Method("echo-pref", data="preference"))

    def unavailable_reason(self, method=None):
        return None

    def train(self, job):
        raise NotImplementedError


class Provides:
    """A plugin object registered in code: registers the trainers it is given."""

    def __init__(self, *trainers, override=False):
        self.trainers, self.override = trainers, override

    @hookimpl
    def register_trainers(self, register):
        for t in self.trainers:
            register(t, override=self.override)


@pytest.fixture
def registry(monkeypatch):
    """The built-in plugins, no entry points, as the process-wide registry for the test."""
    plugins = Plugins(entry_points=False)
    monkeypatch.setattr(plugins_mod, "get_plugins", lambda: plugins)
    return plugins


def test_a_plugin_registered_in_code_records_where_it_came_from(registry):
    info = registry.add_plugin(Provides(EchoTrainer()), name="echo-plugin")
    assert info.provides == {"trainers": ["echo"]} and not info.errors
    source = registry.entries("trainers")["echo"].source
    assert source.origin == "code" and source.module == __name__
    again = registry.add_plugin(Provides(EchoTrainer()), name="echo-plugin")
    assert again.broken and "plugin name 'echo-plugin' is taken" in again.errors[0]


class NoTrain:
    name = "no-train"
    methods = (Method("lora"),)

    def unavailable_reason(self, method=None):
        return None


class StringMethods(EchoTrainer):
    name = "string-methods"
    methods = ("lora", "qlora")


def test_an_object_that_does_not_follow_its_protocol_is_listed_broken_and_not_used(registry, capsys):
    info = registry.add_plugin(Provides(NoTrain(), StringMethods(), EchoTrainer()), name="mixed")
    assert set(registry.get("trainers")) >= {"echo"}
    assert not {"no-train", "string-methods"} & set(registry.get("trainers"))
    assert info.broken and info.provides == {"trainers": ["echo"]}
    assert "trainer 'no-train' not registered" in info.errors[0]
    assert "ftharness.hookspecs.Trainer: missing train" in info.errors[0]
    assert "trainer 'string-methods' not registered" in info.errors[1] and "Method declarations" in info.errors[1]
    assert main(["plugins", "--json"]) == 0
    listed = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert listed["mixed"]["errors"] == info.errors
    with pytest.raises(plugins_mod.BadInput, match="unknown trainer 'no-train'"):
        registry.trainer("no-train")


def test_register_hooks_are_called_through_the_plugin_manager(registry):
    """A hook wrapper of another plugin, and the manager's call monitoring, see each plugin's call."""
    seen = []

    class Tracer:
        @hookimpl(wrapper=True)
        def register_trainers(self, register):
            seen.append("wrapper before")
            result = yield
            seen.append("wrapper after")
            return result

    calls = []
    registry.pm.add_hookcall_monitoring(
        lambda name, impls, kwargs: calls.append((name, sorted(i.plugin_name for i in impls))), lambda *a: None)
    registry.add_plugin(Tracer(), name="tracer")
    registry.add_plugin(Provides(EchoTrainer()), name="echo-plugin")
    assert seen == ["wrapper before", "wrapper after"]
    assert calls == [("register_trainers", ["echo-plugin", "tracer"])]  # the echo plugin's call, wrapped
    assert "echo" in registry.get("trainers")


def test_hookspecs_are_typed_with_the_protocols():
    import inspect

    from ftharness import hookspecs

    for hook, protocol in (("register_trainers", "Trainer"), ("register_metrics", "Metric"),
                           ("register_toxicity_scorers", "ToxicityScorer"),
                           ("register_report_sections", "ReportSection")):
        fn = getattr(hookspecs, hook)
        assert inspect.signature(fn).parameters["register"].annotation == f"Register[{protocol}]"
        assert getattr(hookspecs, protocol)._is_runtime_protocol
        assert ":param register:" in fn.__doc__ and "firstresult" in fn.__doc__


# --- what trainers declare is what the commands go by ---------------------------------------------------


def test_a_method_a_trainer_does_not_declare_names_who_trains_it(registry):
    with pytest.raises(plugins_mod.BadInput) as e:
        registry.training_method("peft", "dpo", field_prefix="candidates.x.")
    assert str(e.value).startswith("candidates.x.method: peft does not train dpo (it trains lora, qlora")
    assert str(e.value).endswith("dpo is trained by trl-dpo")
    assert "no installed trainer trains telepathy" in str(pytest.raises(
        plugins_mod.BadInput, registry.training_method, "peft", "telepathy").value)


def test_plan_accepts_the_methods_the_trainers_declare(registry, capsys):
    registry.add_plugin(Provides(EchoTrainer()), name="echo-plugin")
    assert main(["plan", "--model", "gpt2", "--method", "magic"]) == 2
    err = capsys.readouterr().err
    assert "--method: unknown method 'magic'" in err and "echo-lora" in err and "prompt-tuning" in err
    assert main(["plan", "--model", "gpt2", "--method", "echo-lora"]) == 2  # a method; no memory model for it
    assert "the planner has no memory model for 'echo-lora'" in capsys.readouterr().err


def test_the_planner_models_only_declared_methods(registry):
    from ftharness.planner.memory import MODELLED_METHODS

    assert set(MODELLED_METHODS) <= set(registry.methods())


def test_compare_and_train_read_the_data_kind_from_the_declaration(registry, tmp_path):
    from ftharness.compare.task import CandidateEntry, data_kind
    from ftharness.training.spec import load_candidate_file

    registry.add_plugin(Provides(EchoTrainer()), name="echo-plugin")
    assert data_kind(CandidateEntry(name="a", trainer="echo", method="echo-pref")) == "preference"
    assert data_kind(CandidateEntry(name="b", trainer="echo", method="echo-lora")) == "train"
    assert data_kind(CandidateEntry(name="c", trainer="trl-dpo", method="dpo")) == "preference"
    train = tmp_path / "train.jsonl"
    train.write_text('{"prompt": "p", "completion": "c"}\n')
    candidate = tmp_path / "c.yaml"
    candidate.write_text(f"name: c\ntrainer: peft\nmethod: echo-lora\ndata: {{train: {train}}}\n")
    with pytest.raises(plugins_mod.BadInput, match="peft does not train echo-lora .*echo-lora is trained by echo"):
        load_candidate_file(candidate)
    candidate.write_text(f"name: c\ntrainer: echo\nmethod: echo-lora\ndata: {{train: {train}}}\n")
    assert load_candidate_file(candidate).spec.method == "echo-lora"


def test_start_from_is_refused_for_a_method_that_cannot_continue(registry, tmp_path):
    from ftharness.compare.task import CandidateEntry, check_trainers

    cands = [CandidateEntry(name="a"), CandidateEntry(name="b", trainer="unsloth", method="qlora", start_from="a")]
    with pytest.raises(plugins_mod.BadInput, match="candidates.b.start_from: unsloth trains qlora from the base"):
        check_trainers(cands, tmp_path / "task.yaml")


def test_advice_names_the_trainer_that_trains_the_method():
    from ftharness.advisor import Scenario, advise

    a = advise(Scenario(problems=["preference", "style"], preference_pairs=3000, labeled_examples=50,
                        prompting_exhausted=True))
    assert a.method == "dpo"
    assert any("`{trainer: trl-dpo, method: dpo}` candidate" in s for s in a.next_steps), a.next_steps


def test_a_trainer_supplies_the_planner_s_inputs_and_without_them_there_is_no_plan(registry, tmp_path):
    """compare plans a candidate from what its trainer's plan_inputs gives: a plugin method planned as LoRA
    with the rank it trains with; a trainer without plan_inputs gets no plan (and no guess)."""
    import types as _types

    from ftharness.compare.backend import Backend, LoadedData
    from ftharness.compare.task import CandidateEntry

    class Planned(EchoTrainer):
        name = "planned"

        def plan_inputs(self, method, hp):
            return {"method": "lora", "rank": 4, "targets": "q_proj", "batch_size": 2, "epochs": 1.0}

    registry.add_plugin(Provides(Planned()), name="planned-plugin")
    registry.add_plugin(Provides(EchoTrainer()), name="echo-plugin")
    data = LoadedData(train=[0] * 10, eval=[0] * 4, fit=[0] * 10)
    for trainer, planned in (("planned", True), ("echo", False)):
        entry = CandidateEntry(name="c", trainer=trainer, method="echo-lora")
        task = _types.SimpleNamespace(hyperparameters={"c": None}, spec=_types.SimpleNamespace(
            base_model=None, decision=_types.SimpleNamespace(gpu=None)))
        option = _types.SimpleNamespace(entry=entry, spec={"data": "train"})
        plan = Backend(task).plan(option, data, seq_len=128)
        assert (plan is not None) == planned
        if planned:  # rank 4 on q_proj alone: far fewer trainable parameters than the default rank 16 everywhere
            assert plan["method"] == "lora" and 0 < plan["trainable_params"] < 1e6
