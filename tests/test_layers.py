"""The import layers of ftharness, checked on the source with ``ast`` (nothing is imported or executed).

``LAYERS`` runs from the top (what a person runs) to the bottom (what everything else stands on). A module
may import modules of its own layer and of the layers below it, never above; every import that runs
counts, at module level or inside a function. An import under ``if TYPE_CHECKING:`` never runs: it only
lets an annotation (a string) name a type of a layer above, so the layers skip it; the rules below still
count it. docs/layers.md holds the same table for readers, and a test here keeps the two equal. Beside
the layers:

- the core (everything but ``ftharness.cli`` and ``ftharness.__main__``, its ``python -m`` entry) never
  imports ``ftharness.cli``;
- rich is imported only in ``ftharness.cli``: the core reports through :mod:`ftharness.ui`;
- torch, transformers, peft, trl and bitsandbytes are imported only inside functions (or under
  ``if TYPE_CHECKING:``), except in ``ftharness.models`` and ``ftharness.training``: ``--help``,
  ``advise``, ``plan`` and ``ftharness plugins`` must start without them.
"""

from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"ftharness": ROOT / "ftharness", "ftharness_plugins": ROOT / "plugins"}

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("front ends", ("ftharness.cli", "ftharness.__main__", "ftharness.pytest_plugin")),
    ("the comparison", ("ftharness.compare",)),
    ("reports", ("ftharness.report",)),
    ("built-in plugins", ("ftharness_plugins",)),
    ("evaluation, training, advice", ("ftharness.suites", "ftharness.training", "ftharness.advisor")),
    ("prompting baselines, retrieval", ("ftharness.baselines", "ftharness.retrieval")),
    ("data", ("ftharness.data",)),
    ("models, planner", ("ftharness.models", "ftharness.planner")),
    ("foundation", (
        "ftharness.plugins", "ftharness.hookspecs", "ftharness.hyperparameters", "ftharness.typed",
        "ftharness.jsonrecord", "ftharness.runlog", "ftharness.faults",
        "ftharness.ui", "ftharness.io", "ftharness.errors", "ftharness.paths", "ftharness",
    )),
)
CLI = ("ftharness.cli", "ftharness.__main__")
HEAVY = ("torch", "transformers", "peft", "trl", "bitsandbytes")
HEAVY_ALLOWED = ("ftharness.models", "ftharness.training")


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the imported module, resolved (``from ftharness import ui`` -> ftharness.ui)
    line: int
    module_level: bool  # runs when the importing module is imported
    type_checking: bool = False  # under ``if TYPE_CHECKING:``: read by type checkers, never run

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.target}"


def _modules() -> dict[str, Path]:
    """Every module of the two packages (symlinked folders, the bundled data, are not walked)."""
    found = {}
    for package, root in PACKAGES.items():
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in files:
                if name.endswith(".py"):
                    parts = Path(folder, name).relative_to(root).with_suffix("").parts
                    if parts[-1] == "__init__":
                        parts = parts[:-1]
                    found[".".join((package, *parts))] = Path(folder, name)
    return found


MODULES = _modules()


def _is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def _resolve(module: str, node: ast.ImportFrom) -> list[str]:
    if node.level:
        base = module.split(".")
        base = base[: len(base) - node.level + (1 if _is_package(module) else 0)]
        source = ".".join([*base, *([node.module] if node.module else [])])
    else:
        source = node.module or ""
    return [f"{source}.{a.name}" if f"{source}.{a.name}" in MODULES else source for a in node.names]


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(module: str, source: str | None = None) -> list[Import]:
    text = MODULES[module].read_text(encoding="utf-8") if source is None else source
    out: list[Import] = []

    def visit(node: ast.AST, module_level: bool, type_checking: bool) -> None:
        if isinstance(node, ast.Import):
            out.extend(Import(module, a.name, node.lineno, module_level, type_checking) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            out.extend(Import(module, t, node.lineno, module_level, type_checking) for t in _resolve(module, node))
        for child in ast.iter_child_nodes(node):
            nested = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            guarded = isinstance(node, ast.If) and _type_checking(node) and child in node.body
            visit(child, module_level and not nested and not guarded, type_checking or guarded)

    visit(ast.parse(text), True, False)
    return out


ALL_IMPORTS = [imp for module in sorted(MODULES) for imp in _imports(module)]


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer_of(module: str) -> int | None:
    """Index in LAYERS of the entry naming ``module`` or its package (the longest name wins)."""
    best: tuple[int, int] | None = None
    for i, (_, names) in enumerate(LAYERS):
        for name in names:
            if _within(module, name) and (best is None or len(name) > best[1]):
                best = (i, len(name))
    return None if best is None else best[0]


def _ours(target: str) -> bool:
    return any(_within(target, p) for p in PACKAGES)


def upward(imports: list[Import]) -> list[str]:
    """Imports that run and go up the layers (those under ``if TYPE_CHECKING:`` never run)."""
    return [
        f"{i} ({LAYERS[layer_of(i.module)][0]} -> {LAYERS[layer_of(i.target)][0]})"
        for i in imports
        if not i.type_checking and _ours(i.target) and layer_of(i.target) is not None
        and layer_of(i.target) < layer_of(i.module)
    ]


def into_the_cli(imports: list[Import]) -> list[str]:
    return [str(i) for i in imports
            if _within(i.target, "ftharness.cli") and not any(_within(i.module, c) for c in CLI)]


def rich_outside_the_cli(imports: list[Import]) -> list[str]:
    return [str(i) for i in imports if _within(i.target, "rich") and not _within(i.module, "ftharness.cli")]


def heavy_at_module_level(imports: list[Import]) -> list[str]:
    return [
        str(i) for i in imports
        if i.module_level and i.target.split(".")[0] in HEAVY
        and not any(_within(i.module, m) for m in HEAVY_ALLOWED)
    ]


def test_every_module_has_a_layer():
    missing = [m for m in MODULES if layer_of(m) is None]
    assert not missing, f"add these to LAYERS (tests/test_layers.py) and to docs/layers.md: {missing}"


def test_imports_go_down_the_layers():
    found = upward(ALL_IMPORTS)
    assert not found, "imports up the layers:\n" + "\n".join(found)


def test_the_core_never_imports_the_cli():
    found = into_the_cli(ALL_IMPORTS)
    assert not found, "the core imports the CLI (report through ftharness.ui):\n" + "\n".join(found)


def test_only_the_cli_imports_rich():
    found = rich_outside_the_cli(ALL_IMPORTS)
    assert not found, "rich outside ftharness.cli (report through ftharness.ui):\n" + "\n".join(found)


def test_heavy_libraries_only_inside_functions():
    found = heavy_at_module_level(ALL_IMPORTS)
    assert not found, "heavy libraries imported at module level (move them into the function):\n" + "\n".join(found)


def _docs_table() -> list[tuple[str, tuple[str, ...]]]:
    """The layer table of docs/layers.md: ``| layer | modules |`` rows, modules in backticks."""
    text = (ROOT / "docs" / "layers.md").read_text(encoding="utf-8")
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 2 and "`" in cells[1]:
            rows.append((cells[0], tuple(re.findall(r"`([^`]+)`", cells[1]))))
    return rows


def test_the_docs_show_the_same_layers():
    assert _docs_table() == [(name, names) for name, names in LAYERS]


# The checks can fail: each finds what is planted in a module's source.

PLANTED = """
from typing import TYPE_CHECKING
import torch
from ftharness.compare.run import run_compare
from ftharness.cli.render import console
from rich.text import Text
from . import runner
if TYPE_CHECKING:
    import transformers
    from ftharness.compare.task import Task
    from ftharness.cli.render import Console
def f():
    import peft
"""


def test_planted_imports_are_resolved_and_placed():
    found = {(i.target, i.module_level) for i in _imports("ftharness.suites.loglik", PLANTED)}
    assert {("torch", True), ("ftharness.compare.run", True), ("ftharness.suites.runner", True),
            ("transformers", False), ("peft", False)} <= found
    guarded = {i.target for i in _imports("ftharness.suites.loglik", PLANTED) if i.type_checking}
    assert guarded == {"transformers", "ftharness.compare.task", "ftharness.cli.render"}


def test_planted_violations_are_reported():
    planted = _imports("ftharness.suites.loglik", PLANTED)
    assert upward(planted) == ["ftharness.suites.loglik:4 imports ftharness.compare.run "
                               "(evaluation, training, advice -> the comparison)",
                               "ftharness.suites.loglik:5 imports ftharness.cli.render "
                               "(evaluation, training, advice -> front ends)"]
    # the TYPE_CHECKING import of ftharness.compare.task (line 10) never runs: not up the layers; the CLI
    # stays out of the core even there (line 11)
    assert into_the_cli(planted) == ["ftharness.suites.loglik:5 imports ftharness.cli.render",
                                     "ftharness.suites.loglik:11 imports ftharness.cli.render"]
    assert rich_outside_the_cli(planted) == ["ftharness.suites.loglik:6 imports rich.text"]
    assert heavy_at_module_level(planted) == ["ftharness.suites.loglik:3 imports torch"]
    assert heavy_at_module_level(_imports("ftharness.models.loading", PLANTED)) == []  # allowed there
    assert into_the_cli(_imports("ftharness.__main__", PLANTED)) == []  # the `python -m` entry
