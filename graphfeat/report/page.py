"""The self-contained HTML page the reports are: inline style, no script, nothing fetched.

A report is an artefact kept beside a CI run or mailed around, so it must
render the same offline and years later: one file, the style inline, no
script, no font or image from the network. Table cells are escaped unless
they are `Markup` built by this package.
"""
from __future__ import annotations

from collections.abc import Sequence

from .markup import attrs, esc

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1200px;padding:0 16px;
color:#1a1a1a;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0 16px;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.name,td.wrap{word-break:break-all;max-width:420px}
tr.fail td{background:#fdecea}.mark{font-weight:600;white-space:nowrap}
.mark.pass,.verdict.pass{color:#18794e}.mark.fail,.verdict.fail{color:#b42318}
.verdict{font-size:18px;font-weight:700}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:8px 0}
dl.facts dt{color:#555}dl.facts dd{margin:0;word-break:break-all}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;background:#f6f6f6;padding:1px 3px}
.legend span{display:inline-block;margin-right:12px}.swatch{display:inline-block;width:12px;height:12px;
border:1px solid #333;vertical-align:-2px;margin-right:4px}
svg{display:block;margin:6px 0 12px;max-width:100%;height:auto}svg text{font-family:system-ui,sans-serif}
.note{color:#555}
"""


class Markup(str):
    """Text that is already HTML (built from escaped parts here): a table cell puts it in as it is."""


def cell(value: object) -> str:
    """A cell's content: `Markup` as it is, None as ``?``, a list or tuple (a shape) as ``[a, b]``,
    anything else escaped."""
    if isinstance(value, Markup):
        return value
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(cell(v) for v in value) + "]"
    return "?" if value is None else esc(value)


def table(header: Sequence[str], rows: Sequence[Sequence[object]], *, cls: str,
          row_attrs: Sequence[dict] | None = None, col_cls: Sequence[str | None] | None = None) -> str:
    """An HTML table: one ``<tr>`` per row (``row_attrs``: each row's attributes, ``class_`` among them);
    ``col_cls`` gives a column its cell class (``num``, ``name``)."""
    col_cls = list(col_cls or [None] * len(header))
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for k, row in enumerate(rows):
        extra = attrs(**row_attrs[k]) if row_attrs else ""
        tds = "".join(f"<td{attrs(class_=c)}>{cell(v)}</td>" for v, c in zip(row, col_cls))
        body.append(f"<tr{extra}>{tds}</tr>")
    return f'<table{attrs(class_=cls)}><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def facts(pairs: Sequence[tuple[str, object]]) -> str:
    """A definition list of ``(term, value)``; values escaped unless `Markup`."""
    items = "".join(f"<dt>{esc(k)}</dt><dd>{cell(v)}</dd>" for k, v in pairs)
    return f'<dl class="facts">{items}</dl>'


def page(title: str, body: Sequence[str]) -> str:
    """The whole document: ``title`` (escaped) and the ``body`` parts (markup built by the report modules)."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<meta name=\"generator\" content=\"graphfeat\"><title>{esc(title)}</title>"
            f"<style>{STYLE}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n")
