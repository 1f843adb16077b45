"""Where a model keeps its tensors, and how many bytes each one takes."""
from __future__ import annotations

import math

import onnx
from onnx import external_data_helper

_ITEMSIZE: dict[int, int] = {}
_HALF_BYTE = -1  # the item size of 4-bit types
_TENSOR, _TENSORS = onnx.AttributeProto.TENSOR, onnx.AttributeProto.TENSORS
_GRAPH, _GRAPHS = onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS
#: standard-domain ops that may hold tensor or graph attributes
_TENSOR_ATTR_OPS = {"Constant", "ConstantOfShape", "If", "Loop", "Scan", "SequenceMap"}
_FOUR_BIT = {
    getattr(onnx.TensorProto, n) for n in ("INT4", "UINT4", "FLOAT4E2M1", "INT2", "UINT2") if hasattr(onnx.TensorProto, n)
}


def all_tensors(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    """Every TensorProto in the model: initializers and attribute tensors, subgraphs included.
    (A list: built by ``extend`` over the repeated fields, it costs a fraction of a generator's yields.)"""
    found: list[onnx.TensorProto] = []

    def walk(graph: onnx.GraphProto) -> None:
        found.extend(graph.initializer)
        for sparse in graph.sparse_initializer:
            found.append(sparse.values)
            found.append(sparse.indices)
        for node in graph.node:
            if not node.domain and node.op_type not in _TENSOR_ATTR_OPS:
                continue  # standard ops without tensor or graph attributes
            for attr in node.attribute:
                kind = attr.type
                if kind == _TENSOR:
                    found.append(attr.t)
                elif kind == _TENSORS:
                    found.extend(attr.tensors)
                elif kind == _GRAPH:
                    walk(attr.g)
                elif kind == _GRAPHS:
                    for sub in attr.graphs:
                        walk(sub)

    walk(model.graph)
    for func in model.functions:
        for node in func.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    found.append(attr.t)
                found.extend(attr.tensors)
    return found


#: whether a tensor's data lives in an external file: onnx's own test, under the name this package uses
is_external = external_data_helper.uses_external_data


def external_tensors(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    """Tensors whose data lives in an external file."""
    return [t for t in all_tensors(model) if is_external(t)]


#: a model's tensors (`all_tensors` order), each with its `tensor_nbytes` and `is_external`
TensorSizes = list[tuple[onnx.TensorProto, "int | None", bool]]


def tensor_sizes(model: onnx.ModelProto) -> TensorSizes:
    """Every tensor of ``model`` with its raw size and whether its data is external: the one walk that the
    check and the save of a model share (valid until a tensor is added, removed or changed)."""
    tensors = all_tensors(model)
    return list(zip(tensors, map(tensor_nbytes, tensors), map(is_external, tensors)))


def tensor_nbytes(tensor: onnx.TensorProto) -> int | None:
    """Bytes the tensor's data takes in raw form, or None (strings, unknown types)."""
    dtype = tensor.data_type
    size = _ITEMSIZE.get(dtype)
    if size is None:
        size = _itemsize(dtype)
    n = math.prod(tensor.dims[:])  # a list: iterating the repeated field itself is slower
    if size == _HALF_BYTE:
        return (n + 1) // 2
    return n * size if size else None


def _itemsize(dtype: int) -> int:
    """Bytes per element of ``dtype`` (0: unknown or strings; `_HALF_BYTE` for 4-bit types), cached."""
    if dtype in _FOUR_BIT:
        size = _HALF_BYTE
    else:
        try:
            size = onnx.helper.tensor_dtype_to_np_dtype(dtype).itemsize
        except (KeyError, TypeError, ValueError):
            size = 0
        if dtype == onnx.TensorProto.STRING:
            size = 0
    _ITEMSIZE[dtype] = size
    return size


_DATA_FIELDS = ("float_data", "int32_data", "string_data", "int64_data", "double_data", "uint64_data")


def holds_data(tensor: onnx.TensorProto) -> bool:
    """Whether ``tensor`` carries its data (embedded, or a reference to an external file); False for a
    deferred initializer of a skeleton (`graphfeat.onnxfile.load_skeleton`: dims, no data)."""
    if tensor.HasField("raw_data") or is_external(tensor):
        return True
    return math.prod(tensor.dims) == 0 or any(len(getattr(tensor, f)) for f in _DATA_FIELDS)


#: the external_data keys graphfeat accepts (``checksum`` is kept but not verified); anything else,


def raw_bytes(tensor: onnx.TensorProto) -> bytes | None:
    if tensor.HasField("raw_data"):
        return tensor.raw_data
    if tensor.data_type == onnx.TensorProto.STRING:
        return None
    try:
        return onnx.numpy_helper.to_array(tensor).tobytes()
    except Exception:  # noqa: BLE001 - unusual dtypes stay embedded
        return None

