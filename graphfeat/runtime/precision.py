"""What a level is computed in (float32, float16, bfloat16, quantised), and the criterion that follows.

``graphfeat verify`` judges each level by the precision its computation
passed through, not by one global tolerance. The defaults below were measured
at 64 px on exports of resnet18, efficientnet_b0, convnext_tiny and
mobilenet_v3_large_100 (README, "Verify: precision, quantisation, providers"):

============  ===================================  ================================================
precision     criterion (default)                  worst measured
============  ===================================  ================================================
float32       max|a - r| <= 1e-4 x max|r|          2.4e-5 (rexnet_10, 224 px)
float16       max|a - r| <= 2e-2 x max|r|          5.0e-3 (mobilenet_v3_large_100, fp16 converter)
bfloat16      max|a - r| <= 1e-1 x max|r|          2.3e-2 (mobilenet_v3_large_100, OpenVINO bf16)
quantised     cosine >= 0.95 and SQNR >= 10 dB     0.983 / 14.6 dB (efficientnet_b0, ORT QDQ int8)
============  ===================================  ================================================

A level's *precision* is the loosest of: the element type of the output
tensor, and the float types its computation passes through (initialisers,
``Cast`` targets and ``Constant`` values among its ancestors). A level is
*quantised* when any ancestor is a quantisation op (QDQ pairs, ``QLinear*``,
the integer ops, and their ``com.microsoft`` forms): its elementwise error is
then no measure of health, so cosine similarity and SQNR
(``10 log10(sum r^2 / sum (r - a)^2)``) decide instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import onnx

from ..graph import is_quant_op, node_inputs

#: default max error relative to the level's largest magnitude, by the level's precision
DEFAULT_RTOLS = {"float64": 1e-4, "float32": 1e-4, "float16": 2e-2, "bfloat16": 1e-1}
#: default floors for a quantised level
DEFAULT_MIN_COSINE = 0.95
DEFAULT_MIN_SQNR = 10.0

#: float element types from most to least precise
_FLOATS = {onnx.TensorProto.DOUBLE: "float64", onnx.TensorProto.FLOAT: "float32",
           onnx.TensorProto.FLOAT16: "float16", onnx.TensorProto.BFLOAT16: "bfloat16"}
_ORDER = ["float64", "float32", "float16", "bfloat16"]
@dataclass(frozen=True)
class Precision:
    """What one level is computed in: ``dtype`` of the output, ``compute`` (the loosest float type on its
    path), ``quantized`` (a quantisation op on its path)."""

    dtype: str
    compute: str
    quantized: bool = False

    @property
    def label(self) -> str:
        if self.quantized:
            return "quantized"
        return self.compute if self.compute == self.dtype else f"{self.compute} compute, {self.dtype} output"


@dataclass(frozen=True)
class Criterion:
    """How a level passes: elementwise (``max_abs <= atol + rtol * max|ref|``) and/or, for a quantised
    level, ``cosine >= min_cosine`` and ``sqnr >= min_sqnr``. ``reason`` says why it applies."""

    rtol: float | None
    atol: float = 0.0
    min_cosine: float | None = None
    min_sqnr: float | None = None
    reason: str = ""

    def describe(self) -> str:
        parts = []
        if self.min_cosine is not None:
            parts.append(f"cosine >= {self.min_cosine:g}")
        if self.min_sqnr is not None:
            parts.append(f"SQNR >= {self.min_sqnr:g} dB")
        if self.rtol is not None:
            parts.append(f"rtol {self.rtol:g}" + (f" + atol {self.atol:g}" if self.atol else ""))
        elif self.atol:
            parts.append(f"atol {self.atol:g}")
        return " and ".join(parts) + (f" ({self.reason})" if self.reason else "")

    def as_dict(self) -> dict:
        return {"rtol": self.rtol, "atol": self.atol, "min_cosine": self.min_cosine, "min_sqnr": self.min_sqnr,
                "reason": self.reason, "text": self.describe()}


def _loosest(types: Sequence[str]) -> str:
    known = [t for t in types if t in _ORDER]
    return max(known, key=_ORDER.index) if known else "float32"


def level_precisions(model: onnx.ModelProto, tensors: Sequence[str]) -> dict[str, Precision]:
    """The `Precision` of each of ``tensors`` (graph outputs or intermediates) of ``model``."""
    producer: dict[str, onnx.NodeProto] = {}
    for node in model.graph.node:
        for o in node.output:
            if o:
                producer[o] = node
    inits = {t.name: t.data_type for t in model.graph.initializer}
    declared = {vi.name: vi.type.tensor_type.elem_type for vi in
                list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output)
                if vi.type.HasField("tensor_type")}
    out: dict[str, Precision] = {}
    for tensor in tensors:
        seen: set[str] = set()
        stack = [tensor]
        types: list[str] = []
        quantized = False
        while stack:
            name = stack.pop()
            if name in seen or not name:
                continue
            seen.add(name)
            if name in inits:
                types.append(_FLOATS.get(inits[name], ""))
                continue
            node = producer.get(name)
            if node is None:  # a graph input
                types.append(_FLOATS.get(declared.get(name, 0), ""))
                continue
            quantized = quantized or is_quant_op(node)
            for a in node.attribute:
                if node.op_type == "Cast" and a.name == "to":
                    types.append(_FLOATS.get(a.i, ""))
                elif a.type == onnx.AttributeProto.TENSOR:
                    types.append(_FLOATS.get(a.t.data_type, ""))
            stack.extend(node_inputs(node))
        dtype = _FLOATS.get(declared.get(tensor, 0), "")
        if not dtype:  # not declared: the loosest float type seen stands in
            dtype = _loosest(types)
        out[tensor] = Precision(dtype, _loosest(types + [dtype]), quantized)
    return out


def criterion_for(precision: Precision, *, rtol: float | None = None, atol: float = 0.0,
                  min_cosine: float | None = None, min_sqnr: float | None = None) -> Criterion:
    """The criterion a level of ``precision`` is judged by; explicit arguments override the defaults.

    A quantised level is judged by cosine and SQNR (defaults `DEFAULT_MIN_COSINE`,
    `DEFAULT_MIN_SQNR`); an explicit ``rtol`` adds an elementwise check to them. Any other level
    is judged elementwise, at ``rtol`` or the default for its precision (`DEFAULT_RTOLS`), plus any
    explicit cosine/SQNR floor.
    """
    if precision.quantized:
        return Criterion(rtol, atol, DEFAULT_MIN_COSINE if min_cosine is None else min_cosine,
                         DEFAULT_MIN_SQNR if min_sqnr is None else min_sqnr,
                         "quantized" + ("; --rtol given" if rtol is not None else ""))
    if rtol is None:
        return Criterion(DEFAULT_RTOLS[precision.compute], atol, min_cosine, min_sqnr, precision.label)
    return Criterion(rtol, atol, min_cosine, min_sqnr, "--rtol given")
