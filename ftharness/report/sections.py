"""The report-section protocol: extra parts of report.html registered by plugins."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class ReportSection(Protocol):
    name: str
    title: str

    def render(self, results: dict[str, Any]) -> str:
        """HTML for the section, from the run's results.json content. Escape everything user-derived
        (use jinja2 with autoescape)."""
