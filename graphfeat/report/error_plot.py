"""The per-level error plot: each level's ``max_rel`` as a bar on a log scale, with its tolerance marked.

A table says pass or fail; the plot shows the margin (a level at 1e-7 against
1e-4 is safe, one at 9e-5 is not) and makes the failing level stand out. A
level judged by cosine and SQNR only (quantised) has no elementwise tolerance:
its bar is grey and its SQNR and cosine are printed beside it.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from . import svg
from .markup import shorten

#: the decades the axis spans; values outside are drawn at its ends
LOW, HIGH = -9, 1
_ROW = 22
_LEFT, _PLOT = 150, 420
_FILL = {True: "#74c476", False: "#e6550d"}


def _x(value: float) -> float:
    """The x of ``value`` on the log axis (clamped to its ends; 0 at the left)."""
    if not value > 0:
        return _LEFT
    d = min(max(math.log10(value) if math.isfinite(value) else HIGH, LOW), HIGH)
    return _LEFT + _PLOT * (d - LOW) / (HIGH - LOW)


def error_plot_svg(levels: Sequence, *, label: str) -> str:
    """One ``<rect class="bar">`` per level (`graphfeat.runtime.LevelMetrics`), the tolerance a tick."""
    height = 24 + _ROW * len(levels) + 30
    body = [svg.text(_LEFT, 14, "max |a - r| / max |r| (log scale); tick: tolerance (rtol)", size=11)]
    for k, m in enumerate(levels):
        y = 24 + _ROW * k
        rtol = m.limits.rtol if m.limits is not None else None
        fill = _FILL[bool(m.ok)] if rtol is not None or not m.ok else "#bdbdbd"
        body.append(svg.text(_LEFT - 6, y + 14, shorten(m.name, 22), anchor="end"))
        body.append(svg.rect(_LEFT, y + 3, _x(m.max_rel) - _LEFT, _ROW - 8, fill=fill, stroke="none",
                             title=f"{m.name}: max_rel {m.max_rel:.3g}" + (f", rtol {rtol:g}" if rtol else ""),
                             class_=f"bar {'pass' if m.ok else 'fail'}", data_level=m.name))
        value = "exact" if m.max_rel == 0 else f"{m.max_rel:.2e}"
        if rtol is not None:
            body.append(svg.line(_x(rtol), y, _x(rtol), y + _ROW - 2, stroke="#111", stroke_width=2,
                                 class_="tolerance"))
        else:
            value += f"; SQNR {m.sqnr:.1f} dB, cos {m.cosine:.4f}"
        body.append(svg.text(_LEFT + _PLOT + 6, y + 14, value, size=10))
    axis = 24 + _ROW * len(levels) + 4
    body.append(svg.line(_LEFT, axis, _LEFT + _PLOT, axis))
    for d in range(LOW, HIGH + 1):
        x = _LEFT + _PLOT * (d - LOW) / (HIGH - LOW)
        body.append(svg.line(x, axis, x, axis + 4))
        if d % 2 == 1 or d == HIGH:
            body.append(svg.text(x, axis + 16, f"1e{d}", size=10, anchor="middle"))
    return svg.svg(_LEFT + _PLOT + 200, height, body, label=label, cls="errors")
