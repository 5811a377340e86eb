"""Suite files: which metrics to compute, with which settings, and the gates a run must pass.

```yaml
name: format
metrics:
  format: {schema: schema.json}        # settings go to the metric plugin; paths are relative to this file
  throughput: {}
gates:
  format.parse_rate: ">= 0.98"
slices: [template, input_length]       # data fields to break every metric down by
```
Everything is checked when the file is loaded (unknown metrics, unreadable gates, gates on values a
metric never produces), so a mistake costs one line and no model run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftharness.errors import BadInput
from ftharness.paths import package_data
from ftharness.suites.gates import Gate, parse_gate
from ftharness.typed import from_mapping, load_mapping

SUFFIXES = (".yaml", ".yml")


@dataclass
class SuiteFile:
    """The fields a suite file may have (checked strictly)."""

    name: str
    metrics: dict[str, Any]
    description: str = ""
    gates: dict[str, Any] = field(default_factory=dict)
    slices: list[str] = field(default_factory=list)


@dataclass
class Suite:
    name: str
    metrics: dict[str, dict[str, Any]]  # metric name -> its (normalised) settings
    gates: list[Gate] = field(default_factory=list)
    slices: list[str] = field(default_factory=list)
    description: str = ""
    path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "path": str(self.path) if self.path else None,
            "metrics": self.metrics,
            "gates": {g.name: f"{g.op} {g.threshold:g}" for g in self.gates},
            "slices": self.slices,
        }


def suite_dirs() -> list[Path]:
    """Where suite names are looked up: ``./suites`` first, then the suites shipped with ftharness (the
    repository's ``suites/``, packaged as ``ftharness/bundled/suites``)."""
    dirs = [Path.cwd() / "suites", package_data("bundled", "suites")]
    return [d for i, d in enumerate(dirs) if d.is_dir() and d.resolve() not in {x.resolve() for x in dirs[:i]}]


def suite_names() -> list[str]:
    return sorted({p.stem for d in suite_dirs() for p in d.iterdir() if p.suffix in SUFFIXES})


def find_suite(path_or_name: str | Path) -> Path:
    """A suite file path, or a suite name looked up as ``suites/NAME.yaml``."""
    p = Path(path_or_name).expanduser()
    if p.is_file():
        return p
    text = str(path_or_name)
    if "/" not in text and p.suffix not in SUFFIXES:
        for d in suite_dirs():
            for suffix in SUFFIXES:
                if (d / f"{text}{suffix}").is_file():
                    return d / f"{text}{suffix}"
        known = ", ".join(suite_names()) or "none found"
        raise BadInput(f"no suite named {text!r}; known suites: {known}; or give a path to a YAML file", field="suite")
    raise BadInput("suite file not found; check the path", file=p)


def load_suite(path_or_name: str | Path) -> Suite:
    """Load and fully check a suite file (or a suite name, see :func:`find_suite`)."""
    path = find_suite(path_or_name)
    return suite_from_mapping(load_mapping(path), source=path)


def suite_from_mapping(data: dict[str, Any], *, source: str | Path | None = None) -> Suite:
    from ftharness.plugins import metrics as installed_metrics

    spec = from_mapping(SuiteFile, data, source=source)
    if not spec.metrics:
        raise BadInput("a suite needs at least one metric", file=source, field="metrics")
    available = installed_metrics()
    metrics: dict[str, dict[str, Any]] = {}
    for name, settings in spec.metrics.items():
        if name not in available:
            known = ", ".join(sorted(available)) or "none installed"
            raise BadInput(f"unknown metric; installed metrics are: {known}", file=source, field=f"metrics.{name}")
        if settings is None:
            settings = {}
        if not isinstance(settings, dict):
            raise BadInput("a metric's settings are a mapping (or {} for none)", file=source, field=f"metrics.{name}")
        metric = available[name]
        check = getattr(metric, "check_settings", None)
        metrics[name] = dict(check(settings, source=source) if check else settings)
    gates = parse_gates(spec.gates, metrics, file=source)
    for i, s in enumerate(spec.slices):
        if not s.strip():
            raise BadInput("a slice is a data field name", file=source, field=f"slices[{i}]")
    return Suite(
        name=spec.name,
        metrics=metrics,
        gates=gates,
        slices=list(spec.slices),
        description=spec.description,
        path=Path(source) if source else None,
    )


def parse_gates(
    gates: dict[str, Any],
    metrics: dict[str, dict[str, Any]],
    *,
    file: str | Path | None = None,
    owner: str = "this suite",
    field: str | None = None,
) -> list[Gate]:
    """Parse ``{"format.parse_rate": ">= 0.98"}`` and check each gate names a metric of ``metrics`` (those
    ``owner`` computes) and a value that metric produces (when it says which values it produces). Errors
    name ``field`` (default ``gates.NAME``)."""
    from ftharness.plugins import metrics as installed_metrics

    available = installed_metrics()
    out = []
    for name, expr in gates.items():
        gate = parse_gate(name, expr, file=file)
        where = field or f"gates.{name}"
        line = getattr(gates, "lines", {}).get(name)
        if gate.metric not in metrics:
            listed = ", ".join(metrics) or "none"
            raise BadInput(
                f"metric {gate.metric!r} is not computed by {owner}; the metrics there: {listed}",
                file=file,
                line=line,
                field=where,
            )
        produces = getattr(available.get(gate.metric), "value_names", None)
        if produces is not None:
            names = list(produces(metrics[gate.metric]))
            if gate.value not in names:
                raise BadInput(
                    f"{gate.metric} does not produce {gate.value!r}; it produces: {', '.join(names)}",
                    file=file,
                    line=line,
                    field=where,
                )
        out.append(gate)
    return out
