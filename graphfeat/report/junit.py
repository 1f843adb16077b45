"""``graphfeat verify --junit-xml``: the verification as JUnit XML, the format CI systems collect.

One ``<testsuite>`` per runtime (``graphfeat.verify.<runtime>``), one
``<testcase>`` per level, a ``<failure>`` with the figures when a level fails.
ElementTree escapes the markup; names are made printable first, because
control characters are invalid in XML whatever the escaping.
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..runtime import VerifyReport
from .markup import clean
from .output import write_report


def _figures(m) -> str:
    shape = "x".join(map(str, m.shape))
    return (f"shape {shape}, dtype {m.dtype or '?'}, max_abs {m.max_abs:.3g}, max_rel {m.max_rel:.3g}, "
            f"cosine {m.cosine:.6f}, SQNR {m.sqnr:.1f} dB; criterion: {m.criterion or '?'}")


def _suite(parent: ET.Element, report: VerifyReport) -> None:
    failures = sum(not m.ok for m in report.levels)
    name = f"graphfeat.verify.{clean(report.runtime)}"
    suite = ET.SubElement(parent, "testsuite", name=name, tests=str(len(report.levels)), failures=str(failures),
                          errors="0", skipped="0", time="0")
    props = ET.SubElement(suite, "properties")
    for key, value in (("model", report.model), ("reference", report.source),
                       ("providers", ", ".join(report.providers)),
                       ("input_shape", "x".join(map(str, report.input_shape))), ("distinct_images", report.images)):
        ET.SubElement(props, "property", name=key, value=clean(value))
    for m in report.levels:
        case = ET.SubElement(suite, "testcase", classname=name, name=clean(m.name), time="0")
        if not m.ok:
            failure = ET.SubElement(case, "failure", message=clean(m.note or "level differs from the reference"),
                                    type="LevelMismatch")
            failure.text = clean(_figures(m))
        else:
            ET.SubElement(case, "system-out").text = clean(_figures(m))
    if report.notes:
        ET.SubElement(suite, "system-out").text = clean("\n".join(report.notes))


def junit_xml(reports: Sequence[VerifyReport]) -> bytes:
    """The JUnit XML document (UTF-8, with its declaration) of ``reports``, one suite per runtime."""
    root = ET.Element("testsuites", name="graphfeat verify",
                      tests=str(sum(len(r.levels) for r in reports)),
                      failures=str(sum(not m.ok for r in reports for m in r.levels)))
    for report in reports:
        _suite(root, report)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def write_junit(path: str | os.PathLike, reports: Sequence[VerifyReport],
                inputs: Iterable[str | os.PathLike | None] = ()) -> Path:
    """Write `junit_xml` to ``path`` atomically; never over one of ``inputs``."""
    return write_report(path, junit_xml(reports), inputs, flag="--junit-xml")
