"""Inline SVG shapes for the report pages, and the one palette a stride is drawn in.

The reports are single files that render offline, so pictures are inline SVG
written here (no plotting library, no script). Every text and attribute goes
through `graphfeat.report.markup.esc`.
"""
from __future__ import annotations

from .markup import attrs, esc

#: one colour per stride, shallow to deep (4, 8, 16, 32 ... take the 3rd, 4th, 5th, 6th); wraps past the end
PALETTE = ("#9ecae1", "#6baed6", "#74c476", "#fdae6b", "#e6550d", "#9e9ac8", "#756bb1", "#d6616b", "#843c39")
#: tensors without a measured stride
UNPLACED = "#d9d9d9"


def stride_colour(stride: int | None) -> str:
    """The fill of a tensor at ``stride`` (1 = the input's resolution); grey when unmeasured."""
    if not stride or stride < 1:
        return UNPLACED
    return PALETTE[(stride.bit_length() - 1) % len(PALETTE)]


def svg(width: float, height: float, body: list[str], *, label: str, cls: str) -> str:
    """An ``<svg>`` element holding ``body``; ``label`` is its accessible name."""
    return (f'<svg xmlns="http://www.w3.org/2000/svg"{attrs(class_=cls, width=round(width), height=round(height))}'
            f' viewBox="0 0 {round(width)} {round(height)}" role="img"{attrs(aria_label=label)}>'
            + "".join(body) + "</svg>")


def rect(x: float, y: float, w: float, h: float, *, fill: str, title: str | None = None, stroke: str = "#333",
         **extra: object) -> str:
    """A rectangle; ``title`` shows on hover; ``extra`` become attributes (``class_``, ``data_level``)."""
    tip = f"<title>{esc(title)}</title>" if title is not None else ""
    return (f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{max(h, 0):.1f}"'
            f'{attrs(fill=fill, stroke=stroke, **extra)}>{tip}</rect>')


def text(x: float, y: float, value: object, *, size: int = 11, anchor: str = "start", **extra: object) -> str:
    """A line of text (escaped)."""
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}"{attrs(text_anchor=anchor, **extra)}>'
            f"{esc(value)}</text>")


def line(x1: float, y1: float, x2: float, y2: float, *, stroke: str = "#333", **extra: object) -> str:
    """A straight line."""
    return f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}"{attrs(stroke=stroke, **extra)}/>'
