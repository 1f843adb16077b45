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
    nodes: list[onnx.NodeProto] = []
    counter = iter(range(1 << 30))

    def name(tag: str) -> str:
        n = f"{output_name}/to_nchw/{tag}_{next(counter)}"
        if n in taken:
            raise GraphfeatError(f"cannot write '{output_name}': the graph already has a tensor '{n}'")
        return n

    def const(values) -> str:
        out = name("const")
        nodes.append(helper.make_node("Constant", [], [out], name=out,
                                      value=numpy_helper.from_array(np.asarray(values, np.int64))))
        return out

    def add(op: str, ins: list[str], out: str | None = None, **attrs) -> str:
        out = out or name(op)
        nodes.append(helper.make_node(op, ins, [out], name=f"{out}/{op}", **attrs))
        return out

    if layout == "nchw":
        add("Identity", [tensor], output_name)
    elif layout == "nhwc":
        add("Transpose", [tensor], output_name, perm=[0, 3, 1, 2])
    elif layout == "tokens":
        opset = next((o.version for o in model.opset_import if o.domain in ONNX_DOMAINS), 0)
        if opset < 11:
            raise GraphfeatError(f"cannot reshape tokens to NCHW in an opset-{opset} model; graphfeat needs opset >= 11")
        x = tensor
        if class_token:
            x = add("Slice", [x, const([1]), const([np.iinfo(np.int64).max]), const([1])])
        x = add("Transpose", [x], perm=[0, 2, 1])  # (B, C, N)
        inp = image_input(model)
        if inp.static:
            if grid is None:
                raise GraphfeatError(f"'{tensor}' has no measured grid (h, w); measure its stride first")
            target = const([0, 0, *grid])
        else:
            shape = add("Shape", [inp.name])
            axes = [2, 3] if inp.layout == "nchw" else [1, 2]
            hw = add("Gather", [shape, const(axes)], axis=0)
            s = const([stride, stride])
            floor = add("Div", [hw, s])
            ceil = add("Div", [add("Add", [hw, const([stride - 1] * 2)]), s])
            n = add("Gather", [add("Shape", [x]), const([2])], axis=0)
            floor_n = add("ReduceProd", [floor], keepdims=1)
            grid = add("Where", [add("Equal", [floor_n, n]), floor, ceil])
            target = add("Concat", [const([0, 0]), grid], axis=0)
        add("Reshape", [x, target], output_name)
    else:
        raise GraphfeatError(f"'{tensor}' has layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    g.node.extend(nodes)

