"""``junit.xml``: each gate of each option as a test case, so CI systems show them as tests.

JUnit XML as read by common CI tools (the de-facto schema of Ant's JUnit report: ``testsuites`` >
``testsuite`` per option > ``testcase`` per gate, ``failure`` when the gate failed). Built with
``xml.etree`` so every value is escaped.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any


def junit_xml(results: dict[str, Any]) -> str:
    root = ET.Element("testsuites", name=f"ftharness compare {results.get('run_id', '')}".strip())
    total = failures = 0
    for option in results.get("options", []):
        gates = option.get("gates") or []
        suite = ET.SubElement(
            root,
            "testsuite",
            name=option["name"],
            tests=str(len(gates)),
            failures=str(sum(1 for g in gates if not g.get("passed"))),
            errors="0",
            skipped="0",
        )
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="kind", value=str(option.get("kind", "")))
        for g in gates:
            total += 1
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"{option['name']}.{g.get('suite', '')}",
                name=f"{g['name']} {g['op']} {g['threshold']:g}",
            )
            if not g.get("passed"):
                failures += 1
                fail = ET.SubElement(
                    case, "failure", message=str(g.get("message", "gate failed")), type="GateFailed"
                )
                fail.text = f"measured {g.get('value')!r}; gate {g['name']} {g['op']} {g['threshold']:g}"
            else:
                out = ET.SubElement(case, "system-out")
                out.text = str(g.get("message", ""))
    decision = results.get("decision") or {}
    if decision:
        suite = ET.SubElement(
            root,
            "testsuite",
            name="decision",
            tests="1",
            failures="0" if decision.get("passes_all_gates") else "1",
            errors="0",
            skipped="0",
        )
        case = ET.SubElement(
            suite, "testcase", classname="decision", name="recommended option passes every gate"
        )
        total += 1
        if not decision.get("passes_all_gates"):
            failures += 1
            ET.SubElement(case, "failure", message=str(decision.get("headline", "")), type="NoOptionPasses")
        else:
            ET.SubElement(case, "system-out").text = str(decision.get("headline", ""))
    root.set("tests", str(total))
    root.set("failures", str(failures))
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
