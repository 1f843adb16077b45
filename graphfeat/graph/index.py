"""Lookups over an ONNX graph, built once: producers, consumers, constants, order.

Every pass in graphfeat works on these maps, so each is linear in the size of
the graph. Node identity is the node's position in ``graph.node``; tensors are
identified by name. A node's inputs include the outer-scope names that its
subgraphs (``If``/``Loop``/``Scan`` bodies) read, so a walk over inputs never
misses what a subgraph needs.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cached_property
from itertools import chain

import networkx as nx
import onnx

from ..errors import GraphfeatError
from .check import infer_types
from .shapes import Shape, real_inputs, shape_of

SOURCE = "__graphfeat_source__"
SINK = "__graphfeat_sink__"


_GRAPH = onnx.AttributeProto.GRAPH
_GRAPHS = onnx.AttributeProto.GRAPHS


def subgraphs(node: onnx.NodeProto) -> Iterator[onnx.GraphProto]:
    """The graphs held by ``node``'s attributes (``If`` branches, ``Loop`` bodies)."""
    for attr in node.attribute:
        if attr.type == _GRAPH:
            yield attr.g
        elif attr.type == _GRAPHS:
            yield from attr.graphs


def has_subgraph(node: onnx.NodeProto) -> bool:
    """Whether ``node`` carries a subgraph attribute."""
    return any(a.type == _GRAPH or a.type == _GRAPHS for a in node.attribute)


def outer_references(graph: onnx.GraphProto) -> set[str]:
    """Names a (sub)graph reads that it does not define itself."""
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    defined |= {s.values.name for s in graph.sparse_initializer}
    used: set[str] = set()
    for node in graph.node:
        used.update(n for n in node.input if n)
        for sub in subgraphs(node):
            used |= outer_references(sub)
        defined.update(node.output)
    used.update(o.name for o in graph.output)
    return used - defined


def node_inputs(node: onnx.NodeProto) -> list[str]:
    """Explicit inputs of ``node`` plus the outer-scope names its subgraphs read."""
    names = [n for n in node.input if n]
    if _reads_outer(node.op_type, node.domain, node):
        for sub in subgraphs(node):
            names.extend(sorted(outer_references(sub)))
    return names


def nodes_inputs(nodes: list[onnx.NodeProto], op_types: list[str], domains: list[str]) -> list[list[str]]:
    """`node_inputs` of every node, for a whole graph at once (``op_types``/``domains``: the nodes')."""
    result = [n.input[:] for n in nodes]
    for k, names in enumerate(result):
        if "" in names:
            result[k] = [n for n in names if n]
    for k, (op, domain) in enumerate(zip(op_types, domains)):
        if op in _CONTROL_FLOW or domain:
            if _reads_outer(op, domain, nodes[k]):
                result[k] = node_inputs(nodes[k])
    return result


def _reads_outer(op_type: str, domain: str, node: onnx.NodeProto) -> bool:
    """Whether ``node`` may hold subgraphs reading outer-scope names."""
    return op_type in _CONTROL_FLOW or bool(domain and node.attribute and has_subgraph(node))


#: domains whose operator schemas onnx ships (ONNX's own, by its default name, and ai.onnx.ml); nodes of other
#: domains are not checked against a schema
_SCHEMA_DOMAINS = ("", "ai.onnx.ml")
#: standard ops that carry subgraphs; nodes of other domains are checked one by one
_CONTROL_FLOW = {"If", "Loop", "Scan", "SequenceMap"}


class GraphIndex:
    """Read-only lookups over ``model.graph``, built once.

    ``producer`` maps a tensor to the index of the node that writes it;
    ``consumers`` maps a tensor to the nodes that read it; ``constants`` holds
    every tensor computable without graph inputs (initializers, ``Constant``
    outputs and what is computed from them only); ``order``/``pos`` give a
    topological order. ``inputs_of``, ``outputs_of``, ``data_inputs_of`` and
    ``node_names`` hold each node's fields as read once (a protobuf read builds
    new objects every time; passes use these lists, never modify them). The
    networkx view, the bottlenecks and inferred types are computed on first use.
    """

    def __init__(self, model: onnx.ModelProto):
        self.model = model
        graph = model.graph
        self.nodes: list[onnx.NodeProto] = list(graph.node)
        self.initializers: dict[str, onnx.TensorProto] = {t.name: t for t in graph.initializer}
        self.sparse_initializers = {s.values.name for s in graph.sparse_initializer}
        self.inputs: list[str] = [i.name for i in real_inputs(graph, self.initializers.keys() | self.sparse_initializers)]
        self.outputs: list[str] = [o.name for o in graph.output]
        # every node field is read once, here (each protobuf read builds new Python objects)
        op_types = [n.op_type for n in self.nodes]
        domains = [n.domain for n in self.nodes]
        #: each node's op type and domain as read once
        self.op_types, self.domains = op_types, domains
        self.inputs_of: list[list[str]] = nodes_inputs(self.nodes, op_types, domains)
        #: each node's output names as written (empty names of omitted optional outputs included)
        self.outputs_of: list[list[str]] = [n.output[:] for n in self.nodes]
        self.node_names: list[str] = [n.name for n in self.nodes]
        self.producer: dict[str, int] = self._producers()
        consumers: dict[str, list[int]] = {}
        for i, names in enumerate(self.inputs_of):
            for name in names:
                readers = consumers.get(name)
                if readers is None:
                    consumers[name] = [i]
                else:
                    readers.append(i)
        self.consumers = consumers
        self._check_text(op_types, domains)
        self._check_defined()
        self._check_ops(op_types, domains)
        self.order = self._topological_order()
        self.pos = list(range(len(self.nodes)))
        if self.order != self.pos:
            for p, i in enumerate(self.order):
                self.pos[i] = p
        #: each node's non-constant inputs (read-only; `data_inputs` gives a copy)
        self.constants, self.data_inputs_of = self._constant_tensors()

    # -- construction -------------------------------------------------------
    def _describe(self, i: int) -> str:
        node = self.nodes[i]
        return f"{node.op_type} '{node.name}'" if node.name else f"{node.op_type} #{i}"

    @staticmethod
    def _invalid(problem: str) -> GraphfeatError:
        return GraphfeatError(f"the model's graph is invalid: {problem}")

    def _producers(self) -> dict[str, int]:
        """Tensor -> the node writing it; a tensor written twice is refused (the first such write in node order)."""
        producer = {out: i for i, outs in enumerate(self.outputs_of) for out in outs if out}
        if len(producer) == sum(len(outs) for outs in self.outputs_of) - sum(outs.count("") for outs in self.outputs_of):
            return producer
        producer = {}
        for i, outs in enumerate(self.outputs_of):
            for out in outs:
                if out:
                    if out in producer:
                        raise self._invalid(f"tensor '{out}' is written by two nodes ({self._describe(producer[out])} and {self._describe(i)})")
                    producer[out] = i
        return producer

    def _check_text(self, op_types: list[str], domains: list[str]) -> None:
        """Every name and op type is text: protobuf hands out ``bytes`` for a string that is not valid UTF-8."""
        names = (self.producer, self.consumers, self.initializers, self.sparse_initializers, self.inputs, self.outputs)
        for group in names:
            if not set(map(type, group)) <= {str}:
                name = next(n for n in group if type(n) is not str)
                raise self._invalid(f"tensor name {name!r:.80} is not valid UTF-8 text (ONNX names must be UTF-8)")
        if set(map(type, op_types)) | set(map(type, domains)) | set(map(type, self.node_names)) <= {str}:
            return
        for i, values in enumerate(zip(op_types, domains, self.node_names)):
            for what, value in zip(("op type", "domain", "name"), values):
                if type(value) is not str:
                    raise self._invalid(f"node #{i} has a {what} {value!r:.80} that is not valid UTF-8 text")

    def _check_defined(self) -> None:
        """Single assignment (no tensor both written and a graph input/initializer) and no dangling reads."""
        sources = set(self.initializers) | self.sparse_initializers | {i.name for i in self.model.graph.input}
        for name in sources & self.producer.keys():
            raise self._invalid(f"tensor '{name}' is a graph input or initializer and also written by {self._describe(self.producer[name])}")
        if self.consumers.keys() - self.producer.keys() - sources:
            for name, readers in self.consumers.items():
                if name not in self.producer and name not in sources:
                    raise self._invalid(f"{self._describe(readers[0])} reads '{name}', which no node, input or initializer defines")
        for name in self.outputs:
            if name not in self.producer and name not in sources:
                raise self._invalid(f"graph output '{name}' is not computed by any node")

    def _check_ops(self, op_types: list[str], domains: list[str]) -> None:
        """Every op of the standard domains exists in the opset the model imports (custom domains pass)."""
        versions = {("" if o.domain == "ai.onnx" else o.domain): o.version for o in self.model.opset_import}
        local = {(f.domain, f.name) for f in self.model.functions}
        for key in dict.fromkeys(zip(domains, op_types)):  # each (domain, op) once, in order of first use
            domain = "" if key[0] == "ai.onnx" else key[0]
            if domain not in _SCHEMA_DOMAINS or key in local:
                continue
            version = versions.get(domain)
            if version is None:
                raise self._invalid(f"{self._describe(self._first_node(key))} is in domain '{domain or 'ai.onnx'}', for which the model imports no opset")
            if not onnx.defs.has(key[1], version, domain):
                raise self._invalid(f"{self._describe(self._first_node(key))}: '{key[1]}' is not an operator of opset {version} of '{domain or 'ai.onnx'}'")

    def _first_node(self, key: tuple[str, str]) -> int:
        return next(i for i, n in enumerate(self.nodes) if (n.domain, n.op_type) == key)

    def _topological_order(self) -> list[int]:
        producer, consumers = self.producer, self.consumers
        # already sorted when every tensor's first reader (readers are listed in node order) comes after its writer
        if all(consumers[t][0] > i for t, i in producer.items() if t in consumers):
            return list(range(len(self.nodes)))
        g = nx.DiGraph()
        g.add_nodes_from(range(len(self.nodes)))
        g.add_edges_from(
            (producer[name], i) for i, names in enumerate(self.inputs_of) for name in names if name in producer
        )
        try:
            return list(nx.lexicographical_topological_sort(g))
        except nx.NetworkXUnfeasible:
            cycle = [self._describe(u) for u, _ in nx.find_cycle(g)]
            raise self._invalid(f"it has a cycle: {' -> '.join(cycle[:8])}{' -> ...' if len(cycle) > 8 else ''}") from None

    def _constant_tensors(self) -> tuple[set[str], list[list[str]]]:
        """The constant tensors, and each node's non-constant inputs (one pass in topological order: a
        tensor's constness is settled before any reader is visited)."""
        const = set(self.initializers) | self.sparse_initializers
        data: list[list[str]] = [[]] * len(self.nodes)
        inputs_of, outputs_of = self.inputs_of, self.outputs_of
        for i in self.order:
            names = [name for name in inputs_of[i] if name not in const]
            if names:
                data[i] = names
            else:
                const.update(o for o in outputs_of[i] if o)
        return const, data

    # -- queries ------------------------------------------------------------
    @cached_property
    def tensor_names(self) -> frozenset[str]:
        """Every value name in the top-level graph."""
        return frozenset(chain(self.producer, self.inputs, self.initializers, self.sparse_initializers))

    def is_data_node(self, i: int) -> bool:
        """True for nodes that depend on a graph input (not constant-foldable)."""
        return bool(self.data_inputs_of[i])

    def data_inputs(self, i: int) -> list[str]:
        """Inputs of node ``i`` that are not constants."""
        return list(self.data_inputs_of[i])

    @cached_property
    def nx_graph(self) -> nx.DiGraph:
        """The data-flow graph: node indices, plus ``SOURCE`` (graph inputs) and ``SINK`` (outputs)."""
        g = nx.DiGraph()
        g.add_node(SOURCE)
        g.add_node(SINK)
        for i in self.order:
            if not self.is_data_node(i):
                continue
            g.add_node(i)
            for name in self.data_inputs(i):
                p = self.producer.get(name)
                g.add_edge(SOURCE if p is None else p, i)
        for name in self.outputs:
            p = self.producer.get(name)
            g.add_edge(SOURCE if p is None else p, SINK)
        return g

    @cached_property
    def idom(self) -> dict:
        """Each node's immediate dominator from ``SOURCE`` in `nx_graph` (networkx's
        ``immediate_dominators``): the dominator tree, built once."""
        return nx.immediate_dominators(self.nx_graph, SOURCE)

    def dominators(self, node) -> list[int]:
        """The nodes on every path from the graph inputs to ``node`` (a node index or ``SINK``), deepest first,
        ``node`` itself excluded."""
        idom = self.idom
        chain: list[int] = []
        cur = idom.get(node)
        while cur is not None and cur != SOURCE:
            chain.append(cur)
            nxt = idom[cur]
            cur = None if nxt == cur else nxt
        return chain

    @cached_property
    def bottlenecks(self) -> set[int]:
        """Nodes on every path from the graph inputs to the outputs: the dominators of ``SINK``."""
        return set(self.dominators(SINK))

    @cached_property
    def types(self) -> dict[str, onnx.TypeProto]:
        """Types of every tensor as ``onnx.shape_inference`` sees them (inferred on first use, strictly
        when the model passes, so that the cut's check can reuse it: `checked_types`)."""
        return infer_types(self.model, check=True)

    def checked_types(self) -> Mapping[str, onnx.TypeProto] | None:
        """`types` if they were already inferred and the model passed strict inference, else None
        (never runs an inference itself)."""
        types = self.__dict__.get("types")
        return types if types is not None and getattr(types, "checked", False) else None

    def shape(self, tensor: str) -> Shape | None:
        """The inferred shape of ``tensor`` (see `graphfeat.graph.shapes.shape_of`)."""
        return shape_of(self.types.get(tensor))
