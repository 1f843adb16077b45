"""Free the input's height and width in an exported graph (``export --dynamic-size``).

MindSpore's exporter bakes the probe's shape into constant ``Reshape`` targets
and ``Resize`` sizes, as it bakes in the batch. `free_spatial` rewrites
them the way ``_free_batch_in_reshapes`` / ``_free_batch_in_resizes`` free the
batch: a Reshape target copies the leading dims it keeps from its input (``0``)
and merges the rest with ``-1``; a Resize with constant ``sizes`` resizes by
``scales`` (output / input at the probe) instead. The export then proves the
file against MindSpore at a second size; what this pass cannot free (a Slice
with constant ends, a Reshape that splits a spatial dimension) fails that proof,
and `size_suspects` names the nodes that are the likely reason.

The input and output dims are declared here, not with ``onnx.tools.update_model_dims``:
that helper cannot leave a dim open without inventing a name for it (the outputs'
spatial dims stay unnamed, as onnx's inference leaves them), and it runs the
checker over the whole model, weights included, which the export runs once anyway.
"""
from __future__ import annotations

import itertools
from typing import Sequence

import networkx as nx
import numpy as np
import onnx
from onnx import helper, numpy_helper

from graphfeat.graph import infer_types, shape_of
from graphfeat.runtime import run_onnxruntime

SPATIAL = ("height", "width")


class Constants:
    """The values of a graph's constant tensors: its initializers and its ``Constant`` nodes' values (read with
    ``onnx.helper.get_attribute_value`` and ``numpy_helper.to_array``), looked up by name."""

    def __init__(self, model: onnx.ModelProto):
        self._nodes = {n.output[0]: n for n in model.graph.node if n.op_type == "Constant" and n.output}
        self._initializers = {t.name: t for t in model.graph.initializer}

    def __call__(self, name: str) -> np.ndarray | None:
        """The value of tensor ``name``, or None when it is not a constant (or a Constant of another form)."""
        node = self._nodes.get(name)
        if node is not None:
            value = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "value"), None)
            return numpy_helper.to_array(value) if isinstance(value, onnx.TensorProto) else None
        tensor = self._initializers.get(name)
        return None if tensor is None else numpy_helper.to_array(tensor)


def _resolve(src: tuple[int, ...], target: np.ndarray) -> list[int]:
    """The concrete output shape of ``Reshape(x of shape src, target)``."""
    resolved = [int(src[k]) if d == 0 else int(d) for k, d in enumerate(target)]
    if -1 in resolved:
        known = int(np.prod([d for d in resolved if d != -1]))
        resolved[resolved.index(-1)] = int(np.prod(src)) // max(known, 1)
    return resolved


def _prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _upstream(model: onnx.ModelProto) -> nx.DiGraph:
    """Tensor -> the inputs of the node that writes it, in the node's input order."""
    g = nx.DiGraph()
    g.add_edges_from((out, inp) for node in model.graph.node for out in node.output if out for inp in node.input if inp)
    return g


def _ancestors(upstream: nx.DiGraph, name: str, limit: int = 64) -> list[str]:
    """Tensors upstream of ``name``, nearest first (networkx's breadth-first search, at most ``limit``)."""
    if name not in upstream:
        return []
    return [found for _, found in itertools.islice(nx.bfs_edges(upstream, name), limit)]


def _plan_target(src_name: str, resolved: list[int], shapes: dict, ancestors: list[str]) -> tuple:
    """How to build a Reshape target that scales with the input: ``(head_tensor, p, middle, t, split)``.

    The output's first ``p`` dims are those of ``head_tensor`` (the Reshape's
    input, or the nearest upstream tensor that shares the longest leading dims
    with the output, for a reshape that undoes an earlier merge), its last ``t``
    dims are the input's last ``t``, and ``middle`` is between: one dim
    becomes ``-1``, several stay literal (``split`` when they are not all 1).
    """
    src = shapes[src_name]
    t = 0
    while t < min(len(src), len(resolved)) and resolved[-1 - t] == src[-1 - t]:
        t += 1
    body = resolved[:len(resolved) - t]
    head, p = src_name, _prefix(src, body)
    for name in ancestors:
        shape = shapes.get(name)
        if shape is not None and len(shape) >= 2 and _prefix(shape, body) > p:
            head, p = name, _prefix(shape, body)
    middle = body[p:]
    return head, p, middle, t, len(middle) > 1 and any(d != 1 for d in middle)


def _probe_shapes(model: onnx.ModelProto, probe: np.ndarray, input_name: str, needed: list[str]) -> dict:
    """Concrete shapes at the probe: shape inference at the probe's size, ONNX Runtime for what it leaves open."""
    shapes: dict[str, tuple] = {}
    for name, tp in infer_types(model, {input_name: list(probe.shape)}).items():
        shape = shape_of(tp)
        if shape is not None and all(isinstance(d, int) for d in shape):
            shapes[name] = tuple(shape)
    missing = [n for n in needed if n not in shapes]
    if missing:
        shapes.update({k: v.shape for k, v in run_onnxruntime(model, {input_name: probe}, missing).items()})
    return shapes


def free_spatial(model: onnx.ModelProto, probe: np.ndarray, input_name: str) -> tuple[int, int, list[str]]:
    """Rewrite constant Reshape targets and Resize sizes so the graph runs at any batch, height and width.

    Returns ``(reshapes changed, resizes changed, reshapes with a constant split left in)``.
    """
    constant = Constants(model)
    reshapes = [n for n in model.graph.node if n.op_type == "Reshape" and len(n.input) > 1
                and constant(n.input[1]) is not None]
    resizes = [n for n in model.graph.node if n.op_type == "Resize" and len(n.input) == 4 and n.input[3]
               and constant(n.input[3]) is not None]
    if not reshapes and not resizes:
        return 0, 0, []
    inputs = list(dict.fromkeys(n.input[0] for n in (*reshapes, *resizes)))
    shapes = _probe_shapes(model, probe, input_name, inputs)
    upstream = _upstream(model) if reshapes else None
    left: list[str] = []
    new_nodes: dict[str, list[onnx.NodeProto]] = {}
    for node in reshapes:
        resolved = _resolve(shapes[node.input[0]], constant(node.input[1]))
        plan = _plan_target(node.input[0], resolved, shapes, _ancestors(upstream, node.input[0]))
        if plan[4]:  # a constant split left in
            left.append(node.name or node.output[0])
        nodes = _scalable_target(model, node, plan, len(shapes[node.input[0]]))
        if nodes:
            new_nodes[node.output[0]] = nodes
    if new_nodes:
        nodes = [m for n in model.graph.node for m in (*new_nodes.get(n.output[0] if n.output else "", []), n)]
        del model.graph.node[:]
        model.graph.node.extend(nodes)
    for node in resizes:
        _resize_by_scales(model, node, constant(node.input[3]), shapes[node.input[0]])
    return len(reshapes), len(resizes), left


def _scalable_target(model: onnx.ModelProto, node: onnx.NodeProto, plan: tuple, rank: int) -> list[onnx.NodeProto]:
    """Point the Reshape ``node`` at a target built by ``plan`` (`_plan_target`): a constant when it only
    keeps the input's leading dims, else nodes (returned, to go before ``node``) that read the dims at run time."""
    head, p, middle, t, _ = plan
    src, init = node.input[0], model.graph.initializer
    stem = f"{node.output[0]}__size_free"
    mid = np.array([-1] if len(middle) == 1 else middle, np.int64)
    node.input[1] = stem
    if head == src and not t:
        init.append(numpy_helper.from_array(np.concatenate([np.zeros(p, np.int64), mid]), stem))
        return []
    parts, nodes = [], []

    def dims(tensor: str, start: int, end: int, tag: str) -> None:
        for suffix, value in (("start", start), ("end", end)):
            init.append(numpy_helper.from_array(np.array([value], np.int64), f"{stem}_{tag}_{suffix}"))
        nodes.append(helper.make_node("Shape", [tensor], [f"{stem}_{tag}_shape"], name=f"{stem}_{tag}_Shape"))
        nodes.append(helper.make_node("Slice", [f"{stem}_{tag}_shape", f"{stem}_{tag}_start", f"{stem}_{tag}_end"],
                                      [f"{stem}_{tag}"], name=f"{stem}_{tag}_Slice"))
        parts.append(f"{stem}_{tag}")

    if p:
        dims(head, 0, p, "head")
    if mid.size:
        init.append(numpy_helper.from_array(mid, f"{stem}_middle"))
        parts.append(f"{stem}_middle")
    if t:
        dims(src, rank - t, rank, "tail")
    nodes.append(helper.make_node("Concat", parts, [stem], name=f"{stem}_Concat", axis=0))
    return nodes


def _resize_by_scales(model: onnx.ModelProto, node: onnx.NodeProto, sizes: np.ndarray, src_shape) -> None:
    """Turn the Resize ``node``'s constant ``sizes`` into the scales they mean at the probe's shape."""
    scales = (sizes.astype(np.float64) / np.array(src_shape, np.float64)).astype(np.float32)
    name = f"{node.output[0]}__scales"
    model.graph.initializer.append(numpy_helper.from_array(scales, name))
    if not node.input[1]:
        roi = f"{node.output[0]}__roi"
        model.graph.initializer.append(numpy_helper.from_array(np.zeros(0, np.float32), roi))
        node.input[1] = roi
    node.input[2] = name
    node.input[3] = ""


def set_dynamic_size(model: onnx.ModelProto, batch_dim: str) -> None:
    """Declare batch, height and width of the input symbolic, and every output's dims but the channels open."""
    inp = model.graph.input[0].type.tensor_type.shape.dim
    for k, dim in enumerate(inp):
        if k == 0 or k >= 2:
            dim.Clear()
            dim.dim_param = batch_dim if k == 0 else SPATIAL[min(k - 2, 1)]
    for out in model.graph.output:
        for k, dim in enumerate(out.type.tensor_type.shape.dim):
            if k == 0:
                dim.Clear()
                dim.dim_param = batch_dim
            elif k >= 2:
                dim.Clear()
    del model.graph.value_info[:]  # shapes inferred at the probe size


def size_suspects(model: onnx.ModelProto, left: list[str]) -> list[str]:
    """Nodes that likely hold the probe size as a constant: unfreed Reshapes, and Slice,
    Expand, Tile, ConstantOfShape or Pad with constant shape-like inputs."""
    constant = Constants(model)
    out = [f"Reshape '{n}' has a constant split of a dimension" for n in left]
    for node in model.graph.node:
        if node.op_type in ("Slice", "Expand", "Tile", "ConstantOfShape", "Pad"):
            consts = [constant(i) for i in node.input[1:] if i]
            if any(c is not None and c.dtype.kind == "i" for c in consts):
                out.append(f"{node.op_type} '{node.name or node.output[0]}' has constant "
                           f"{'ends' if node.op_type == 'Slice' else 'shape'}")
    return out
