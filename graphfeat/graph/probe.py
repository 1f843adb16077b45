"""A tiny ONNX Runtime helper for the graph and names layers: types ORT infers, tensors it computes.

ONNX shape inference cannot type the outputs of operators outside the ONNX
domains (``com.microsoft`` FusedConv, QuickGelu, ...); ONNX Runtime can, since
it registers their schemas. The run helper exposes chosen internal tensors
(untyped: ORT types them itself) and runs the model once. The heavier runtime
layer (:mod:`graphfeat.runtime`) sits above this one and is not imported.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import onnx

from ..errors import GraphfeatError

#: ORT's element type strings -> ONNX TensorProto element types
_ORT_TYPES = {
    "tensor(float)": onnx.TensorProto.FLOAT, "tensor(float16)": onnx.TensorProto.FLOAT16,
    "tensor(double)": onnx.TensorProto.DOUBLE, "tensor(bfloat16)": onnx.TensorProto.BFLOAT16,
    "tensor(int8)": onnx.TensorProto.INT8, "tensor(uint8)": onnx.TensorProto.UINT8,
    "tensor(int16)": onnx.TensorProto.INT16, "tensor(uint16)": onnx.TensorProto.UINT16,
    "tensor(int32)": onnx.TensorProto.INT32, "tensor(int64)": onnx.TensorProto.INT64,
    "tensor(bool)": onnx.TensorProto.BOOL,
}
#: ops of the ONNX domains ("" / "ai.onnx"), for which onnx's own tools are complete
STANDARD_DOMAINS = ("", "ai.onnx")


def nonstandard_domains(model: onnx.ModelProto) -> list[str]:
    """The operator domains the model's top-level nodes use beyond ONNX's own, sorted."""
    return sorted({n.domain for n in model.graph.node if n.domain not in STANDARD_DOMAINS})


def _ort():
    try:
        import onnxruntime
    except ImportError:  # pragma: no cover - a core dependency
        raise GraphfeatError("onnxruntime is needed for this step but is not installed") from None
    return onnxruntime


def ort_session(source: onnx.ModelProto | bytes | str | os.PathLike, optimize: bool = True):
    """An ONNX Runtime CPU session on a model (proto, serialized bytes, or path); GraphfeatError if ORT refuses.

    ``optimize``: ORT's basic level (constant folding, redundant nodes; never removes a graph
    output); otherwise none at all."""
    ort = _ort()
    so = ort.SessionOptions()
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_BASIC if optimize
                                   else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    so.log_severity_level = 3
    if isinstance(source, onnx.ModelProto):
        source = source.SerializeToString()
    elif isinstance(source, os.PathLike):
        source = os.fspath(source)
    try:
        return ort.InferenceSession(source, so, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own exception types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise GraphfeatError(f"ONNX Runtime cannot load the model: {first[:400]}") from None


def ort_output_types(session) -> dict[str, onnx.TypeProto]:
    """The graph outputs' types as ORT infers them (element type, dims; symbolic dims by name)."""
    types = {}
    for out in session.get_outputs():
        elem = _ORT_TYPES.get(out.type)
        if elem is None:
            continue
        tp = onnx.TypeProto()
        tp.tensor_type.elem_type = elem
        shape = tp.tensor_type.shape
        shape.SetInParent()
        for d in out.shape or []:
            dim = shape.dim.add()
            if isinstance(d, int) and d >= 0:
                dim.dim_value = d
            elif isinstance(d, str) and d:
                dim.dim_param = d
        types[out.name] = tp
    return types


def run_tensors(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], names: Sequence[str]
                ) -> dict[str, np.ndarray]:
    """Run ``model`` (a full model with its weights; not modified) once on ONNX Runtime with the
    top-level tensors ``names`` as its outputs, untyped so that ORT types them (contrib ops too)."""
    original = list(model.graph.output)  # swapped for the run and restored: no copy of the weights
    del model.graph.output[:]
    for name in dict.fromkeys(names):
        model.graph.output.add().name = name
    try:
        data = model.SerializeToString()
    finally:
        del model.graph.output[:]
        model.graph.output.extend(original)
    session = ort_session(data)
    inputs = {i.name: i.type for i in session.get_inputs()}
    cast = {k: (v.astype(np.float16) if inputs.get(k) == "tensor(float16)" else v) for k, v in feeds.items()}
    try:
        values = session.run(None, cast)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise GraphfeatError(f"ONNX Runtime cannot run the model on the probe input: {first[:400]}") from None
    return {o.name: v for o, v in zip(session.get_outputs(), values)}
