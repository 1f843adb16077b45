"""The report layer: what ``verify`` and ``info`` found, as files a person or a CI system reads.

Modules: `text` (the plain-text verify table and printable names),
`markup` (escaping every name a model file carries), `svg` (inline
SVG shapes and the stride palette), `page` (the self-contained HTML page
and its tables), `pyramid` (the pyramid picture), `environment`
(versions and the command), `output` (atomic writing, never over an
input), `verify_page` (``verify --html``), `info_page` (``info
--html``, the stride map), `junit` (``verify --junit-xml``). It imports
the runtime layer and below; a report page fetches nothing from the network.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .info_page import stride_map_html, write_stride_map
    from .junit import junit_xml, write_junit
    from .output import check_report_path, write_report
    from .text import printable, verify_table
    from .verify_page import reference_origin, verify_html, write_verify_html

__all__ = [
    "check_report_path",
    "junit_xml",
    "printable",
    "reference_origin",
    "stride_map_html",
    "verify_html",
    "verify_table",
    "write_junit",
    "write_report",
    "write_stride_map",
    "write_verify_html",
]

__getattr__, __dir__ = lazy_exports(__name__, {
    ".info_page": ["stride_map_html", "write_stride_map"], ".junit": ["junit_xml", "write_junit"],
    ".output": ["check_report_path", "write_report"], ".text": ["printable", "verify_table"],
    ".verify_page": ["reference_origin", "verify_html", "write_verify_html"]})
