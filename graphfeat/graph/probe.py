"""ONNX Runtime for the layers that need it: sessions (`ort_session`, the one builder, under the named
`POLICIES`), the types ORT infers, the tensors it computes (`ort_runner`, the one runner).

ONNX shape inference cannot type the outputs of operators outside the ONNX
domains (``com.microsoft`` FusedConv, QuickGelu, ...); ONNX Runtime can, since
it registers their schemas. The runner exposes chosen internal tensors
(untyped: ORT types them itself, `expose`) and runs the model, handing the large
weights to ORT as arrays rather than serialising them into the model's bytes
(`session_model`). The heavier runtime layer (`graphfeat.runtime`)
sits above this one, builds its deploy-time sessions with `ort_session`,
and is not imported here.
"""
from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import GraphfeatError, first_line
from ..onnxfile import holds_data
from .shapes import input_dtype

#: ORT's element type strings -> ONNX TensorProto element types
_ORT_TYPES = {
    "tensor(float)": onnx.TensorProto.FLOAT, "tensor(float16)": onnx.TensorProto.FLOAT16,
    "tensor(double)": onnx.TensorProto.DOUBLE, "tensor(bfloat16)": onnx.TensorProto.BFLOAT16,
    "tensor(int8)": onnx.TensorProto.INT8, "tensor(uint8)": onnx.TensorProto.UINT8,
    "tensor(int16)": onnx.TensorProto.INT16, "tensor(uint16)": onnx.TensorProto.UINT16,
    "tensor(int32)": onnx.TensorProto.INT32, "tensor(int64)": onnx.TensorProto.INT64,
    "tensor(bool)": onnx.TensorProto.BOOL,
}
#: initializers of at least this many elements go to ORT as arrays (`session_model`); smaller ones
#: (shapes, scales, sizes: ORT reads their values while it builds the graph) stay in the model's bytes
SHARE_MIN_ELEMENTS = 1024
#: element types handed over as arrays: those numpy holds natively (bfloat16, float8, 4-bit stay embedded)
_SHAREABLE = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.INT8,
              onnx.TensorProto.UINT8, onnx.TensorProto.INT16, onnx.TensorProto.UINT16, onnx.TensorProto.INT32,
              onnx.TensorProto.INT64, onnx.TensorProto.BOOL}
#: where the shared initializers claim their data lives (a name ORT never opens: it is given the arrays)
_IN_MEMORY = "graphfeat-in-memory"
def _ort():
    try:
        import onnxruntime
    except ImportError:  # pragma: no cover - a core dependency
        raise GraphfeatError("onnxruntime is needed for this step but is not installed") from None
    return onnxruntime


#: ``SessionPolicy.optimize`` -> ONNX Runtime's optimisation levels
_LEVELS = {"all": "ORT_ENABLE_ALL", "basic": "ORT_ENABLE_BASIC", "none": "ORT_DISABLE_ALL"}


@dataclass(frozen=True)
class SessionPolicy:
    """How ONNX Runtime runs one kind of session; `POLICIES` names each kind and says why."""

    optimize: str  #: "all" (ORT's default), "basic" (folds constants, never drops a graph output) or "none"
    spin: bool  #: threads spin-wait between ops: ORT's default, pays off over many runs, costs on shared cores
    prepack: bool  #: weights pre-packed for the matrix kernels at load: ORT's default, costs load time and memory
    shared_threads: bool  #: intra-op threads: the caller's count (a worker's share of the cores), else ORT's own


#: every ORT session graphfeat and the exporters build runs under one of these (`ort_session`)
POLICIES = {
    # runtime.session, FeaturePyramid, verify: sessions that run many times keep ORT's defaults; under
    # ``graphfeat export --jobs N`` a worker's share of the cores (the runtime layer passes it)
    "deploy": SessionPolicy("all", spin=True, prepack=True, shared_threads=True),
    # an export's proofs and runtime.run_onnxruntime: the graph as deployed, run a few times; pre-packing
    # copies every weight for runs no faster at batch 1
    "proof": SessionPolicy("all", spin=True, prepack=False, shared_threads=True),
    # graph analysis (the names layer's probe runs): one run, threads asleep between ops on shared cores
    "probe": SessionPolicy("basic", spin=False, prepack=False, shared_threads=False),
    # the types and shapes of a weight-free skeleton: the graph as written, loaded once
    "shapes": SessionPolicy("none", spin=False, prepack=False, shared_threads=False),
}


def ort_session(source: onnx.ModelProto | bytes | str | os.PathLike, policy: str = "probe",
                initializers: Mapping[str, np.ndarray] | None = None, *, providers: Sequence | None = None,
                threads: int | None = None):
    """An ONNX Runtime session on a model (proto, serialized bytes, or path); GraphfeatError if ORT refuses.

    The one place graphfeat and the exporters build an ORT session (`ort_runner`, and the runtime
    layer's `graphfeat.runtime.session`). ``policy``: a name in `POLICIES`. ``initializers``: the
    arrays of the model's initializers that `session_model` left out of its bytes (ORT reads them from
    there; keep them alive with the session). ``providers``: ORT's execution providers (default: the CPU).
    ``threads``: ORT's intra-op threads, for a policy with ``shared_threads`` (None: ORT's own choice).
    Measurements behind the policies:
    bench/README.md, "Measurements behind the code's rules"."""
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {sorted(POLICIES)}, got {policy!r}")
    rule = POLICIES[policy]
    if threads and not rule.shared_threads:
        raise ValueError(f"the {policy!r} policy keeps ORT's own thread count")
    ort = _ort()
    so = ort.SessionOptions()
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVELS[rule.optimize])
    so.log_severity_level = 4  # a failure becomes one GraphfeatError, not an ORT log line as well
    if not rule.spin:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if not rule.prepack:
        so.add_session_config_entry("session.disable_prepacking", "1")
    if threads:
        so.intra_op_num_threads = threads
    if initializers:
        so.add_external_initializers(list(initializers),
                                     [ort.OrtValue.ortvalue_from_numpy(a) for a in initializers.values()])
    if isinstance(source, onnx.ModelProto):
        source = source.SerializeToString()
    elif isinstance(source, os.PathLike):
        source = os.fspath(source)
    try:
        with warnings.catch_warnings():  # ORT's "not in available provider names": the caller says it its way
            warnings.simplefilter("ignore")
            return ort.InferenceSession(source, so, providers=list(providers or ["CPUExecutionProvider"]))
    except Exception as exc:  # ORT raises its own exception types
        raise GraphfeatError(f"ONNX Runtime cannot load the model: {first_line(exc, 400)}") from None


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


def session_model(model: onnx.ModelProto, outputs: Sequence[str] | None = None
                  ) -> tuple[bytes, dict[str, np.ndarray]]:
    """``model`` (not modified) as ORT session input: the serialized model, whose large initializers are
    marked as external data, and those initializers' arrays by name (for `ort_session`).
    ``outputs``: the top-level tensors to make its only outputs (`expose`); None keeps the model's own.

    Serialising a model's weights costs time in proportion to their size; this copies each large weight
    once, into an array handed to ORT, and serialises only the graph. ORT 1.32 still copies the arrays
    while it loads, so the session holds as much as one made from the serialized model, but it loads
    sooner (bench/README.md, "Measurements behind the code's rules"). Initializers without their data (a
    skeleton's) or already external are left as they are."""
    head = onnx.ModelProto()
    _copy_fields(head, model, skip={"graph"})
    graph = head.graph
    _copy_fields(graph, model.graph, skip={"initializer"} if outputs is None else {"initializer", "output"})
    if outputs is not None:
        expose(graph, outputs)
    arrays: dict[str, np.ndarray] = {}
    for tensor in model.graph.initializer:
        if (tensor.data_type not in _SHAREABLE or math.prod(tensor.dims) < SHARE_MIN_ELEMENTS
                or tensor.data_location == onnx.TensorProto.EXTERNAL or not holds_data(tensor)):
            graph.initializer.add().CopyFrom(tensor)
            continue
        array = _as_array(tensor)
        if array is None:  # data that disagrees with its dims: ORT says so when it loads it
            graph.initializer.add().CopyFrom(tensor)
            continue
        stub = graph.initializer.add()
        stub.name, stub.data_type = tensor.name, tensor.data_type
        stub.dims.extend(tensor.dims)
        stub.data_location = onnx.TensorProto.EXTERNAL
        entry = stub.external_data.add()
        entry.key, entry.value = "location", _IN_MEMORY
        arrays[tensor.name] = array
    return head.SerializeToString(), arrays


def _as_array(tensor: onnx.TensorProto) -> np.ndarray | None:
    """The tensor's values (``onnx.numpy_helper.to_array``); None if its data does not fit its dims."""
    try:
        return numpy_helper.to_array(tensor)
    except (ValueError, TypeError):
        return None


def _copy_fields(dst, src, skip: set[str]) -> None:
    """Copy every set field of message ``src`` into ``dst`` (same type) but those named in ``skip``."""
    for fd, value in src.ListFields():
        if fd.name in skip:
            continue
        if _repeated(fd):
            getattr(dst, fd.name).extend(value)
        elif fd.type == fd.TYPE_MESSAGE:
            getattr(dst, fd.name).CopyFrom(value)
        else:
            setattr(dst, fd.name, value)


def _repeated(fd) -> bool:
    flag = getattr(fd, "is_repeated", None)  # protobuf >= 5.x; ``label`` before (and deprecated since)
    return bool(flag) if flag is not None else fd.label == fd.LABEL_REPEATED


def expose(graph: onnx.GraphProto, names: Sequence[str]) -> None:
    """Make the top-level tensors ``names`` (each once, in order) ``graph``'s only outputs, untyped.

    The one way graphfeat exposes tensors for a run: ORT types untyped outputs itself (contrib ops too),
    so no shape inference is needed, and no node is added or renamed."""
    del graph.output[:]
    for name in dict.fromkeys(names):
        graph.output.add().name = name


def ort_runner(model: onnx.ModelProto | str | os.PathLike, outputs: Sequence[str] | None = None, *,
               policy: str = "probe", threads: int | None = None
               ) -> Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]:
    """``run(feeds) -> {output name: array}``: ``model`` on one ONNX Runtime session with ``outputs``
    as its outputs; the one way graphfeat and the exporters run a model for chosen tensors.

    ``model``: a proto (not modified; `session_model` exposes ``outputs`` on its serialized graph and
    hands ORT its large weights as arrays, kept alive with ``run``), or the path of a file whose graph
    outputs ``outputs`` picks from. None: the model's own outputs. ``policy``, ``threads``: see
    `ort_session`. A load that fails is a GraphfeatError; a run that fails raises ORT's own exception,
    for each caller to say what failed in its words. ``run`` may be called again, on other feeds."""
    arrays = None
    if isinstance(model, onnx.ModelProto):
        model, arrays = session_model(model, outputs)
    session = ort_session(model, policy, arrays, threads=threads)
    names = [o.name for o in session.get_outputs()]
    if outputs is not None and arrays is None:  # a path or serialized model: pick among its outputs
        names = list(dict.fromkeys(outputs))

    def run(feeds: Mapping[str, np.ndarray], _weights=arrays) -> dict[str, np.ndarray]:
        return dict(zip(names, session.run(names, dict(feeds))))

    return run


def run_tensors(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], names: Sequence[str]
                ) -> dict[str, np.ndarray]:
    """Run ``model`` (a full model with its weights; not modified) once on ONNX Runtime (`ort_runner`,
    the ``probe`` policy) with the top-level tensors ``names`` as its outputs, float feeds cast to the type
    their input declares (`shapes.input_dtype`)."""
    run = ort_runner(model, names)
    cast = {k: (v.astype(input_dtype(model, k), copy=False) if np.issubdtype(v.dtype, np.floating) else v)
            for k, v in feeds.items()}
    try:
        return run(cast)
    except Exception as exc:
        raise GraphfeatError(f"ONNX Runtime cannot run the model on the probe input: {first_line(exc, 400)}") from None
