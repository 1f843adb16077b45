"""Types and shapes as plain Python: a TypeProto's dims, and the model's real input."""
from __future__ import annotations

import onnx

from ..errors import GraphfeatError

Shape = list[int | str | None]


def shape_of(tp: onnx.TypeProto | None) -> Shape | None:
    """A TypeProto's shape: ints, ``dim_param`` names, None for unknown dims; None if no shape."""
    if tp is None or not tp.HasField("tensor_type") or not tp.tensor_type.HasField("shape"):
        return None
    dims: Shape = []
    for d in tp.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return dims


def real_inputs(graph: onnx.GraphProto) -> list[onnx.ValueInfoProto]:
    """The graph inputs a caller feeds: every ``graph.input`` that is not an initializer (old IRs list them)."""
    constant = {t.name for t in graph.initializer} | {s.values.name for s in graph.sparse_initializer}
    return [i for i in graph.input if i.name not in constant]


def input_spec(model: onnx.ModelProto) -> tuple[str, list[int | None]]:
    """Name and static dims (None where symbolic or unknown) of the model's first real input."""
    inputs = real_inputs(model.graph)
    if not inputs:
        raise GraphfeatError("the model has no graph input to feed")
    dims = shape_of(inputs[0].type) or []
    return inputs[0].name, [d if isinstance(d, int) else None for d in dims]
