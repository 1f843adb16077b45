"""Delivering a feature tensor in NCHW whatever layout it has (NHWC stages, token sequences)."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import GraphfeatError
from .check import ONNX_DOMAINS
from .shapes import image_input

LAYOUTS = ("nchw", "nhwc", "tokens")


def to_nchw(model: onnx.ModelProto, tensor: str, output_name: str, *, layout: str, stride: int | None = None,
            grid: tuple[int, int] | None = None, class_token: bool = False) -> None:
    """Append nodes to ``model.graph`` that write ``tensor`` (in ``layout``) as NCHW into ``output_name``.

    ``nchw``: Identity. ``nhwc``: Transpose. ``tokens`` (``(B, N, C)`` at
    ``stride``): Slice off the class token, Transpose to (B, C, N), Reshape to
    (B, C, h, w), with ``grid`` = (h, w) when the input size is static or, when
    its H/W are symbolic, computed at run time from the input's Shape (floor or
    ceil of H/stride, whichever gives N). The caller declares the output.
    """
    g = model.graph
    taken = {o for n in g.node for o in n.output} | {i.name for i in g.input} | {t.name for t in g.initializer}
    if output_name in taken:
        raise GraphfeatError(f"cannot write '{output_name}': the graph already has a tensor of that name")
    w = _Writer(output_name, taken)
    if layout == "nchw":
        w.add("Identity", [tensor], output_name)
    elif layout == "nhwc":
        w.add("Transpose", [tensor], output_name, perm=[0, 3, 1, 2])
    elif layout == "tokens":
        _tokens_to_nchw(w, model, tensor, output_name, stride, grid, class_token)
    else:
        raise GraphfeatError(f"'{tensor}' has layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    g.node.extend(w.nodes)


class _Writer:
    """The nodes of one conversion, named under ``output_name/to_nchw/``; a name the graph has is refused."""

    def __init__(self, output_name: str, taken: set[str]):
        self.output_name, self.taken = output_name, taken
        self.nodes: list[onnx.NodeProto] = []
        self._counter = iter(range(1 << 30))

    def name(self, tag: str) -> str:
        n = f"{self.output_name}/to_nchw/{tag}_{next(self._counter)}"
        if n in self.taken:
            raise GraphfeatError(f"cannot write '{self.output_name}': the graph already has a tensor '{n}'")
        return n

    def const(self, values) -> str:
        out = self.name("const")
        self.nodes.append(helper.make_node("Constant", [], [out], name=out,
                                           value=numpy_helper.from_array(np.asarray(values, np.int64))))
        return out

    def add(self, op: str, ins: list[str], out: str | None = None, **attrs) -> str:
        out = out or self.name(op)
        self.nodes.append(helper.make_node(op, ins, [out], name=f"{out}/{op}", **attrs))
        return out


def _tokens_to_nchw(w: _Writer, model: onnx.ModelProto, tensor: str, output_name: str, stride: int | None,
                    grid: tuple[int, int] | None, class_token: bool) -> None:
    """``(B, N, C)`` tokens -> NCHW: Slice off the class token, Transpose, Reshape to the grid (static, or
    computed from the input's shape)."""
    opset = next((o.version for o in model.opset_import if o.domain in ONNX_DOMAINS), 0)
    if opset < 11:
        raise GraphfeatError(f"cannot reshape tokens to NCHW in an opset-{opset} model; graphfeat needs opset >= 11")
    x = tensor
    if class_token:
        x = w.add("Slice", [x, w.const([1]), w.const([np.iinfo(np.int64).max]), w.const([1])])
    x = w.add("Transpose", [x], perm=[0, 2, 1])  # (B, C, N)
    inp = image_input(model)
    if inp.static:
        if grid is None:
            raise GraphfeatError(f"'{tensor}' has no measured grid (h, w); measure its stride first")
        target = w.const([0, 0, *grid])
    else:
        shape = w.add("Shape", [inp.name])
        hw = w.add("Gather", [shape, w.const([2, 3] if inp.layout == "nchw" else [1, 2])], axis=0)
        s = w.const([stride, stride])
        floor = w.add("Div", [hw, s])
        ceil = w.add("Div", [w.add("Add", [hw, w.const([stride - 1] * 2)]), s])
        n = w.add("Gather", [w.add("Shape", [x]), w.const([2])], axis=0)
        floor_n = w.add("ReduceProd", [floor], keepdims=1)
        grid_at_run = w.add("Where", [w.add("Equal", [floor_n, n]), floor, ceil])
        target = w.add("Concat", [w.const([0, 0]), grid_at_run], axis=0)
    w.add("Reshape", [x, target], output_name)

