"""Clean-up: remove whatever no graph output needs (onnx-graphsurgeon's ``cleanup``).

Surgery code only changes the outputs; this pass then deletes dead nodes,
initializers, value_info entries and local functions. It is idempotent, never
touches the outputs, keeps every real graph input (the model's signature),
and keeps opset imports and the IR version. Nodes are left in topological
order. Removal reorders the repeated fields in place (``sort`` moves
pointers, it does not copy tensors) and truncates once, so it is linear in
the graph size apart from the sort.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import onnx

from .index import GraphIndex, node_inputs, nodes_inputs, subgraphs


def needed_tensors(graph: onnx.GraphProto, index: GraphIndex | None = None,
                   renamed: Mapping[str, str] | None = None) -> tuple[set[str], set[int]]:
    """Tensors some graph output depends on, and the positions in ``graph.node`` of the nodes computing
    them (a reverse walk).

    ``index``: a `GraphIndex` of this graph taken before edits that only renamed tensors
    (``renamed``: old name -> new name, in every node that writes or reads them) and appended nodes,
    as `edit.set_outputs` does; the walk then reads only the nodes those edits touched."""
    nodes = graph.node
    if index is None:
        listed = list(nodes)
        inputs_of = nodes_inputs(listed, [n.op_type for n in listed], [n.domain for n in listed])
        outputs_of = [n.output[:] for n in listed]
        producer = {out: k for k, outs in enumerate(outputs_of) for out in outs if out}
    else:
        inputs_of, outputs_of, producer = list(index.inputs_of), list(index.outputs_of), dict(index.producer)
        touched = {k for old in renamed or () for k in (index.producer.get(old), *index.consumers.get(old, ()))}
        touched.discard(None)
        for old in renamed or ():
            producer.pop(old, None)
        for k in sorted(touched | set(range(len(index.nodes), len(nodes)))):
            node = nodes[k]
            if k < len(inputs_of):
                inputs_of[k], outputs_of[k] = node_inputs(node), node.output[:]
            else:
                inputs_of.append(node_inputs(node))
                outputs_of.append(node.output[:])
            producer.update((out, k) for out in outputs_of[k] if out)
    outputs = [o.name for o in graph.output]
    get = producer.get
    live: set[int] = set()
    stack = list(map(get, outputs))
    while stack:  # the nodes some output depends on (None: a graph input or initializer)
        k = stack.pop()
        if k is not None and k not in live:
            live.add(k)
            stack.extend(map(get, inputs_of[k]))
    needed = set(outputs).union(*(inputs_of[k] for k in live), *(outputs_of[k] for k in live))
    if "" not in outputs:
        needed.discard("")  # an omitted optional output
    return needed, live


def cleanup(model: onnx.ModelProto, assume_sorted: bool = False, *, index: GraphIndex | None = None,
            renamed: Mapping[str, str] | None = None) -> onnx.ModelProto:
    """Remove nodes, initializers, value_info and functions that no output needs; return ``model``.

    Kept nodes stay in their order; if that order is not topological, they
    are sorted topologically (``assume_sorted`` skips that test when the
    caller knows the order is topological). ``index`` and ``renamed``: see
    `needed_tensors` (the result is the same, only faster).
    """
    graph = model.graph
    needed, live = needed_tensors(graph, index, renamed)
    if len(live) != len(graph.node):
        if max(live, default=-1) == len(live) - 1:  # the dead nodes are the last ones (a cut's head)
            del graph.node[len(live):]
        else:
            nodes = list(graph.node)  # holds the wrappers alive, so ids stay unique
            live_ids = {id(nodes[k]) for k in live}
            graph.node.sort(key=lambda n: id(n) not in live_ids)
            del graph.node[len(live_ids):]
            del nodes
    if not assume_sorted and not _is_sorted(graph):
        index = GraphIndex(model)
        position = {id(n): index.pos[i] for i, n in enumerate(index.nodes)}
        graph.node.sort(key=lambda n: position[id(n)])
    initializers = [t.name for t in graph.initializer]
    sparse = [s.values.name for s in graph.sparse_initializer]
    consts = set(initializers) | set(sparse)
    _retain(graph.initializer, [name in needed for name in initializers])
    _retain(graph.sparse_initializer, [name in needed for name in sparse])
    dropped = consts - needed
    _retain(graph.input, [i.name not in dropped for i in graph.input])
    declared = {o.name for o in graph.output} | {i.name for i in graph.input}
    _retain(graph.value_info, [v.name in needed and v.name not in declared for v in graph.value_info])
    _retain_functions(model)
    return model


def _is_sorted(graph: onnx.GraphProto) -> bool:
    written = {o for n in graph.node for o in n.output if o}
    produced: set[str] = set()
    for node in graph.node:
        for name in node_inputs(node):
            if name in written and name not in produced:
                return False
        produced.update(node.output)
    return True


def _retain(repeated, keep: list[bool]) -> None:
    """Keep the elements whose flag in ``keep`` (one per element) is true, in order, without copying them."""
    kept = sum(keep)
    if kept == len(keep):
        return
    items = list(repeated)  # holds the wrappers alive, so ids stay unique during the sort
    flags = dict(zip(map(id, items), keep))
    repeated.sort(key=lambda x: not flags[id(x)])
    del repeated[kept:]
    del items


def _ops(nodes: Iterable[onnx.NodeProto], out: set[tuple[str, str]]) -> None:
    for node in nodes:
        out.add((node.domain, node.op_type))
        for sub in subgraphs(node):
            _ops(sub.node, out)


def _retain_functions(model: onnx.ModelProto) -> None:
    if not model.functions:
        return
    by_key = {(f.domain, f.name): f for f in model.functions}
    used: set[tuple[str, str]] = set()
    _ops(model.graph.node, used)
    todo = [k for k in used if k in by_key]
    seen: set[tuple[str, str]] = set()
    while todo:
        key = todo.pop()
        if key in seen:
            continue
        seen.add(key)
        inner: set[tuple[str, str]] = set()
        _ops(by_key[key].node, inner)
        todo.extend(k for k in inner if k in by_key and k not in seen)
    _retain(model.functions, [(f.domain, f.name) in seen for f in model.functions])
