"""The tensor a module returns, from the set of nodes that belong to it.

A module's *region* is its nodes plus every node on a path between two of
them (the convex hull in the DAG). Its *exits* are region tensors read outside
the region or listed as graph outputs. One exit is the module's output. For
modules known only by their parameters, the region misses the parameter-free
ops that end a block (residual ``Add``, activation); `extend_tail` adds
them under strict rules. Several exits that do not merge are ambiguous.
"""
from __future__ import annotations

from collections.abc import Callable, Collection

from ..errors import GraphfeatError
from .check import ONNX_DOMAINS
from .index import GraphIndex

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
#: parameter-free ops a block's result may pass before its closing merge: layout changes (a
#: channels-last block's ``Transpose`` back) and slices (a partial residual)
PASS_OPS = {"Transpose", "Slice", "Split"} | COPY_OPS | RESHAPE_OPS
_MAX_PASS = 8
#: arithmetic that, with a constant operand, only scales or shifts (never a module's whole output)
_CONST_ARITH = {"Add", "Sub", "Mul", "Div", "Pow"}
#: ops that pool the whole grid away (what follows them has no spatial grid left)
GLOBAL_POOLS = frozenset({"GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"})
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
    """``members`` plus every node on a path between two members.

    Such a node lies between the first and the last member in topological order; one pass over that
    span forward finds what the members reach, one pass backward what reaches them."""
    producer, consumers, data_inputs_of = index.producer.get, index.consumers, index.data_inputs_of
    members = {m for m in members if data_inputs_of[m]}  # the data nodes
    if not members:
        return set()
    positions = [index.pos[m] for m in members]
    span = index.order[min(positions): max(positions) + 1]
    forward = set(members)
    for j in span:  # reached from a member: a data input written by a reached node
        if j not in forward and not forward.isdisjoint(map(producer, data_inputs_of[j])):
            forward.add(j)
    backward = set(members)
    outputs_of = index.outputs_of
    for j in reversed(span):  # reaches a member: a data node whose output a reaching node reads
        if j not in backward and data_inputs_of[j]:
            for out in outputs_of[j]:
                if not backward.isdisjoint(consumers.get(out, ())):
                    backward.add(j)
                    break
    return (forward & backward) | members


def exits(index: GraphIndex, region: set[int]) -> list[str]:
    """Feature tensors written in ``region`` and read outside it (or graph outputs), in order."""
    outputs = set(index.outputs)
    consumers, outputs_of = index.consumers, index.outputs_of
    inside = region.issuperset
    leaving = {  # nodes with an output read outside (the only candidates)
        i for i in region for out in outputs_of[i] if out and (out in outputs or not inside(consumers.get(out, ())))
    }
    found = []
    for i in sorted(leaving, key=index.pos.__getitem__):
        if index.nodes[i].op_type in SHAPE_OPS:
            continue
        for out in outputs_of[i]:
            if not out:
                continue
            readers = [c for c in consumers.get(out, ()) if c not in region]
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
    producer, data_inputs_of = index.producer.get, index.data_inputs_of
    return {n for i in region for n in data_inputs_of[i] if producer(n) not in region}


def extend_tail(
    index: GraphIndex, region: set[int], outs: list[str], owned: Callable[[int], bool]
) -> tuple[set[int], list[str]]:
    """Grow a parameter-defined region over the parameter-free ops that close the block.

    Two rules, applied until neither fits. *Merge*: when every reader outside
    the region of the exits is a merge op (``Add``/``Concat``...), possibly
    behind layout or slicing ops (`_pass_through`), the merges whose
    inputs all come from the exits, the region, its entries or each other
    are added (residual add, branch concat, sums of three branches as
    ``(a + b) + c``, a partial residual). *Elementwise*: a single exit
    read only by a closed group of elementwise ops (an activation,
    ``x*sigmoid(x)``) is replaced by the group's one result. Pooling,
    reshapes that are not followed by a merge, convolutions and any node
    owning parameters stop the growth.
    """
    region = set(region)
    outs = list(outs)
    graph_outputs = set(index.outputs)
    for _ in range(_MAX_TAIL):
        if any(o in graph_outputs for o in outs):
            break
        step = _merge_step(index, region, outs, owned)
        if step is None and len(outs) == 1:
            step = _elementwise_step(index, region, outs[0], owned)
        if step is None:
            break
        added, new_outs = step
        region |= added
        outs = new_outs
    return region, outs


def _pass_through(index, region, tensor, owned) -> tuple[list[int], list[str]]:
    """Follow ``tensor`` through parameter-free layout and slicing ops that are its only readers.

    Returns the ops passed (in order) and the tensors where the walk stopped:
    a channels-last block's ``Transpose`` back, or the ``Slice`` pair of a
    partial residual (``concat(x[:, :c] + shortcut, x[:, c:])``).
    """
    via: list[int] = []
    ends: list[str] = []
    frontier = [tensor]
    while frontier:
        t = frontier.pop()
        readers = [c for c in index.consumers.get(t, ()) if c not in region]
        passes = bool(readers) and t not in index.outputs and len(via) + len(readers) <= _MAX_PASS
        for c in readers:
            node = index.nodes[c]
            if (node.op_type not in PASS_OPS or owned(c) or index.data_inputs(c) != [t]
                    or not node.output or not all(node.output)):
                passes = False
        if not passes:
            ends.append(t)
            continue
        for c in readers:
            via.append(c)
            frontier.extend(index.nodes[c].output)
    return via, ends


def _merge_step(index, region, outs, owned):
    via: list[int] = []
    ends: list[str] = []
    for o in outs:
        v, e = _pass_through(index, region, o, owned)
        via += v
        ends += e
    skip = region | set(via)
    readers = {c for t in ends for c in index.consumers.get(t, ()) if c not in skip}
    if not readers:
        return None
    for m in readers:
        node = index.nodes[m]
        if node.op_type not in MERGE_OPS or owned(m) or not node.output or not node.output[0]:
            return None
    extra = set(ends)
    producer = index.producer.get

    def allowed(name: str) -> bool:  # an exit, a merge's result, or written or read in the region (an entry)
        return (name in extra or producer(name) in region
                or any(c in region for c in index.consumers.get(name, ())))

    merged: set[int] = set()
    waiting = sorted(readers, key=index.pos.__getitem__)
    while True:  # a merge may read another one's result: (a + b) + c, concat(slice + shortcut, slice)
        ready = [m for m in waiting if all(allowed(n) for n in index.data_inputs_of[m])]
        if not ready:
            break
        merged.update(ready)
        extra.update(index.nodes[m].output[0] for m in ready)
        waiting = [m for m in waiting if m not in merged]
    if not merged:
        return None
    added = set(merged)
    for v in reversed(via):  # a passed op belongs to the tail when all it feeds does
        if all(c in added for t in index.nodes[v].output for c in index.consumers.get(t, ())):
            added.add(v)
    grown = region | added
    graph_outputs = set(index.outputs)
    new_outs = [
        t
        for i in sorted(added | {index.producer[o] for o in outs if o in index.producer}, key=index.pos.__getitem__)
        for t in index.nodes[i].output
        if t and (t in graph_outputs or any(c not in grown for c in index.consumers.get(t, ())))
    ]
    if not new_outs or len(new_outs) > len(outs):
        return None  # the merges fan out (one exit summed into two places): not the block's closing merge
    return added, new_outs


def _elementwise_group(index, tensor, allowed: Callable[[int], bool]) -> tuple[set[int], set[str]]:
    """The elementwise ops (up to 8) computed from ``tensor`` alone, and the tensors they produce."""
    group: set[int] = set()
    produced = {tensor}
    frontier = [tensor]
    while frontier:
        t = frontier.pop()
        for c in index.consumers.get(t, ()):
            if c in group or not allowed(c):
                continue
            node = index.nodes[c]
            if node.op_type not in ELEMENTWISE or node.domain not in ONNX_DOMAINS:
                continue
            if not all(n in produced for n in index.data_inputs(c)):
                continue
            group.add(c)
            if len(group) > 8:
                return set(), produced
            for o in node.output[:1]:
                if o:
                    produced.add(o)
                    frontier.append(o)
    return group, produced


def _elementwise_step(index, region, tensor, owned):
    group, produced = _elementwise_group(index, tensor, lambda c: c not in region and not owned(c))
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
    return group, [dangling[0]]


def chain_units(index: GraphIndex, nodes: Collection[int], entry: str) -> list[tuple[set[int], str]] | None:
    """Split parameter-free ``nodes`` fed by ``entry`` into a chain of one-module units, or None.

    Walking the nodes in order, a unit is one op with a single data input
    that is not elementwise (``MaxPool``), or a group of elementwise ops. A
    new unit starts only where the current group is *complete* (it hands one
    tensor on and nothing else reads its input) and already holds a real
    activation op, and the next op is not arithmetic with a constant: so
    ``x*clip(x+3, 0, 6)/6`` or ``clip(x+3, 0, 6)/6`` is one unit, and
    ``relu`` then ``max_pool`` are two. Each unit must read only the previous
    unit's result. Returns the units in order with their results, or None
    when ``nodes`` do not form such a chain. Linear in ``len(nodes)``.

    Longer than the rest (one pass that keeps the open group's state: its
    produced tensors, the readers each still waits for, whether it holds a
    real activation): split into pieces, that state would travel between them.
    """
    gap = sorted(nodes, key=index.pos.__getitem__)
    inside = set(gap)
    pending: dict[str, int] = {entry: sum(1 for c in index.consumers.get(entry, ()) if c in inside)}
    open_ = {entry} if pending[entry] else set()
    units: list[tuple[set[int], str]] = []
    group: set[int] = set()
    produced: set[str] = set()
    real = False  # the group holds an op other than constant arithmetic
    current = entry  # the tensor the current unit starts from

    def complete() -> str | None:
        return next(iter(open_)) if len(open_) == 1 and current not in open_ else None

    def close(result: str) -> None:
        nonlocal group, produced, real, current
        units.append((group, result))
        group, produced, real, current = set(), set(), False, result

    for c in gap:
        node = index.nodes[c]
        data = index.data_inputs(c)
        arith = node.op_type in _CONST_ARITH and len(data) == 1
        elementwise = node.op_type in ELEMENTWISE and node.domain in ONNX_DOMAINS
        if group:
            done = complete()
            if done is not None and (not elementwise or (real and not arith)):
                close(done)
        if not set(data) <= produced | {current} or not node.output or not node.output[0]:
            return None
        if not elementwise and (group or data != [current]):
            return None
        group.add(c)
        real = real or not arith
        for t in set(data):
            pending[t] -= sum(1 for n in index.inputs_of[c] if n == t)
            if not pending[t]:
                open_.discard(t)
        out = node.output[0]
        produced.add(out)
        pending[out] = sum(1 for r in index.consumers.get(out, ()) if r in inside)
        if pending[out]:
            open_.add(out)
        if not elementwise:
            close(out)
    if group:
        graph_outputs = set(index.outputs)
        dangling = [
            t for t in produced if t in graph_outputs or any(r not in inside for r in index.consumers.get(t, ()))
        ]
        if len(dangling) != 1 or open_:
            return None
        close(dangling[0])
    for _, result in units[:-1]:
        if result in index.outputs or any(r not in inside for r in index.consumers.get(result, ())):
            return None  # an inner result read elsewhere: a branch, not a chain
    return units


def canonical(index: GraphIndex, tensor: str) -> str:
    """The earliest tensor holding the same value through copy ops (Identity, Dropout, no-op reshapes)."""
    seen = set()
    while tensor not in seen:
        seen.add(tensor)
        p = index.producer.get(tensor)
        if p is None:
            break
        node = index.nodes[p]
        if node.domain not in ONNX_DOMAINS or not node.input or node.output[0] != tensor:
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
