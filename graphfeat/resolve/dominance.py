"""An independent check of every level ``--strides`` returns: it lies on every path it must.

The stride rule picks levels from :class:`~graphfeat.graph.GraphIndex`'s view of the
graph (its constants, its data-flow graph, its dominator tree). A fault in that
view would let it return a tensor that some path bypasses, such as a residual
branch's ``BatchNormalization`` that the block's shortcut skips, and nothing
downstream would notice: the shapes are right. So before any level is returned,
this module walks the paths again, on the ``ModelProto`` as loaded, with a
tensor-level networkx graph of its own (an edge from every input of a node, its
subgraphs' outer references included, to every output), and refuses a level that
a path from the image input to its target avoids.
"""
from __future__ import annotations

from collections.abc import Sequence

import networkx as nx
import onnx

from ..errors import GraphfeatError
from ..graph import node_inputs

#: a level and the tensors every path to which must pass through it
Claim = tuple[str, Sequence[str]]


def tensor_graph(model: onnx.ModelProto) -> nx.DiGraph:
    """Tensor -> tensor edges of the top-level graph: each node's inputs to its outputs."""
    g = nx.DiGraph()
    for node in model.graph.node:
        outs = [o for o in node.output if o]
        g.add_edges_from((i, o) for i in node_inputs(node) for o in outs)
    return g


def check_claims(model: onnx.ModelProto, image: str, claims: Sequence[Claim], what: str = "level") -> None:
    """GraphfeatError (one line) for the first claim ``(tensor, targets)`` whose tensor some path from
    ``image`` to a target avoids; a target the image does not reach is not a claim on anything."""
    if not claims:
        return
    g = tensor_graph(model)
    for tensor, targets in claims:
        if tensor == image or tensor not in g:
            raise GraphfeatError(f"internal check failed: the {what} '{tensor}' is not computed from the input "
                                 f"'{image}'; graphfeat refuses it rather than return a wrong level")
        bypass = nx.restricted_view(g, [tensor], [])
        for target in targets:
            if target == tensor or target not in g or image not in g:
                continue
            if nx.has_path(bypass, image, target):
                path = nx.shortest_path(bypass, image, target)
                via = next((t for t in path[1:-1]), image)
                raise GraphfeatError(
                    f"internal check failed: the {what} '{tensor}' is not on every path from the input to "
                    f"'{target}' (a path through '{via}' bypasses it), so it is not the deepest tensor the rule "
                    "defines; graphfeat refuses it rather than return a wrong level. Pick tensors with --tensors "
                    "(see `graphfeat info`) and report the file")
