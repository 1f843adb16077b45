"""Types and shapes as plain Python: a TypeProto's dims, and the model's real (image) input."""
from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass

import numpy as np
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


def real_inputs(graph: onnx.GraphProto, constant: Container[str] | None = None) -> list[onnx.ValueInfoProto]:
    """The graph inputs a caller feeds: every ``graph.input`` that is not an initializer (old IRs list them).
    ``constant``: the names of the graph's initializers and sparse initializers, when the caller has them."""
    if constant is None:
        constant = {t.name for t in graph.initializer} | {s.values.name for s in graph.sparse_initializer}
    return [i for i in graph.input if i.name not in constant]


def input_spec(model: onnx.ModelProto) -> tuple[str, list[int | None]]:
    """Name and static dims (None where symbolic or unknown) of the model's first real input."""
    inputs = real_inputs(model.graph)
    if not inputs:
        raise GraphfeatError("the model has no graph input to feed")
    dims = shape_of(inputs[0].type) or []
    return inputs[0].name, [d if isinstance(d, int) else None for d in dims]


#: input element types a float feed is cast to; any other (a uint8 image, bfloat16 that numpy lacks) gets float32
_FLOAT_INPUTS = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE)


def input_dtype(model: onnx.ModelProto, name: str | None = None) -> np.dtype:
    """The numpy type a float feed of input ``name`` (default: the first real input) is cast to: the float type
    the input declares (an fp16 file's float16), else float32."""
    name = name or input_spec(model)[0]
    elem = next((i.type.tensor_type.elem_type for i in model.graph.input if i.name == name), 0)
    return onnx.helper.tensor_dtype_to_np_dtype(elem) if elem in _FLOAT_INPUTS else np.dtype(np.float32)


@dataclass(frozen=True)
class ImageInput:
    """The image input of a backbone: its name, layout (``nchw`` or ``nhwc``) and declared dims."""

    name: str
    layout: str
    dims: tuple

    @property
    def hw(self) -> tuple:
        """The declared (H, W): ints, or ``dim_param`` names / None where symbolic."""
        return (self.dims[2], self.dims[3]) if self.layout == "nchw" else (self.dims[1], self.dims[2])

    @property
    def static(self) -> bool:
        return all(isinstance(d, int) for d in self.hw)

    def size(self, probe: tuple[int, int]) -> tuple[int, int]:
        """(H, W) to measure at: the static dims, ``probe``'s where they are symbolic."""
        return tuple(d if isinstance(d, int) else p for d, p in zip(self.hw, probe))  # type: ignore[return-value]

    def concrete(self, size: tuple[int, int]) -> tuple[int, ...]:
        """The input shape at ``size`` (H, W): batch 1 where it is symbolic."""
        b = self.dims[0] if isinstance(self.dims[0], int) else 1
        h, w = size
        return (b, self.dims[1], h, w) if self.layout == "nchw" else (b, h, w, self.dims[3])


def image_input(model: onnx.ModelProto) -> ImageInput:
    """The first rank-4 real input and its layout: ``(B, H, W, C)`` when its last dim is a static 1-4 and
    its second is not, else ``(B, C, H, W)``. A graph without one is refused (GraphfeatError)."""
    inputs = real_inputs(model.graph)
    if not inputs:
        raise GraphfeatError("the graph has no input; graphfeat needs an image input (B, C, H, W)")
    ranked = [(vi.name, shape_of(vi.type)) for vi in inputs]
    four = [(n, s) for n, s in ranked if s is not None and len(s) == 4]
    if not four:
        name, dims = ranked[0]
        raise GraphfeatError(
            f"the graph input '{name}' (shape {dims}) has no spatial dims; graphfeat measures strides from an "
            "image input (B, C, H, W) or (B, H, W, C) -- cut this model with --tensors instead")
    name, dims = four[0]

    def colours(d) -> bool:
        return isinstance(d, int) and 1 <= d <= 4

    layout = "nhwc" if colours(dims[3]) and not colours(dims[1]) else "nchw"
    inp = ImageInput(name, layout, tuple(dims))
    if not isinstance(dims[1 if layout == "nchw" else 3], int):
        raise GraphfeatError(f"the graph input '{name}' has a symbolic channel dim {dims}; graphfeat needs a static one")
    if any(isinstance(d, int) and d < 2 for d in inp.hw):
        raise GraphfeatError(f"the graph input '{name}' has shape {dims}: its H/W are not an image size, so it "
                             "has no spatial dims to measure strides from")
    return inp
