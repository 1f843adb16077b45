"""The pyramid picture: one rectangle per level, its height the level's grid (1 / stride), its width its channels.

Drawn as inline SVG in both reports, so that a reader sees at a glance which
resolutions the file hands on and how wide each is; colours are the strides'
(`graphfeat.report.svg.stride_colour`), the outline the level's verdict.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from . import svg
from .markup import shorten

#: the tallest level's height (the finest stride); coarser levels shrink with 1 / stride
TALLEST = 150
_LABEL_LINES = 4
_OUTLINE = {"pass": "#18794e", "fail": "#b42318", "": "#333"}
_MARK = {"pass": "\u2713 pass", "fail": "\u2717 FAIL", "": ""}


@dataclass(frozen=True)
class PyramidLevel:
    """One level to draw; ``status`` is ``pass``, ``fail`` or empty (not judged)."""

    name: str
    stride: int | None
    channels: int | None
    status: str = ""


def _thickness(channels: int | None) -> float:
    return 12.0 if not channels or channels < 1 else min(90.0, 12.0 + 7.0 * math.log2(channels))


def pyramid_svg(levels: Sequence[PyramidLevel], *, label: str = "feature pyramid") -> str:
    """The picture of ``levels`` (shallow to deep as given): one ``<rect class="level">`` each."""
    strides = [lv.stride for lv in levels if lv.stride]
    finest = min(strides) if strides else 1
    pitch = 110.0
    width = 20 + pitch * max(len(levels), 1)
    height = TALLEST + 20 + 14 * _LABEL_LINES + 10
    body = []
    for k, lv in enumerate(levels):
        side = max(8.0, TALLEST * finest / lv.stride) if lv.stride else 8.0
        thick = _thickness(lv.channels)
        cx = 20 + pitch * k + pitch / 2
        top = 10 + (TALLEST - side) / 2
        title = f"{lv.name}: stride {lv.stride or '?'}, {lv.channels or '?'} channels" + (
            f", {lv.status}" if lv.status else "")
        body.append(svg.rect(cx - thick / 2, top, thick, side, fill=svg.stride_colour(lv.stride), title=title,
                             stroke=_OUTLINE.get(lv.status, "#333"), stroke_width=3 if lv.status == "fail" else 1.5,
                             class_=f"level {lv.status}".strip(), data_level=lv.name, data_stride=lv.stride))
        base = TALLEST + 30
        lines = [shorten(lv.name, 16), f"stride {lv.stride or '?'}", f"{lv.channels or '?'} ch", _MARK[lv.status]]
        for j, value in enumerate(lines):
            if value:
                body.append(svg.text(cx, base + 14 * j, value, anchor="middle",
                                     font_weight="bold" if j == 3 else None,
                                     fill=_OUTLINE[lv.status] if j == 3 else None))
    return svg.svg(width, height, body, label=label, cls="pyramid")
