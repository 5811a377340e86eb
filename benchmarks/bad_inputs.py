"""The bad-input corpus (tests/data/bad/cases.yaml) through the CLI: how many cases end as the exit-code
contract asks (README, "Exit codes": 2, one line on stderr, no traceback, nothing written outside the
command's own output folder), and how many end in a traceback (exit 4, or one printed).

Every case runs in-process through ``ftharness.cli.main``, the entry point the console script calls, in
a fresh copy of the corpus as the working directory and with a cache folder of its own, so that a crash
log or a stray write shows up as a changed file. tests/test_bad_inputs.py runs the same cases with
:func:`run_case`.

    .venv/bin/python benchmarks/bad_inputs.py [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "bad"
WATCHED = (ROOT / "examples", CORPUS)  # files of the repository no case may change


@dataclass
class Outcome:
    id: str
    exit_code: int
    stderr: str
    changed: list[str]  # files created, changed or removed outside the case's output folder
    expect: str

    @property
    def lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]

    @property
    def traceback(self) -> bool:
        return self.exit_code == 4 or "Traceback" in self.stderr

    @property
    def clean(self) -> bool:
        """Exit 2, exactly one line on stderr holding the expected text, no traceback, nothing changed."""
        return (self.exit_code == 2 and len(self.stderr.splitlines()) == 1 and len(self.lines) == 1
                and self.expect in self.lines[0] and not self.traceback and not self.changed)


def load_cases() -> list[dict[str, Any]]:
    import yaml

    return yaml.safe_load((CORPUS / "cases.yaml").read_text(encoding="utf-8"))


def snapshot(*folders: Path) -> dict[str, str]:
    """Every file under ``folders`` (links not followed) with a hash of its content."""
    out = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.is_symlink():
                out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def run_case(case: dict[str, Any], work: Path) -> Outcome:
    """Run one case in ``work`` (a new folder): the corpus copied to ``work/in``, the working directory
    there, ``{out}`` replaced by ``work/out``, the cache at ``work/cache``."""
    from ftharness.cli import main

    here, cache, out = work / "in", work / "cache", work / "out"
    shutil.copytree(CORPUS, here)
    cache.mkdir()
    argv = [str(a).replace("{out}", str(out)) for a in case["args"]]
    watched = (here, cache, *WATCHED)
    before = snapshot(*watched)
    err = io.StringIO()
    old_cwd, old_cache = os.getcwd(), os.environ.get("FTHARNESS_CACHE")
    os.chdir(here)
    os.environ["FTHARNESS_CACHE"] = str(cache)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(argv)
            except SystemExit as e:  # argparse's usage errors
                code = e.code if isinstance(e.code, int) else 2
    finally:
        os.chdir(old_cwd)
        if old_cache is None:
            os.environ.pop("FTHARNESS_CACHE", None)
        else:
            os.environ["FTHARNESS_CACHE"] = old_cache
    after = snapshot(*watched)
    changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
    return Outcome(id=case["id"], exit_code=code, stderr=err.getvalue(), changed=changed, expect=case["expect"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON document with every outcome")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        outcomes = [run_case(case, Path(tmp) / case["id"]) for case in load_cases()]
    clean = sum(o.clean for o in outcomes)
    tracebacks = sum(o.traceback for o in outcomes)
    if args.json:
        print(json.dumps({"tried": len(outcomes), "clean": clean, "tracebacks": tracebacks,
                          "outcomes": [{**asdict(o), "clean": o.clean} for o in outcomes]}, indent=2))
    else:
        for o in outcomes:
            if not o.clean:
                print(f"{o.id}: exit {o.exit_code}, {len(o.lines)} stderr lines, changed {o.changed}: {o.stderr.strip()}")
        print(f"tried {len(outcomes)}, clean {clean}, tracebacks {tracebacks}")
    return 0 if clean == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
