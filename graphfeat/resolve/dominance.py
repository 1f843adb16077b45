"""An independent check of every level ``--strides`` returns: it lies on every path it must.

The stride rule picks levels from `GraphIndex`'s view of the
graph (its constants, its data-flow graph, its dominator tree). A fault in that
view would let it return a tensor that some path bypasses, such as a residual
branch's ``BatchNormalization`` that the block's shortcut skips, and nothing
downstream would notice: the shapes are right. So before any level is returned,
this module walks the paths again, on the ``ModelProto`` as loaded, from its
nodes' own inputs and outputs (subgraphs' outer references included), and
refuses a level that a path from the image input to its target avoids.
"""
from __future__ import annotations

from collections.abc import Sequence

import networkx as nx
import onnx

from ..errors import GraphfeatError
from ..graph import nodes_inputs

#: a level and the tensors every path to which must pass through it
Claim = tuple[str, Sequence[str]]


def _in_order(edges: list[tuple[list[str], list[str]]], sources: set[str]) -> list[tuple[list[str], list[str]]]:
    """``edges`` (each node's inputs and outputs, in file order) in an order where every tensor is written
    before it is read: the file's own when it is sorted (ONNX requires it), else networkx's topological sort."""
    known = set(sources)
    for ins, outs in edges:
        if not known.issuperset(ins):
            break
        known.update(outs)
    else:
        return edges
    writer = {o: k for k, (_, outs) in enumerate(edges) for o in outs if o}
    g = nx.DiGraph()
    g.add_nodes_from(range(len(edges)))
    g.add_edges_from((writer[n], k) for k, (ins, _) in enumerate(edges) for n in ins if n in writer)
    return [edges[k] for k in nx.topological_sort(g)]


def check_claims(model: onnx.ModelProto, image: str, claims: Sequence[Claim], what: str = "level", *,
                 fields: tuple[list[list[str]], list[list[str]]] | None = None) -> None:
    """GraphfeatError (one line) for the first claim ``(tensor, targets)`` whose tensor some path from
    ``image`` to a target avoids.

    One forward pass over the nodes decides every claim: each tensor carries the set of claims (a bit each)
    for which the image reaches it without passing the claim's tensor; a claim's tensor clears its own bit,
    and a target that still has it is reached around the tensor. ``fields``: every node's inputs (subgraphs'
    outer references included) and outputs as already read from ``model``, in file order (a
    `GraphIndex`'s ``inputs_of``/``outputs_of``: the file's fields, none of the
    index's derived view); read here when not given.
    """
    if not claims:
        return
    reach: dict[str, int] = {image: (1 << len(claims)) - 1}
    bit = {}
    for k, (tensor, _) in enumerate(claims):
        bit[tensor] = bit.get(tensor, 0) | (1 << k)
    if fields is None:
        nodes = list(model.graph.node)
        fields = (nodes_inputs(nodes, [n.op_type for n in nodes], [n.domain for n in nodes]),
                  [n.output[:] for n in nodes])
    sources = {t.name for t in model.graph.initializer} | {i.name for i in model.graph.input}
    for ins, outs in _in_order(list(zip(*fields)), sources):
        mask = 0
        for name in ins:
            mask |= reach.get(name, 0)
        if mask:
            for out in outs:
                if out:
                    reach[out] = mask & ~bit.get(out, 0)
    for k, (tensor, targets) in enumerate(claims):
        if tensor == image or tensor not in reach:
            raise GraphfeatError(f"internal check failed: the {what} '{tensor}' is not computed from the input "
                                 f"'{image}'; graphfeat refuses it rather than return a wrong level")
        bypassed = next((t for t in targets if t != tensor and reach.get(t, 0) >> k & 1), None)
        if bypassed is not None:
            raise GraphfeatError(
                f"internal check failed: the {what} '{tensor}' is not on every path from the input to "
                f"'{bypassed}' (a path around it reaches it), so it is not the deepest tensor the rule defines; "
                "graphfeat refuses it rather than return a wrong level. Pick tensors with --tensors "
                "(see `graphfeat info`) and report the file")
