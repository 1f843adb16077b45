"""Escaping for HTML, SVG and XML: every name a model file carries goes through `esc` before markup.

A tensor or level name is the file author's text: it may hold ``<script>``,
quotes, ``&``, control characters or a thousand characters. In a report it
must stay text, so it is made printable (control characters are invalid in
XML), then escaped for text and attributes alike.
"""
from __future__ import annotations

import html

from .text import printable


def clean(value: object) -> str:
    """``value`` as text a document may hold: non-printable characters escaped (``\\x1b``), newlines kept."""
    return printable(str(value))


def esc(value: object) -> str:
    """``value`` escaped for HTML or XML text and double- or single-quoted attributes."""
    return html.escape(clean(value), quote=True)


def shorten(value: object, limit: int = 40) -> str:
    """``value`` cut to ``limit`` characters with an ellipsis (not escaped: pass the result to `esc`)."""
    text = clean(value)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def attrs(**values: object) -> str:
    """`` key="value"`` pairs, escaped, for the values that are not None (``data_x`` becomes ``data-x``)."""
    return "".join(f' {k.rstrip("_").replace("_", "-")}="{esc(v)}"' for k, v in values.items() if v is not None)
