"""``junit.xml``: each gate of each option as a test case, so CI systems show them as tests.

JUnit XML as read by common CI tools (the de-facto schema of Ant's JUnit report: ``testsuites`` >
``testsuite`` per option > ``testcase`` per gate, ``failure`` when the gate failed). Built with
``xml.etree`` so every value is escaped.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ftharness.report.results import CompareResults


def junit_xml(results: CompareResults) -> str:
    root = ET.Element("testsuites", name=f"ftharness compare {results.run_id}".strip())
    total = failures = 0
    for option in results.options:
        suite = ET.SubElement(
            root,
            "testsuite",
            name=option.name,
            tests=str(len(option.gates)),
            failures=str(sum(1 for g in option.gates if not g.passed)),
            errors="0",
            skipped="0",
        )
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="kind", value=option.kind)
        for g in option.gates:
            total += 1
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"{option.name}.{g.suite or ''}",
                name=f"{g.name} {g.op} {g.threshold:g}",
            )
            if not g.passed:
                failures += 1
                fail = ET.SubElement(case, "failure", message=g.message, type="GateFailed")
                fail.text = f"measured {g.value!r}; gate {g.name} {g.op} {g.threshold:g}"
            else:
                ET.SubElement(case, "system-out").text = g.message
    decision = results.decision
    suite = ET.SubElement(
        root,
        "testsuite",
        name="decision",
        tests="1",
        failures="0" if decision.passes_all_gates else "1",
        errors="0",
        skipped="0",
    )
    case = ET.SubElement(suite, "testcase", classname="decision", name="recommended option passes every gate")
    total += 1
    if not decision.passes_all_gates:
        failures += 1
        ET.SubElement(case, "failure", message=decision.headline, type="NoOptionPasses")
    else:
        ET.SubElement(case, "system-out").text = decision.headline
    root.set("tests", str(total))
    root.set("failures", str(failures))
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
