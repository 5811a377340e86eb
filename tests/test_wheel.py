"""A regular (non-editable) install works away from the repository: the wheel carries the bundled task,
the suites and the built-in plugins, and nothing reaches back into the checkout.

The wheel is built from a copy of the source (the checkout gets no build/ or egg-info folder), installed
with ``pip install --target`` into a folder of its own, and run with that folder on ``PYTHONPATH`` from an
empty working directory; its dependencies (rich, pyyaml, jsonschema...) come from this environment.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOT_SOURCE = (".git", ".venv", "build", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache", "reports",
              ".whl", ".gl", "shared")

pytestmark = pytest.mark.slow


def _can_build_wheels() -> bool:
    """setuptools 70.1+ builds wheels itself; older ones need the ``wheel`` package."""
    return importlib.util.find_spec("setuptools") is not None and (
        importlib.util.find_spec("setuptools.command.bdist_wheel") is not None
        or importlib.util.find_spec("wheel") is not None
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    if not _can_build_wheels():
        pytest.skip("this environment cannot build wheels (setuptools >= 70.1 or the wheel package)")
    tmp = tmp_path_factory.mktemp("wheel")
    src, dist, site = tmp / "src", tmp / "dist", tmp / "site"
    shutil.copytree(ROOT, src, symlinks=True, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(src)], check=True)
    (wheel,) = dist.glob("ftharness-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True)
    return site


def _run(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_installed_package_is_used_not_the_checkout(installed, tmp_path):
    p = _run(installed, tmp_path, "-c", "import ftharness, ftharness_plugins; "
             "print(ftharness.__file__); print(ftharness_plugins.__file__)")
    assert p.returncode == 0, p.stderr
    for line in p.stdout.splitlines():
        assert Path(line).is_relative_to(installed) and not Path(line).resolve().is_relative_to(ROOT), line


def test_compare_help_and_the_bundled_task(installed, tmp_path):
    p = _run(installed, tmp_path, "-m", "ftharness", "compare", "--help")
    assert p.returncode == 0 and "bundled" in p.stdout, p.stderr
    p = _run(installed, tmp_path, "-c", "import json; from ftharness.compare.task import load_task; t = load_task(); "
             "print(json.dumps([str(x) for x in (t.file, t.train_path, t.eval_path, t.preference_path, "
             "t.schema_path)] + [t.instruction]))")
    assert p.returncode == 0, p.stderr
    *files, instruction = json.loads(p.stdout)
    for f in files:
        assert Path(f).is_file() and Path(f).is_relative_to(installed / "ftharness" / "bundled"), f
    assert instruction  # instruction.txt was read


def test_eval_finds_the_packaged_suites(installed, tmp_path, check_results):
    bundled = installed / "ftharness" / "bundled"
    p = _run(installed, tmp_path, "-c", "import json; from ftharness.suites.suite import suite_names; "
             "print(json.dumps(suite_names()))")
    assert p.returncode == 0, p.stderr
    assert {"format", "task", "safety", "forgetting", "redteam"} <= set(json.loads(p.stdout))
    rows = [json.loads(line) for line in (bundled / "extraction" / "eval.jsonl").read_text().splitlines()[:4]]
    preds = tmp_path / "answers.jsonl"
    preds.write_text("".join(json.dumps({"output": r["completion"], "reference": r["completion"]}) + "\n"
                             for r in rows))
    p = _run(installed, tmp_path, "-m", "ftharness", "eval", "--suite", "format", "--predictions", str(preds),
             "--schema", str(bundled / "extraction" / "schema.json"), "--out", "out", "--json")
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout)
    assert Path(result["suite"]["path"]).is_relative_to(bundled / "suites")
    assert result["result"]["n_samples"] == 4 and result["result"]["passed"]
    assert (installed / "ftharness" / "report" / "results.schema.json").is_file()  # the published schema ships
    check_results(tmp_path / "out" / "results.json")
