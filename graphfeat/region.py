"""The tensor a module returns, from the set of nodes that belong to it.

A module's *region* is its nodes plus every node on a path between two of
them (the convex hull in the DAG). Its *exits* are region tensors read outside
the region or listed as graph outputs. One exit is the module's output. For
modules known only by their parameters, the region misses the parameter-free
ops that end a block (residual ``Add``, activation); :func:`extend_tail` adds
them under strict rules. Several exits that do not merge are ambiguous.
"""
from __future__ import annotations

from collections.abc import Callable, Collection

from .errors import GraphfeatError
from .graph import GraphIndex

#: ops that pass their input through unchanged (in inference)
COPY_OPS = {"Identity", "Dropout"}
#: ops that are copies when their output shape equals their input shape
RESHAPE_OPS = {"Reshape", "Flatten", "Squeeze", "Unsqueeze"}
#: elementwise, parameter-free ops that may close a block (activations and their pieces)
ELEMENTWISE = {
    "Relu", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Elu", "Selu", "Celu", "Gelu",
    "Mish", "Softplus", "Softsign", "Clip", "ThresholdedRelu", "Erf", "Mul", "Div", "Add", "Sub", "Pow",
    "Sqrt", "Max", "Min", "Identity", "Dropout",
}  # fmt: skip
#: ops that merge parallel paths of one block (residual add, branch concat)
MERGE_OPS = {"Add", "Sum", "Mul", "Concat", "Max", "Min"}
#: ops whose outputs are shapes, never features
SHAPE_OPS = {"Shape", "Size", "NonZero"}
#: (op, input index >= this) reads a shape/index argument, not a feature
_SHAPE_ARGS = {
    "Reshape": 1, "Expand": 1, "Tile": 1, "Slice": 1, "Resize": 1, "Upsample": 1, "Pad": 1, "Range": 0,
    "ConstantOfShape": 0, "TopK": 1, "Squeeze": 1, "Unsqueeze": 1, "Gather": 1, "ReduceMean": 1,
    "ReduceSum": 1, "ReduceMax": 1, "ReduceMin": 1, "Split": 1, "OneHot": 1,
}  # fmt: skip
_MAX_TAIL = 16


def hull(index: GraphIndex, members: Collection[int]) -> set[int]:
    """``members`` plus every node on a path between two members."""
    members = {m for m in members if index.is_data_node(m)}
    if not members:
        return set()
    lo = min(index.pos[m] for m in members)
    hi = max(index.pos[m] for m in members)
    forward = _reach(members, lambda i: index.successors(i), lambda i: index.pos[i] <= hi)
    backward = _reach(members, lambda i: index.predecessors(i), lambda i: index.pos[i] >= lo)
    return (forward & backward) | members


def _reach(start: Collection[int], step, allowed) -> set[int]:
    seen = set(start)
    stack = list(start)
    while stack:
        for j in step(stack.pop()):
            if j not in seen and allowed(j):
                seen.add(j)
                stack.append(j)
    return seen


def exits(index: GraphIndex, region: set[int]) -> list[str]:
    """Feature tensors written in ``region`` and read outside it (or graph outputs), in order."""
    outputs = set(index.outputs)
    found = []
    for i in sorted(region, key=index.pos.__getitem__):
        node = index.nodes[i]
        if node.op_type in SHAPE_OPS:
            continue
        for out in node.output:
            if not out:
                continue
            readers = [c for c in index.consumers.get(out, ()) if c not in region]
            if out in outputs or any(not _is_shape_arg(index, c, out) for c in readers):
                found.append(out)
    return found


def _is_shape_arg(index: GraphIndex, consumer: int, tensor: str) -> bool:
    node = index.nodes[consumer]
    first = _SHAPE_ARGS.get(node.op_type)
    if first is None:
        return False
    positions = [k for k, n in enumerate(node.input) if n == tensor]
    return bool(positions) and all(k >= first for k in positions)


def entries(index: GraphIndex, region: set[int]) -> set[str]:
    """Non-constant tensors read by ``region`` but written outside it."""
    inside = {o for i in region for o in index.nodes[i].output}
    return {n for i in region for n in index.data_inputs(i) if n not in inside}


def extend_tail(
    index: GraphIndex, region: set[int], outs: list[str], owned: Callable[[int], bool]
) -> tuple[set[int], list[str]]:
    """Grow a parameter-defined region over the parameter-free ops that close the block.

    Two rules, applied until neither fits: several exits read only by one
    merge op (``Add``/``Concat``...) whose other inputs come from inside or
    from the region's entries are replaced by the merge's output (residual
    add, branch concat); a single exit read only by a closed group of
    elementwise ops (an activation, ``x*sigmoid(x)``) is replaced by the
    group's one result. Pooling, reshapes, convolutions and any node owning
    parameters stop the growth.
    """
    region = set(region)
    outs = list(outs)
    graph_outputs = set(index.outputs)
    for _ in range(_MAX_TAIL):
        if any(o in graph_outputs for o in outs):
            break
        readers = {c for o in outs for c in index.consumers.get(o, ()) if c not in region}
        step = _merge_step(index, region, outs, readers, owned)
        if step is None and len(outs) == 1:
            step = _elementwise_step(index, region, outs[0], owned)
        if step is None:
            break
        added, new_out = step
        region |= added
        outs = [new_out]
    return region, outs


def _merge_step(index, region, outs, readers, owned):
    if len(readers) != 1:
        return None
    (m,) = readers
    node = index.nodes[m]
    if node.op_type not in MERGE_OPS or owned(m) or not node.output or not node.output[0]:
        return None
    inside = {o for i in region for o in index.nodes[i].output}
    allowed = set(outs) | inside | entries(index, region)
    if not all(n in allowed for n in index.data_inputs(m)):
        return None
    if not set(outs) <= set(node.input):
        return None
    return {m}, node.output[0]


def _elementwise_step(index, region, tensor, owned):
    group: set[int] = set()
    produced = {tensor}
    frontier = [tensor]
    while frontier:
        t = frontier.pop()
        for c in index.consumers.get(t, ()):
            if c in region or c in group:
                continue
            node = index.nodes[c]
            if node.op_type not in ELEMENTWISE or owned(c) or node.domain not in ("", "ai.onnx"):
                continue
            if not all(n in produced for n in index.data_inputs(c)):
                continue
            group.add(c)
            if len(group) > 8:
                return None
            for o in node.output[:1]:
                if o:
                    produced.add(o)
                    frontier.append(o)
    if not group:
        return None
    graph_outputs = set(index.outputs)
    dangling = [
        t
        for t in produced
        if t in graph_outputs or any(c not in group and c not in region for c in index.consumers.get(t, ()))
    ]
    if len(dangling) != 1 or dangling[0] == tensor:
        return None
    return group, dangling[0]


def canonical(index: GraphIndex, tensor: str) -> str:
    """The earliest tensor holding the same value through copy ops (Identity, Dropout, no-op reshapes)."""
    seen = set()
    while tensor not in seen:
        seen.add(tensor)
        p = index.producer.get(tensor)
        if p is None:
            break
        node = index.nodes[p]
        if node.domain not in ("", "ai.onnx") or not node.input or node.output[0] != tensor:
            break
        src = node.input[0]
        if src in index.constants or src not in index.producer:
            break  # never step back onto a graph input or a constant
        if node.op_type in COPY_OPS or (node.op_type in RESHAPE_OPS and _same_shape(index, src, tensor)):
            tensor = src
        else:
            break
    return tensor


def _same_shape(index: GraphIndex, a: str, b: str) -> bool:
    ta, tb = index.types.get(a), index.types.get(b)
    if ta is None or tb is None or not ta.tensor_type.HasField("shape") or not tb.tensor_type.HasField("shape"):
        return False
    da, db = ta.tensor_type.shape.dim, tb.tensor_type.shape.dim
    if len(da) != len(db):
        return False
    for x, y in zip(da, db):
        if x.HasField("dim_value") and y.HasField("dim_value"):
            if x.dim_value != y.dim_value:
                return False
        elif x.HasField("dim_param") and y.HasField("dim_param"):
            if x.dim_param != y.dim_param:
                return False
        else:
            return False
    return True


def describe(index: GraphIndex, tensor: str) -> str:
    """``'tensor' (OpType node_name)`` for messages."""
    p = index.producer.get(tensor)
    if p is None:
        return f"'{tensor}'"
    node = index.nodes[p]
    return f"'{tensor}' ({node.op_type} {node.name})" if node.name else f"'{tensor}' ({node.op_type})"


def ambiguous(name: str, index: GraphIndex, candidates: list[str], why: str) -> GraphfeatError:
    """The error for a name that does not resolve to one tensor."""
    listed = "\n  ".join(describe(index, t) for t in candidates)
    return GraphfeatError(
        f"layer '{name}' is ambiguous: {why}. Candidates:\n  {listed}\n"
        "Pick one with --tensors, or name a more specific module."
    )
