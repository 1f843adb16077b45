"""Shape inference and ``onnx.checker`` on a weight-free *skeleton* of a model.

Both tools serialize the model they are given. For a model with hundreds of
megabytes of weights that copy would cost as much as the cut itself, and for
external-data models the weights are not in memory at all. The skeleton keeps
the graph, small tensors (shape constants that inference folds) and the
dims/dtype of every large tensor, whose data it points at a sparse file of the
right size. Inference and the full check see the same types and shapes as on
the real model; no weight byte is read or copied.

**Rule: the input's strict inference stands for the result's** (`check_model`'s ``inferred``).
When the model a cut was made from passed strict shape inference (``infer_types(input, check=True)``,
which the stride analysis runs anyway, ``checked`` True), and the cut only removed nodes no output
needs, renamed tensors and added ``Identity`` nodes, the result passes it too: inference is local and
runs forward, so every kept node sees the same input types as in the input, and every kept value_info,
initializer and input was checked there. The caller then passes ``inferred`` (output name -> the
input's inferred type of its source tensor) and no inference runs on the result; the structural
checker still does. A cut that adds other nodes (the NCHW conversions) or a model with operators
outside the ONNX domains does not qualify.
"""
from __future__ import annotations

import os
import tempfile
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import onnx
from onnx import external_data_helper

from ..errors import GraphfeatError
from ..onnxfile import DEFER_MIN_BYTES, TensorSizes, is_external, tensor_nbytes, tensor_sizes

#: ONNX's own operator domains (the default, and its explicit name): onnx's inference and checker know every
#: op there, and graphfeat's op vocabularies (activations, copies, normalizations) speak of those ops only
ONNX_DOMAINS = ("", "ai.onnx")

#: tensors up to this size keep their data in the skeleton (shape constants); the same bound as
#: the wire scan's, so an initializer whose data was left in the file is always stubbed
SMALL_TENSOR = DEFER_MIN_BYTES
_SKELETON_DATA = "graphfeat-skeleton.data"
#: models whose large tensors hold fewer bytes than this are checked directly, without a skeleton
#: (serializing the weights for inference and the checker then costs less than building one)
DIRECT_WEIGHT_BYTES = 1 << 20
#: what onnx's C++ inference and checker raise besides their own errors (pybind11 maps
#: std::length_error to ValueError, std::out_of_range to IndexError, ... on hostile input)
_ONNX_ERRORS = (
    onnx.shape_inference.InferenceError, onnx.checker.ValidationError,
    ValueError, RuntimeError, IndexError, OverflowError, TypeError,
)  # fmt: skip


def skeleton(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """A copy of ``model`` without large tensor data, and the sparse-file size it needs."""
    sk = onnx.ModelProto()
    sk.ir_version = model.ir_version
    sk.opset_import.extend(model.opset_import)
    sk.functions.extend(model.functions)
    for field in ("producer_name", "producer_version", "domain", "model_version"):
        setattr(sk, field, getattr(model, field))
    src, dst = model.graph, sk.graph
    dst.name = src.name
    need = 0
    dst.node.extend(src.node)
    for k, node in enumerate(src.node):
        if node.op_type == "Constant" and not node.domain and _has_large_attr_tensor(node):
            copy = dst.node[k]
            del copy.attribute[:]
            for attr in node.attribute:
                new = copy.attribute.add()
                if attr.HasField("t") and _is_large(attr.t):
                    new.name, new.type = attr.name, attr.type
                    need = max(need, _stub(attr.t, new.t))
                else:
                    new.CopyFrom(attr)
    dst.input.extend(src.input)
    dst.output.extend(src.output)
    dst.value_info.extend(src.value_info)  # so that strict inference checks them as full_check does
    dst.sparse_initializer.extend(src.sparse_initializer)
    for tensor in src.initializer:
        if _is_large(tensor):
            need = max(need, _stub(tensor, dst.initializer.add()))
        else:
            dst.initializer.append(tensor)
    return sk, need


def _is_large(tensor: onnx.TensorProto) -> bool:
    return _large_nbytes(tensor) is not None


def _large_nbytes(tensor: onnx.TensorProto, nbytes: int | None = None, external: bool | None = None) -> int | None:
    """The tensor's size if the skeleton leaves its data out (external, or above `SMALL_TENSOR`), else None.
    ``nbytes``, ``external``: its `tensor_nbytes` and `is_external`, when known."""
    if external is None:
        nbytes, external = tensor_nbytes(tensor), is_external(tensor)
    if nbytes is None or external:
        return nbytes
    return nbytes if nbytes > SMALL_TENSOR and tensor.data_type != onnx.TensorProto.STRING else None


def _stub(tensor: onnx.TensorProto, out: onnx.TensorProto) -> int:
    out.name = tensor.name
    out.data_type = tensor.data_type
    out.dims.extend(tensor.dims)
    nbytes = tensor_nbytes(tensor) or 0
    out.raw_data = b"\0"  # set_external_data requires the field
    external_data_helper.set_external_data(out, _SKELETON_DATA, 0, nbytes)
    out.ClearField("raw_data")
    return nbytes


def _has_large_attr_tensor(node: onnx.NodeProto) -> bool:
    return any(a.HasField("t") and _is_large(a.t) for a in node.attribute)


class InferenceLog:
    """The onnx shape inferences graphfeat ran in this process: how many, and whether each of the latest was
    strict (oldest first). A cut's cost is mostly these passes, so tests and benchmarks read them here."""

    def __init__(self, keep: int = 256):
        self.total = 0
        self._recent: deque[bool] = deque(maxlen=keep)

    def record(self, strict: bool) -> None:
        self.total += 1
        self._recent.append(strict)

    def since(self, total: int) -> list[bool]:
        """The strictness of each inference run after the log stood at ``total`` (the latest ones kept)."""
        n = min(self.total - total, len(self._recent))
        return list(self._recent)[len(self._recent) - n:] if n > 0 else []


#: every inference graphfeat runs goes through `_inference`, which records it here
INFERENCES = InferenceLog()


def _inference(sk: onnx.ModelProto, strict: bool) -> onnx.ModelProto:
    """The one call of onnx shape inference in graphfeat. ``strict``: type-checking, and a failure is a
    GraphfeatError; otherwise best effort, and a model inference rejects comes back as it is."""
    INFERENCES.record(strict)
    try:
        return onnx.shape_inference.infer_shapes(sk, check_type=strict, strict_mode=strict, data_prop=True)
    except _ONNX_ERRORS as exc:
        if strict:
            raise GraphfeatError(f"the resulting model fails onnx shape inference (strict): {exc}") from None
        return sk
    except Exception:  # noqa: BLE001 - best effort: the checker decides validity
        if strict:
            raise
        return sk


def with_input_shapes(sk: onnx.ModelProto, shapes: Mapping[str, Sequence[int]]) -> onnx.ModelProto:
    """``sk`` (a skeleton, modified) with the named graph inputs fixed to concrete ``shapes`` and its
    value_info dropped (the declared symbolic shapes would contradict the concrete ones)."""
    del sk.graph.value_info[:]
    for vi in sk.graph.input:
        if vi.name in shapes:
            dims = vi.type.tensor_type.shape.dim
            del dims[:]
            for v in shapes[vi.name]:
                dims.add().dim_value = int(v)
    return sk


def infer_types(model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]] | None = None, *,
                check: bool = False) -> _Types:
    """Types of all tensors of the top-level graph, by ``onnx.shape_inference`` on the skeleton.

    Dynamic dims keep their ``dim_param`` names; ``input_shapes`` fixes the
    named inputs to concrete shapes first (to see every shape at one size). A
    model inference rejects yields only the declared types (inputs, outputs,
    value_info, initializers).

    ``check``: run the inference strictly, as `check_model` does (type-checking, every node
    inferred), so that a cut of this model can reuse it (see ``inferred`` there); the result's
    ``checked`` says whether the model passed. A model that fails it, or uses operators outside the
    ONNX domains, is inferred best effort, as without ``check`` (``checked`` is False).
    """
    if input_shapes:
        sk = with_input_shapes(skeleton(model)[0], input_shapes)
    else:  # inference never modifies the model it is given; the skeleton only saves serializing weights
        sk = model if _checks_directly(model) else skeleton(model)[0]
    checked = False
    if check and not input_shapes and not _foreign_domains(model):
        try:
            g = _inference(sk, strict=True).graph
            checked = True
        except GraphfeatError:
            pass
    if not checked:
        g = _inference(sk, strict=False).graph
    types = _Types({t.name: t for t in model.graph.initializer}, checked)
    for vi in (*g.input, *g.value_info, *g.output):
        if vi.HasField("type"):
            types[vi.name] = vi.type
    return types


class _Types(dict):
    """Inferred types by tensor name; an initializer's type is made from its dims when first asked for
    (a large model has tens of thousands of initializers that few callers look at)."""

    def __init__(self, initializers: dict[str, onnx.TensorProto], checked: bool = False):
        super().__init__()
        self._initializers = initializers
        #: whether these types come from a strict inference the model passed (``infer_types(check=True)``)
        self.checked = checked

    def __missing__(self, name: str) -> onnx.TypeProto:
        t = self._initializers[name]  # KeyError for an unknown name, as a dict
        tp = onnx.TypeProto()
        tp.tensor_type.elem_type = t.data_type
        tp.tensor_type.shape.SetInParent()
        for d in t.dims:
            tp.tensor_type.shape.dim.add().dim_value = d
        self[name] = tp
        return tp

    def get(self, name: str, default=None):
        try:
            return self[name]
        except KeyError:
            return default

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self, name) or name in self._initializers


def check_model(model: onnx.ModelProto, declared: Mapping[str, onnx.TypeProto] | None = None,
                inferred: Mapping[str, onnx.TypeProto] | None = None, sizes: TensorSizes | None = None) -> None:
    """Validate ``model`` as ``onnx.checker.check_model(full_check=True)`` does, and type its outputs.

    A full check is the structural checker plus strict, type-checking shape
    inference; both run here. Each untyped graph output gets, in this order:
    the type the file already declares for it (``declared``, by output name:
    the type the tensor had before the cut renamed it; or a ``value_info``
    entry) — a declared type is never replaced by an inferred one, so a
    float16 tensor stays float16 —, else the inferred type (dynamic dims stay
    symbolic), else, for operators outside the ONNX domains (``com.microsoft``
    FusedConv, QuickGelu, ... which onnx cannot infer), the type ONNX Runtime
    gives it. A model with almost no weight bytes (and no external data) is
    checked as it is; otherwise the weight-free skeleton is checked, so no
    weight is copied or serialized (``sizes``: `graphfeat.onnxfile.tensor_sizes` of the model,
    when the caller has it for the save too). Raises GraphfeatError when a part fails.

    Operators of non-standard domains: onnx's checker and inference check the
    graph's structure, every ONNX-domain node and every type they can derive,
    but not those operators (their schemas are ONNX Runtime's); for such a model
    ONNX Runtime must also load the result (the skeleton: its type and
    schema checks of every node, without reading a weight), or the check fails.
    ``inferred``: the input's inferred types of the outputs' sources, under the module's rule.
    """
    direct = _checks_directly(model, sizes)
    sk, need = (model, 0) if direct else skeleton(model)
    foreign = _foreign_domains(model)
    session_checked = _type_outputs(model, sk, need, direct, declared, inferred, foreign)
    try:
        if direct:
            onnx.checker.check_model(model, full_check=False)
        else:
            with skeleton_file(sk, need) as path:
                onnx.checker.check_model(str(path), full_check=False)
    except _ONNX_ERRORS as exc:
        raise GraphfeatError(f"the resulting model fails onnx.checker: {exc}") from None
    if foreign and not session_checked:
        _ort_types(sk, need, direct, [])  # ONNX Runtime must load what onnx cannot check


def _type_outputs(model: onnx.ModelProto, sk: onnx.ModelProto, need: int, direct: bool,
                  declared: Mapping[str, onnx.TypeProto] | None, inferred: Mapping[str, onnx.TypeProto] | None,
                  foreign: list[str]) -> bool:
    """Give every untyped output of ``model`` (and of its skeleton ``sk``) its type, by the order
    `check_model` states; whether ONNX Runtime loaded the skeleton to type some of them."""
    if inferred is None:
        result = _inference(sk, strict=True)
        inferred_out = {vi.name: vi.type for vi in result.graph.output if _typed(vi)}
    else:
        inferred_out = {name: tp for name, tp in inferred.items() if _typed_type(tp)}
    vi_types = {vi.name: vi.type for vi in model.graph.value_info if _typed(vi)}
    found: dict[str, onnx.TypeProto] = {}
    for vi in model.graph.output:
        if _typed(vi):
            continue
        tp = (declared or {}).get(vi.name) or vi_types.get(vi.name) or inferred_out.get(vi.name)
        if tp is not None and _typed_type(tp):
            found[vi.name] = _with_shape(tp, inferred_out.get(vi.name))
    missing = [vi.name for vi in model.graph.output if not _typed(vi) and vi.name not in found]
    session_checked = False
    if missing and foreign:
        found.update(_ort_types(sk, need, direct, missing))
        session_checked = True
        missing = [m for m in missing if m not in found]
    if missing:
        raise GraphfeatError(
            f"neither onnx shape inference nor ONNX Runtime could determine the type of output(s) {missing}; "
            "the model may use operators without shape inference"
        )
    for target in (model.graph.output,) if direct else (model.graph.output, sk.graph.output):
        for vi in target:
            if not _typed(vi):
                vi.type.CopyFrom(found[vi.name])
    return session_checked


def _foreign_domains(model: onnx.ModelProto) -> list[str]:
    return sorted({n.domain for n in model.graph.node if n.domain not in ONNX_DOMAINS})


def _ort_types(sk: onnx.ModelProto, need: int, direct: bool, names: Sequence[str]) -> dict[str, onnx.TypeProto]:
    """Load the model (its skeleton: zero weights, never read) in ONNX Runtime; the types ORT gives
    the graph outputs ``names``. GraphfeatError if ORT refuses the model."""
    from .probe import ort_output_types, ort_session

    typed = onnx.ModelProto()
    typed.CopyFrom(sk)
    for vi in typed.graph.output:
        if vi.name in set(names):
            vi.ClearField("type")
    try:
        if direct:
            session = ort_session(typed, "shapes")
        else:
            with skeleton_file(typed, need) as path:
                session = ort_session(path, "shapes")
    except GraphfeatError as exc:
        raise GraphfeatError(f"the resulting model uses operators outside the ONNX domains "
                             f"({', '.join(_foreign_domains(sk))}), which onnx cannot check, and {exc}") from None
    types = ort_output_types(session)
    return {n: types[n] for n in names if n in types}


@contextmanager
def skeleton_file(sk: onnx.ModelProto, need: int) -> Iterator[Path]:
    """``sk`` saved in a private temp directory beside a sparse all-zero data file of ``need`` bytes
    (no disk blocks, no reads), for tools that open a path: the checker, an ONNX Runtime probe."""
    with tempfile.TemporaryDirectory(prefix="graphfeat-skeleton-") as tmp:
        with open(os.path.join(tmp, _SKELETON_DATA), "wb") as f:
            f.truncate(need)
        path = Path(tmp) / "skeleton.onnx"
        path.write_bytes(sk.SerializeToString())
        yield path


def _checks_directly(model: onnx.ModelProto, sizes: TensorSizes | None = None) -> bool:
    """Whether checking the model as it is costs less than building its skeleton: no external or
    data-less large tensor (left in the source file by the wire scan), and less than
    `DIRECT_WEIGHT_BYTES` in large tensors. ``sizes``: `tensor_sizes` of the model."""
    total = 0
    for tensor, nbytes, external in sizes if sizes is not None else tensor_sizes(model):  # attribute tensors too
        if external:
            return False
        nbytes = _large_nbytes(tensor, nbytes, external)
        if nbytes is None:
            continue
        if not tensor.HasField("raw_data"):
            return False
        total += nbytes
        if total >= DIRECT_WEIGHT_BYTES:
            return False
    return True


def _with_shape(tp: onnx.TypeProto, inferred: onnx.TypeProto | None) -> onnx.TypeProto:
    """A declared type that lacks a shape, completed with the inferred one (the checker wants graph
    outputs shaped); its element type always stays the declared one."""
    if (tp.WhichOneof("value") != "tensor_type" or tp.tensor_type.HasField("shape") or inferred is None
            or inferred.WhichOneof("value") != "tensor_type" or not inferred.tensor_type.HasField("shape")):
        return tp
    out = onnx.TypeProto()
    out.CopyFrom(inferred)
    out.tensor_type.elem_type = tp.tensor_type.elem_type
    return out


def _typed(vi: onnx.ValueInfoProto) -> bool:
    return vi.HasField("type") and _typed_type(vi.type)


def _typed_type(tp: onnx.TypeProto) -> bool:
    """A type with a value case (an empty TypeProto, as inference leaves for contrib ops, is not one)."""
    case = tp.WhichOneof("value")
    return case is not None and (case != "tensor_type" or bool(tp.tensor_type.elem_type))
