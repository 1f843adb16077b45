"""``graphfeat info --html``: the stride map of a graph, for picking ``--tensors`` in a foreign file.

It draws what ``info`` and ``cut --strides`` already computed
(`graphfeat.info.stride_map`): the trunk from input to head, one cell
per tensor coloured by its measured stride, the candidates outlined, the
rule's pick at each stride and the file's own levels marked; then the same as
tables with each tensor's op, shape and layout. Nothing is measured again here.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..info import MapTensor, StrideMap
from . import svg
from .environment import command
from .markup import esc, shorten
from .output import write_report
from .page import Markup, facts, page, table
from .pyramid import PyramidLevel, pyramid_svg

#: cells per row of the trunk strip, and a cell's size
PER_ROW, CELL_W, CELL_H, GAP = 32, 24, 30, 3
TRUNK_HEADER = ("#", "tensor", "op", "shape", "layout", "stride", "part", "marks")
LEVEL_HEADER = ("level", "tensor", "chs", "reduction", "stride", "layout", "shape", "resolved by", "note")


def _marks(t: MapTensor) -> str:
    marks = [f"level {name}" for name in t.levels]
    if t.deepest:
        marks.append(f"--strides {t.stride}{' --neck' if t.part == 'neck' else ''} takes this")
    elif t.candidate:
        marks.append("candidate")
    return "; ".join(marks)


def _cell(t: MapTensor, x: float, y: float) -> list[str]:
    dashed = t.part == "head" or t.stride is None
    title = (f"{t.tensor} ({t.op}), shape {t.shape}, layout {t.layout or '?'}, stride {t.stride or '?'}, {t.part}"
             + (f"; {_marks(t)}" if _marks(t) else ""))
    out = [svg.rect(x, y, CELL_W, CELL_H, fill=svg.stride_colour(t.stride), title=title,
                    stroke="#111" if t.candidate else "#999", stroke_width=2 if t.candidate else 1,
                    stroke_dasharray="3 2" if dashed else None, class_=f"tensor {t.part}", data_tensor=t.tensor,
                    data_stride=t.stride)]
    if t.deepest:
        out.append(svg.text(x + CELL_W / 2, y - 3, "\u25bc", size=10, anchor="middle", class_="pick"))
    if t.levels:
        out.append(f'<circle cx="{x + CELL_W / 2:.1f}" cy="{y + CELL_H / 2:.1f}" r="6" fill="#111" class="chosen">'
                   f"<title>{esc(', '.join(t.levels))}</title></circle>")
    return out


def trunk_svg(tensors: Sequence[MapTensor]) -> str:
    """The strip: the input and trunk in order, wrapped every `PER_ROW` cells, then the neck's outputs
    and any level off the trunk on rows of their own."""
    groups = [[t for t in tensors if t.part in ("input", "backbone", "head")],
              [t for t in tensors if t.part == "neck"], [t for t in tensors if t.part == "branch"]]
    names = ["trunk", "neck outputs", "levels off the trunk"]
    body, y = [], 14.0
    for name, group in zip(names, groups):
        if not group:
            continue
        body.append(svg.text(4, y, name, size=11, font_weight="bold"))
        y += 16
        for k, t in enumerate(group):
            if k and k % PER_ROW == 0:
                y += CELL_H + 16
            body += _cell(t, 4 + (k % PER_ROW) * (CELL_W + GAP), y)
        y += CELL_H + 22
    return svg.svg(8 + PER_ROW * (CELL_W + GAP), y, body, label="stride map of the trunk", cls="stride-map")


def _legend(tensors: Sequence[MapTensor]) -> str:
    strides = sorted({t.stride for t in tensors if t.stride})
    items = [f'<span><i class="swatch" style="background:{svg.stride_colour(s)}"></i>stride {s}</span>'
             for s in strides]
    items.append(f'<span><i class="swatch" style="background:{svg.UNPLACED}"></i>no stride</span>')
    items.append("<span>\u25bc what <code>--strides S</code> takes</span><span>\u25cf a level of the file</span>"
                 "<span>bold outline: a candidate for <code>--tensors</code></span><span>dashed: head</span>")
    return f'<p class="legend">{"".join(items)}</p>'


def _pyramid(smap: StrideMap) -> str:
    if smap.levels:
        drawn = [PyramidLevel(r.name, r.stride or r.reduction, r.chs) for r in smap.levels]
        what = "the file's levels"
    else:
        drawn = [PyramidLevel(shorten(t.tensor, 60), t.stride, t.channels) for t in smap.tensors if t.deepest]
        what = "what --strides takes at each stride"
    return f'<p class="note">{esc(what)}</p>' + pyramid_svg(drawn, label=what)


def _tables(smap: StrideMap) -> list[str]:
    out = []
    if smap.levels:
        rows = [[r.name, r.tensor, r.chs, r.reduction, r.stride, r.layout, r.shape, r.resolved_by, r.note]
                for r in smap.levels]
        attrs = [{"class_": "level", "data_level": r.name} for r in smap.levels]
        out += ["<h2>Levels</h2>", table(LEVEL_HEADER, rows, cls="levels", row_attrs=attrs,
                                         col_cls=("name", "name", "num", "num", "num", None, None, None, "wrap"))]
    rows = [[t.position, t.tensor, t.op, t.shape, t.layout, t.stride, t.part, _marks(t)] for t in smap.tensors]
    attrs = [{"class_": f"tensor {t.part}" + (" candidate" if t.candidate else ""), "data_tensor": t.tensor}
             for t in smap.tensors]
    out += ["<h2>Trunk tensors</h2>", table(TRUNK_HEADER, rows, cls="trunk", row_attrs=attrs,
                                             col_cls=("num", "name", None, None, None, "num", None, "wrap"))]
    return out


def stride_map_html(smap: StrideMap, model: str | os.PathLike, *, argv: Sequence[str] | None = None) -> str:
    """The page for ``smap`` of ``model``, made by the command ``argv`` (this process's when None)."""
    name = Path(model).name
    candidates = sum(t.candidate for t in smap.tensors)
    head = [f"<h1>graphfeat info: {esc(name)}</h1>",
            facts([("model", str(model)), ("input shape (measured at)", smap.input_shape),
                   ("trunk tensors", sum(t.part in ("backbone", "head") for t in smap.tensors)),
                   ("candidates", candidates), ("levels of the file", len(smap.levels)),
                   ("command", Markup(f"<code>{esc(command(argv))}</code>"))]),
            f"<p>Pick levels with <code>graphfeat cut {esc(name)} --tensors T ...</code> (any candidate) or "
            "<code>--strides S ...</code> (the marked one at each stride).</p>"]
    if smap.note:
        head.append(f'<p class="note">No stride map: {esc(smap.note)}</p>')
    body = head + ["<h2>Stride map</h2>", _legend(smap.tensors), trunk_svg(smap.tensors),
                   "<h2>Pyramid</h2>", _pyramid(smap)] + _tables(smap)
    return page(f"graphfeat info: {name}", body)


def write_stride_map(path: str | os.PathLike, smap: StrideMap, model: str | os.PathLike, *,
                     argv: Sequence[str] | None = None, inputs: Sequence[str | os.PathLike | None] = ()) -> Path:
    """Write `stride_map_html` to ``path`` atomically; never over ``model`` or one of ``inputs``."""
    return write_report(path, stride_map_html(smap, model, argv=argv), [model, *inputs])
