"""Detectors: where a backbone ends, and the tensors its neck hands to the heads.

A graph has a *neck* when a stride is re-entered: an op upsamples (its output has
a smaller measured stride than its data input: ``Resize``, ``Upsample``,
``ConvTranspose``, ``DepthToSpace``), what it computes is merged with a tensor
that was not upsampled, and the part of the graph computed before any upsampling
(the *backbone*) already reaches the graph's deepest stride, and every strided
backbone tensor feeds the backbone's end. A multi-resolution network (HRNet: its
branches run in parallel before they fuse, and it goes deeper after its fusions)
has no neck in this sense, and neither has a plain upsampling of logits (no merge).

- **The backbone ends** at its last tensor at its deepest stride (YOLO's SPPF
  output); its levels are the trunk *to that tensor*, so a neck output of the
  same shape is never taken for a backbone level.
- **A neck output** at stride ``s`` is the tensor the heads read: the nearest
  common dominator of the places where the neck's stride-``s`` tensors leave that
  stride going deeper (a PAN's downsampling conv) or leave the grid (the head's
  reshape, a graph output), stepped back while it is only a prediction (a tensor
  read only where the grid is left: the head's last conv, or its concat of box and
  class branches). Limit: a head of several chained convs on one branch, at a
  stride the neck does not leave going deeper, ends one conv early.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import networkx as nx

from ..graph import GraphIndex
from ..graph.region import SHAPE_OPS


@dataclass(frozen=True)
class Neck:
    """``end``: the backbone's last tensor; ``outputs``: stride -> the neck's output there; ``exits``: stride ->
    the tensors where that stride's neck tensors leave it (every path to them passes the output); ``after``:
    every tensor computed from an upsampled one (the neck and the heads)."""

    end: str
    outputs: dict[int, str]
    exits: dict[int, tuple[str, ...]]
    after: frozenset[str]


def _stride(measured: Mapping, t: str) -> int | None:
    m = measured.get(t)
    return m.stride if m is not None else None


def find_neck(index: GraphIndex, measured: Mapping) -> Neck | None:
    """The graph's neck (see the module docstring), or None when it has none; ``measured``: tensor ->
    ``TensorStride`` (`graphfeat.resolve.strides.measure_strides`)."""
    stride = {t: m.stride for t, m in measured.items() if m.stride}
    ups = set()
    get, outputs_of, data_inputs_of = stride.get, index.outputs_of, index.data_inputs_of
    for i in index.order:  # an op whose output has a smaller stride than an input
        outs = outputs_of[i]
        out_stride = get(outs[0]) if outs else None
        if out_stride is not None:
            for t in data_inputs_of[i]:
                if get(t, 0) > out_stride:
                    ups.add(i)
                    break
    if not ups:
        return None
    after: set[str] = set()
    merged = False
    for i in index.order[min(index.pos[u] for u in ups):]:
        ins = index.data_inputs_of[i]
        from_up = [t for t in ins if t in after]
        if from_up and len(from_up) < len(set(ins)):
            merged = True
        if i in ups or from_up:
            after.update(o for o in index.outputs_of[i] if o)
    if not merged:
        return None
    strided = [(t, m.stride) for t, m in measured.items() if m.stride and t in index.producer]
    backbone = [(t, s) for t, s in strided if t not in after]
    if not backbone or max(s for _, s in backbone) != max(s for _, s in strided):
        return None
    deepest = max(s for _, s in backbone)
    end = [t for t, s in backbone if s == deepest][-1]
    feeding = nx.ancestors(index.nx_graph, index.producer[end]) | {index.producer[end]}
    if any(index.producer[t] not in feeding for t, _ in backbone):
        return None  # parallel branches before any fusion (HRNet): not one backbone feeding a neck
    outputs, exits = {}, {}
    for s in sorted({s for t, s in strided if t in after}):
        found = _neck_output(index, measured, after, s)
        if found is not None:
            outputs[s], exits[s] = found
    return Neck(end, outputs, exits, frozenset(after))


def _neck_output(index: GraphIndex, measured: Mapping, after: set[str], s: int) -> tuple[str, tuple[str, ...]] | None:
    """The neck's output at stride ``s`` and the exits it feeds, or None where no head reads that stride."""
    region = {t for t in after if _stride(measured, t) == s}
    anchors: list[int] = []
    lossy: set[int] = set()
    leaving: list[str] = []
    for i in index.order:
        read = [t for t in index.data_inputs_of[i] if t in region]
        if not read or index.op_types[i] in SHAPE_OPS:
            continue
        out = next((o for o in index.outputs_of[i] if o), None)
        out_stride = _stride(measured, out) if out else None
        if out in region:
            continue
        if out_stride is None:  # the grid is left: a head's reshape
            lossy.add(i)
        elif not out_stride > s:  # shallower: the top-down path, not a head's input
            continue
        # (deeper again: a PAN's downsampling). The feature read, not the exit's own dominator: a reshape's
        # target shape may be computed from the input's shape, a path around everything
        anchors += [index.producer[t] for t in read]
        leaving += read if out_stride is None or not out else [out]
    anchors += [index.producer[o] for o in index.outputs if o in region]
    lossy_tensors = {o for o in index.outputs if o in region}
    leaving += lossy_tensors
    if not anchors:
        return None
    node = _common_dominator(index, anchors)
    while node is not None and not isinstance(node, str):
        tensor = next((o for o in index.outputs_of[node] if o), None)
        readers = {r for r in index.consumers.get(tensor, ()) if index.op_types[r] not in SHAPE_OPS}
        if not (readers <= lossy and (readers or tensor in lossy_tensors)):
            break
        node = index.idom.get(node)  # a prediction: step back to what the head reads
    if node is None or isinstance(node, str):
        return None
    tensor = next((o for o in index.outputs_of[node] if o), None)
    return (tensor, tuple(leaving)) if _stride(measured, tensor) == s else None


def _common_dominator(index: GraphIndex, nodes: list[int]) -> int | None:
    """The deepest node that dominates every one of ``nodes`` (a node dominates itself)."""
    first, *rest = nodes
    shared = None
    for other in rest:
        chain = {other, *index.dominators(other)}
        shared = chain if shared is None else shared & chain
    for cand in [first, *index.dominators(first)]:
        if shared is None or cand in shared:
            return cand
    return None
