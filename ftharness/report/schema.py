"""``results.schema.json``: the published JSON Schema of results.json, generated from the record classes.

Both kinds of results.json (``ftharness compare``'s :class:`~ftharness.report.results.CompareResults`,
``ftharness eval``'s :class:`~ftharness.suites.evaluate.Evaluation`; ``kind`` tells them apart) are
described by the one schema, built by :func:`results_schema` from the records' field types and their
``doc(...)`` texts. The file beside this module is that output, committed so tools can read it without
Python; after changing a record, write it again with ``python -m ftharness.report.schema`` (the test
suite fails while the committed file and the generated schema differ).
"""

from __future__ import annotations

import json
from typing import Any

from ftharness.jsonrecord import json_schema
from ftharness.paths import package_data
from ftharness.report.results import CompareResults
from ftharness.suites.evaluate import RESULTS_SCHEMA_VERSION, Evaluation

SCHEMA_FILE = package_data("report", "results.schema.json")


def results_schema() -> dict[str, Any]:
    return json_schema(
        CompareResults | Evaluation,
        id="https://ftharness.invalid/report/results.schema.json",
        title=f"ftharness results.json (schema version {RESULTS_SCHEMA_VERSION})",
        description="What ftharness compare (kind: ftharness-compare) or ftharness eval (kind: "
        "ftharness-eval) measured and decided. Generated from the record classes by "
        "ftharness.report.schema; every field says what it means.",
    )


def schema_text() -> str:
    """The schema as the committed file holds it."""
    return json.dumps(results_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    SCHEMA_FILE.write_text(schema_text(), encoding="utf-8")
    print(f"wrote {SCHEMA_FILE}")
