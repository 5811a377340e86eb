"""The plugin manager: built-ins, a third-party plugin installed by entry point, broken plugins, allow-list."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ftharness.cli import main
from ftharness.plugins import get_plugins, reset_plugins

THIRD_PARTY = textwrap.dedent(
    '''
    from ftharness.hookspecs import hookimpl

    CALLS = []

    class EchoTrainer:
        name = "echo"
        methods = ("echo-lora",)
        requires_cuda = False

        def unavailable_reason(self):
            return None

        def train(self, job):
            raise NotImplementedError

    class NeedsTpu:
        name = "tpu-only"
        methods = ("lora",)
        requires_cuda = True

        def unavailable_reason(self):
            return "needs a TPU; run it on a TPU host"

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


def test_third_party_plugin_is_listed_and_called(third_party):
    plugins = get_plugins()
    assert "echo" in plugins.get("trainers")
    info = plugins.infos["echo"]
    assert info.source == "ftharness_echo 0.3"
    assert info.provides["trainers"] == ["echo", "tpu-only"]
    assert info.unavailable == {"tpu-only": "needs a TPU; run it on a TPU host"}
    import ftharness_echo_plugin

    assert ftharness_echo_plugin.CALLS == ["register_trainers"]


def test_broken_plugin_is_reported_not_fatal(third_party, capsys):
    assert main(["plugins", "--json"]) == 0
    listed = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert "this plugin is broken on purpose" in listed["broken"]["error"]
    assert listed["echo"]["error"] is None
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
    assert all(get_plugins().infos[n].source == "built-in" for n in names)


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
        assert "register_metrics failed" in info.error and "no metrics today" in info.error
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
    assert listed and all(p["source"] == "built-in" for p in listed)
