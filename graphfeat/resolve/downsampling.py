"""A tensor's stride as the product of the strides of the ops between it and the image input.

The output size alone assumes "same" padding: an unpadded (valid) network such
as Inception-v3 shrinks 299 -> 149 -> 147 -> 73 -> 71 -> 35 -> 17 -> 8, and the
size ratios 18 and 37 are not the strides 16 and 32 that its ops apply. So the
stride of a tensor is read from the ops on the way instead, in one pass in
topological order:

- an op with a ``strides`` attribute (``Conv``, the pools, ``ConvInteger``,
  ``QLinearConv``, contrib convs) multiplies it by that stride, ``ConvTranspose``
  divides it; ``SpaceToDepth``/``DepthToSpace`` multiply/divide by the block size;
- a global pool ends it (the result has no spatial grid);
- an op that resamples without saying by how much in its attributes (``Resize``,
  ``Upsample``, a strided ``Slice``, a ``Reshape`` that merges patches) takes the
  stride its output size measures (the caller's ``measured``), or none;
- every other op keeps the stride its data inputs agree on; inputs that
  disagree (a fusion of two strides) give none.

An asymmetric stride (``[2, 1]``) gives none. The caller cross-checks the result
against the tensor's size (see `graphfeat.resolve.strides.measure_strides`).
"""
from __future__ import annotations

from ..graph import GraphIndex
from ..graph.region import GLOBAL_POOLS

#: ops that resample by an amount their attributes do not state: their output's measured stride is taken
RESAMPLING = frozenset({"Resize", "Upsample", "Slice", "Reshape", "GridSample", "Col2Im", "RoiAlign", "MaxRoiPool",
                        "CenterCropPad", "Gather", "GatherElements", "Expand", "Tile", "Einsum", "Unsqueeze", "Squeeze",
                        "Flatten"})
#: standard ops that never change a stride (read without looking at their attributes)
_KEEPS = frozenset({"Relu", "Add", "Mul", "Sub", "Div", "Sigmoid", "Clip", "BatchNormalization", "Concat", "Identity",
                    "Transpose", "Cast", "Split", "LeakyRelu", "HardSwish", "HardSigmoid", "Tanh", "Pad", "Softmax",
                    "LayerNormalization", "InstanceNormalization", "MatMul", "Erf", "Pow", "Sqrt", "ReduceMean"})


def _ints(node, name: str) -> list[int] | None:
    for a in node.attribute:
        if a.name == name:
            return list(a.ints) if a.ints else [a.i]
    return None


def _step(node, stride: int) -> int | None:
    """The stride after ``node`` from its input's ``stride``, or None."""
    op = node.op_type
    if op in GLOBAL_POOLS:
        return None
    if op in ("SpaceToDepth", "DepthToSpace"):
        block = (_ints(node, "blocksize") or [0])[0]
        if block < 1:
            return None
        return stride * block if op == "SpaceToDepth" else (stride // block if stride % block == 0 else None)
    strides = _ints(node, "strides")
    if strides is None:
        return stride
    if len(set(strides)) != 1 or strides[0] < 1:
        return None
    if op == "ConvTranspose":
        return stride // strides[0] if stride % strides[0] == 0 else None
    return stride * strides[0]


def step_stride(index: GraphIndex, i: int, known: list[int | None], measured: int | None) -> int | None:
    """The stride along the path after node ``i``, from its data inputs' (``known``, None where unknown) and,
    for a resampling op, its output's ``measured`` stride (see the module docstring)."""
    op = index.op_types[i]
    if op in RESAMPLING:
        return measured
    agreed = {s for s in known if s is not None}
    if len(agreed) != 1:
        return None
    if op in _KEEPS and not index.domains[i]:
        return agreed.pop()
    return _step(index.nodes[i], agreed.pop())
