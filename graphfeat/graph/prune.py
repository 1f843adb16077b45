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

from collections.abc import Callable, Iterable

import onnx

from .index import GraphIndex, node_inputs, subgraphs


def needed_tensors(graph: onnx.GraphProto) -> tuple[set[str], list[onnx.NodeProto]]:
    """Tensors some graph output depends on, and the nodes computing them (reverse walk)."""
    producer: dict[str, onnx.NodeProto] = {}
    for node in graph.node:
        for out in node.output:
            if out:
                producer[out] = node
    needed: set[str] = set()
    live: list[onnx.NodeProto] = []
    seen_nodes: set[int] = set()
    stack = [o.name for o in graph.output]
    while stack:
        name = stack.pop()
        if name in needed:
            continue
        needed.add(name)
        node = producer.get(name)
        if node is not None and id(node) not in seen_nodes:
            seen_nodes.add(id(node))
            live.append(node)
            needed.update(o for o in node.output if o)
            stack.extend(n for n in node_inputs(node) if n not in needed)
    return needed, live


def cleanup(model: onnx.ModelProto, assume_sorted: bool = False) -> onnx.ModelProto:
    """Remove nodes, initializers, value_info and functions that no output needs; return ``model``.

    Kept nodes stay in their order; if that order is not topological, they
    are sorted topologically (``assume_sorted`` skips that test when the
    caller knows the order is topological).
    """
    graph = model.graph
    nodes = list(graph.node)  # holds the wrappers alive, so ids stay unique
    needed, live = needed_tensors(graph)
    live_ids = {id(n) for n in live}
    if len(live_ids) != len(nodes):
        graph.node.sort(key=lambda n: id(n) not in live_ids)
        del graph.node[len(live_ids):]
    if not assume_sorted and not _is_sorted(graph):
        index = GraphIndex(model)
        position = {id(n): index.pos[i] for i, n in enumerate(index.nodes)}
        graph.node.sort(key=lambda n: position[id(n)])
    del nodes, live
    consts = {t.name for t in graph.initializer} | {s.values.name for s in graph.sparse_initializer}
    _retain(graph.initializer, lambda t: t.name in needed)
    _retain(graph.sparse_initializer, lambda s: s.values.name in needed)
    dropped = consts - needed
    _retain(graph.input, lambda i: i.name not in dropped)
    declared = {o.name for o in graph.output} | {i.name for i in graph.input}
    _retain(graph.value_info, lambda v: v.name in needed and v.name not in declared)
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


def _retain(repeated, keep: Callable[[object], bool]) -> None:
    """Keep the elements for which ``keep`` is true, in order, without copying them."""
    items = list(repeated)  # holds the wrappers alive, so ids stay unique during the sort
    flags = {id(x): bool(keep(x)) for x in items}
    kept = sum(flags.values())
    if kept == len(items):
        return
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
    _retain(model.functions, lambda f: (f.domain, f.name) in seen)
