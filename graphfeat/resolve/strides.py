"""The automatic pyramid: measure strides and layouts, find the trunk, pick one level per stride.

Nothing here reads a tensor or node name for meaning; the analysis works on
graphs whose names are numbers.

**Strides, measured.** The image input is ``(B, C, H, W)`` (NCHW) or, when its
last dim is a static 1, 3 or 4 and its second is not, ``(B, H, W, C)`` (NHWC).
Each tensor's shape is taken at a concrete input size; the size is the input's
own when H and W are static, else a *probe size*. Shapes come, cheapest first,
from (1) ``onnx`` shape inference on the weight-free skeleton at the concrete size
(graphfeat's one inference entry, `graphfeat.graph.infer_types`), (2) a
probe run on ONNX Runtime of that skeleton (zero weights, seeded random
input) that exposes the still-unknown tensors as outputs (contrib ops such as
``com.microsoft.FusedConv``, data-dependent shapes). At the input's own size
the inference is the index's (`GraphIndex.types`): strict when the model
passes, so that the cut's check reuses it instead of inferring the result
again (the rule in `graphfeat.graph.check_model`). A tensor has stride ``s``
in layout

- ``nchw``: shape ``(B, C, h, w)``,
- ``nhwc``: shape ``(B, h, w, C)``,
- ``tokens``: shape ``(B, N, C)`` with ``N = h * w``, or ``N = h * w + 1``
  (``class_token=True``),

where ``h`` is ``floor(H/s)`` or ``ceil(H/s)`` and ``w`` likewise, for an
integer ``s`` (a power of two when several fit). A tensor whose spatial dims
are all 1 has no measurable stride (global pooling looks exactly like that).

*Layout ambiguity.* A 4-D shape may fit both NCHW and NHWC (``(1, 56, 56, 56)``
at stride 4 on a 224x224 input). The fits are first narrowed by the second probe
size (dynamic inputs only; see below). If more than one fit is left, the tensor
takes the layout its producer's input had (through a ``Transpose``, the permuted
layout), because only a ``Transpose`` moves the channel axis in practice. If
that does not decide it (no measured input, a ``Reshape``), the tensor is *not*
classified: it is returned with ``stride=None`` and a note, never guessed.

*Two probe sizes.* With symbolic H/W the shapes are taken at ``probe_size``
(default 256x320: non-square, so that swapped H/W axes fit nothing) and at
224x224. A tensor keeps the fits common to both; a tensor that fits at one size
and not the other, or differently, is returned with ``stride=None`` and a note
naming both measurements.

**The trunk** is the set of tensors every input-to-output path passes through:
the data outputs of ``index.bottlenecks`` (the dominators of the sink), one per
node (a multi-output node counts only when exactly one of its outputs is read).
**The head** is the part of the trunk after its last strided tensor: global
pooling, ``Flatten``, a ``Reshape`` to ``(B, C)``, the classifier. Trunk tensors
without a stride *between* strided ones (a rank-6 reshape in a patch merging)
are skipped, not taken for the head.

**The rule.** For a requested stride ``s`` the level is the *deepest* (last in
topological order) strided trunk tensor at stride ``s`` before the head, not
counting a *normalization tail*: trunk tensors that only normalize the stage
output for the next stage (a LayerNorm, or its decomposition into ReduceMean,
Sub, Div and affine Mul/Add, with the Casts and Transposes around it, as in
ConvNeXt's downsampling layer). Then the level is the tensor the tail starts
from, the stage output. In a
ResNet that is the stage output (the next stage's first conv runs beside its
downsample branch, so it is not trunk); in an inverted-residual net (MobileNet,
EfficientNet) it is the expansion activation of the next stage's first block,
the tensor SSDLite attaches to. Refused, with the fix: a stride that is not a
positive integer; a stride the trunk lacks but branches have (HRNet's parallel
branches: use ``--tensors``); a stride the graph never reaches (the strides it
has are listed); a graph whose input has no spatial dims.

Limitation: with several graph outputs the trunk ends where the paths to them
part, so a model that already outputs c2..c5 has only stride-4 trunk tensors.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from numbers import Integral
from typing import NamedTuple

import numpy as np
import onnx
from onnx import helper

from ..errors import GraphfeatError, first_line
from ..graph.probe import expose, ort_runner
from .downsampling import step_stride
from .neck import find_neck
from ..graph import LAYOUTS, ONNX_DOMAINS, GraphIndex, ImageInput, image_input, infer_types, shape_of, skeleton, skeleton_file, with_input_shapes

#: probe sizes (H, W) for inputs with symbolic H/W: the first is the one reported
DEFAULT_PROBE = (256, 320)
SECOND_PROBE = (224, 224)
_AXES = {"nchw": ("B", "C", "H", "W"), "nhwc": ("B", "H", "W", "C")}


class TensorStride(NamedTuple):  # a NamedTuple: one is made per tensor, 100k on a big graph
    """One tensor's measured placement. ``stride``/``layout`` are None when the
    tensor looks spatial but could not be placed; ``note`` then says why."""

    tensor: str
    stride: int | None
    layout: str | None  # "nchw" | "nhwc" | "tokens"
    shape: tuple  # at the (first) probe size
    channels: int | None
    grid: tuple[int, int] | None = None  # (h, w) at the probe size
    class_token: bool = False
    note: str = ""


@dataclass(frozen=True)
class Candidate:
    """A strided trunk tensor before the head; ``deepest`` marks the level the rule picks."""

    tensor: str
    op: str
    stride: int
    layout: str
    shape: tuple
    channels: int | None
    deepest: bool
    class_token: bool = False
    grid: tuple[int, int] | None = None
    source: str = "backbone"  # "backbone", or "neck": a detector neck's output


# -- shapes at a concrete size ---------------------------------------------------------
def _concrete(dims, batch: int) -> tuple | None:
    if dims is None or any(not isinstance(d, int) for d in dims[1:]):
        return None
    return (dims[0] if isinstance(dims[0], int) else batch, *dims[1:]) if dims else ()


def _data_tensors(index: GraphIndex, inp: ImageInput) -> list[str]:
    """The input, then every tensor computed from a graph input, in topological order."""
    out = [inp.name]
    const, inputs_of, nodes = index.constants, index.inputs_of, index.nodes
    for i in index.order:
        if any(name not in const for name in inputs_of[i]):  # index.is_data_node, inlined: 100k calls
            out.extend(o for o in nodes[i].output if o)
    return out


def _probe_shapes(index: GraphIndex, inp: ImageInput, feed: tuple, wanted: list[str]) -> dict[str, tuple]:
    """Run the weight-free skeleton (zero weights) on ONNX Runtime with ``wanted`` exposed as outputs."""
    sk, need = skeleton(index.model)
    with_input_shapes(sk, {inp.name: feed})
    expose(sk.graph, wanted)
    rng = np.random.default_rng(0)
    feeds = {}
    for vi in index.model.graph.input:
        if vi.name not in index.inputs:
            continue
        dtype = helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)
        shape = feed if vi.name == inp.name else _concrete(shape_of(vi.type), feed[0])
        if shape is None:
            raise GraphfeatError(f"cannot probe the model: its extra input '{vi.name}' has no static shape")
        if np.issubdtype(dtype, np.floating):
            feeds[vi.name] = rng.standard_normal(shape).astype(dtype)
        elif vi.name == inp.name:
            feeds[vi.name] = rng.integers(0, 255, shape).astype(dtype)
        else:
            feeds[vi.name] = np.zeros(shape, dtype)
    try:
        with skeleton_file(sk, need) as path:  # sparse zeros: weight values do not change shapes
            results = ort_runner(path, wanted, policy="shapes")(feeds)
    except Exception as exc:  # ORT raises its own types; ort_runner a GraphfeatError
        first = first_line(exc)
        raise GraphfeatError(f"the probe run on ONNX Runtime at input {feed} failed ({first}); "
                             "the model may not accept that input size") from None
    return {t: tuple(int(d) for d in r.shape) for t, r in results.items()}


def _shapes_at(index: GraphIndex, inp: ImageInput, size: tuple[int, int]) -> dict[str, tuple | None]:
    """Every data tensor's shape at input ``size``: shape inference first, a probe run for the rest."""
    feed = inp.concrete(size)
    types = index.types if inp.static else infer_types(index.model, {inp.name: feed})
    memo: dict[bytes, tuple | None] = {}  # a backbone has few distinct types: read each one's dims once

    def concrete(tp: onnx.TypeProto | None) -> tuple | None:
        if tp is None:
            return None
        key = tp.SerializeToString()
        found = memo.get(key, memo)
        if found is memo:
            found = memo[key] = _concrete(shape_of(tp), feed[0])
        return found

    shapes = {t: concrete(types.get(t)) for t in _data_tensors(index, inp)}
    shapes[inp.name] = feed
    outs = set(index.outputs)
    wanted = [t for t, v in shapes.items() if v is None and (t in index.consumers or t in outs)]
    if wanted:
        shapes.update(_probe_shapes(index, inp, feed, wanted))
    return shapes


# -- fitting shapes to strides ------------------------------------------------------------
def _axis_range(full: int, n: int) -> tuple[float, float]:
    """Open interval of strides s with n in {floor(full/s), ceil(full/s)}."""
    return full / (n + 1), (full / (n - 1) if n > 1 else math.inf)


def _stride(size: tuple[int, int], grid: tuple[int, int]) -> int | None:
    (H, W), (h, w) = size, grid
    if h < 1 or w < 1 or (h == 1 and w == 1):
        return None
    lo = max(_axis_range(H, h)[0], _axis_range(W, w)[0])
    hi = min(_axis_range(H, h)[1], _axis_range(W, w)[1], max(H, W) * 2)
    first, last = math.floor(lo) + 1, math.ceil(hi) - 1
    if first > last:
        return None
    ok = [s for s in range(first, last + 1) if h in (H // s, -(-H // s)) and w in (W // s, -(-W // s))]
    if not ok:
        return None
    ideal = math.sqrt(H * W / (h * w))
    pow2 = [s for s in ok if s & (s - 1) == 0]
    return min(pow2 or ok, key=lambda s: abs(math.log(s / ideal)))


def _token_grid(size: tuple[int, int], n: int) -> tuple[int, tuple[int, int]] | None:
    H, W = size
    if n < 2:
        return None
    ideal = math.sqrt(H * W / n)
    for s in sorted({max(1, math.floor(ideal)), math.ceil(ideal), 1 << max(0, round(math.log2(ideal)))},
                    key=lambda s: (s & (s - 1) != 0, abs(s - ideal))):
        for h in (H // s, -(-H // s)):
            for w in (W // s, -(-W // s)):
                if h * w == n and _stride(size, (h, w)) == s:
                    return s, (h, w)
    return None


#: one fit: (layout, stride, class_token, grid, channels)
_Fit = tuple


def _fits(shape: tuple | None, size: tuple[int, int], batch: int) -> list[_Fit]:
    if shape is None or len(shape) not in (3, 4) or shape[0] != batch:
        return []
    fits = []
    if len(shape) == 4:
        for layout, grid, ch in (("nchw", shape[2:4], shape[1]), ("nhwc", shape[1:3], shape[3])):
            s = _stride(size, grid)
            if s is not None:
                fits.append((layout, s, False, tuple(grid), ch))
    else:
        for cls in (False, True):
            found = _token_grid(size, shape[1] - cls)
            if found is not None:
                fits.append(("tokens", found[0], cls, found[1], shape[2]))
    return fits


def _key(fit: _Fit) -> tuple:
    return fit[:3]


def _say(fits: list[_Fit]) -> str:
    return " or ".join(f"{f[0]}/{f[1]}{'+cls' if f[2] else ''}" for f in fits) or "no stride"


def measure_strides(index: GraphIndex, probe_size: tuple[int, int] | None = None) -> dict[str, TensorStride]:
    """Stride and layout of every tensor of the top-level graph that looks spatial.

    ``probe_size`` (H, W) replaces only the input's symbolic H/W (default 256x320;
    224x224 is the second size that checks it). Tensors
    that fit no layout are absent; tensors that look spatial but cannot be placed
    (ambiguous, or different at the two probe sizes) have ``stride=None`` and a note.
    """
    inp = image_input(index.model)
    if probe_size is not None:
        if len(probe_size) != 2 or not all(isinstance(v, Integral) and v >= 2 for v in probe_size):
            raise GraphfeatError(f"probe size {probe_size} is not two image sizes (H, W) >= 2")
        probe_size = (int(probe_size[0]), int(probe_size[1]))
    probes_hw = (probe_size or DEFAULT_PROBE, SECOND_PROBE)
    sizes = [inp.hw] if inp.static else list(dict.fromkeys(inp.size(p) for p in probes_hw))
    batch = inp.concrete(sizes[0])[0]
    probes = [(size, _shapes_at(index, inp, size)) for size in sizes]
    first = probes[0][1]
    result: dict[str, TensorStride] = {}
    memo: dict[tuple, list[_Fit]] = {}  # a backbone has few distinct shapes

    def fits_of(shape: tuple | None, size: tuple[int, int]) -> list[_Fit]:
        key = (shape, size)
        found = memo.get(key)
        if found is None:
            found = memo[key] = _fits(shape, size, batch)
        return found

    spatial = {inp.name}  # tensors that carry the image's grid, fitted or not (a rank-6 patch merging)
    path: dict[str, int | None] = {inp.name: 1}  # the stride the ops on the way apply (unpadded networks)
    producer, data_inputs_of = index.producer, index.data_inputs_of
    for t, shape in first.items():  # the input, then the data tensors in topological order
        p = producer.get(t)
        if p is not None and not (any(x in result for x in data_inputs_of[p])
                                  or _carries_grid(index, p, spatial, first)):
            continue
        spatial.add(t)
        found = None if shape is None and len(probes) == 1 else _place(index, t, probes, fits_of, result)
        if found is not None and found.stride and found.stride & (found.stride - 1) == 0:
            path[t] = found.stride  # a power of two by the size: what the ops on the way apply (padded ops)
        elif p is not None:
            path[t] = s = step_stride(index, p, [path.get(x) for x in index.data_inputs_of[p]],
                                      found.stride if found is not None else None)
            if s is not None and s >= 2 and (found is None or found.stride != s):
                found = _valid_place(index, t, s, probes, batch, result) or found
        if found is not None:
            result[t] = found
    return result


def _place(index: GraphIndex, t: str, probes: list, fits_of, result: dict[str, TensorStride]) -> TensorStride | None:
    """``t``'s placement by its size alone (exact fits at every probe size), or None where nothing fits."""
    (first_size, first), *others = probes
    shape = first.get(t)
    fits = fits_of(shape, first_size)
    if not others and len(fits) == 1 and fits[0][0] != "tokens":  # the common case, decided by the size alone
        layout, s, cls, grid, ch = fits[0]
        return TensorStride(t, s, layout, shape or (), ch, grid, cls)
    tokens_of = _token_source(index, t, result)
    fits = _from_source(fits, tokens_of)
    per_probe = [fits] + [_from_source(fits_of(shapes.get(t), size), tokens_of) for size, shapes in others]
    if not any(per_probe):
        return None
    shape = shape or ()
    common = fits if not others else [
        f for f in fits if all(any(_key(g) == _key(f) for g in other) for other in per_probe[1:])]
    if not common:
        told = "; ".join(f"{h}x{w}: {_say(p)}" for ((h, w), _), p in zip(probes, per_probe))
        return TensorStride(t, None, None, shape, None, note=f"not the same at two probe sizes ({told})")
    if len(common) > 1:
        common = _by_producer(index, result, t, common)
    if len(common) != 1:
        note = f"ambiguous: shape {shape} fits {_say(common)} and its producer's input does not decide"
        return TensorStride(t, None, None, shape, None, note=note)
    layout, s, cls, grid, ch = common[0]
    return TensorStride(t, s, layout, shape, ch, grid, cls)


#: ops that move a grid between layouts and ranks without computing on it
_LAYOUT_OPS = frozenset({"Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Cast"})


def _carries_grid(index: GraphIndex, p: int, spatial: set[str], shapes: dict[str, tuple | None]) -> bool:
    """Whether node ``p``'s output can hold the image's grid though no data input of it is placed: an input is
    a 4-D tensor that carries the grid unplaced (a padded size), or ``p`` only rearranges a tensor that carries
    it. (A tensor with a placed input always may.) A shape that merely fits (a detector head's ``(B, C, N)``
    read as ``N`` tokens, their concatenation) is not measured."""
    ins = index.data_inputs_of[p]
    if any(x in spatial and len(shapes.get(x) or ()) == 4 for x in ins):
        return True
    return index.op_types[p] in _LAYOUT_OPS and any(x in spatial for x in ins)


def _token_source(index: GraphIndex, t: str, fitted: dict[str, TensorStride]) -> TensorStride | None:
    """The placed 4-D tensor a ``Reshape``/``Flatten`` turns into ``t``, if any."""
    p = index.producer.get(t)
    if p is None or index.op_types[p] not in ("Reshape", "Flatten"):
        return None
    src = next((fitted[x] for x in index.data_inputs_of[p] if x in fitted), None)
    return src if src is not None and src.layout in _AXES and src.grid else None


def _from_source(fits: list[_Fit], src: TensorStride | None) -> list[_Fit]:
    """Token fits of a reshaped grid: only from NHWC (reshaping NCHW gives ``(B, C, H*W)``, channels first,
    not tokens), and only its own count of tokens."""
    if src is None:
        return fits
    n = src.grid[0] * src.grid[1]
    return [f for f in fits if f[0] != "tokens" or (src.layout == "nhwc" and f[3][0] * f[3][1] == n and not f[2])]


def _valid_place(index: GraphIndex, t: str, s: int, probes: list, batch: int,
                 result: dict[str, TensorStride]) -> TensorStride | None:
    """``t`` at stride ``s``, the product of the ops' strides on the way (`graphfeat.resolve.downsampling`),
    when its size fits ``s`` as an unpadded size at every probe size: that stride wins over the size ratio
    (Inception-v3's 17x17 at 299 px is stride 16, not 18)."""
    per_probe = [_valid_fits(shapes.get(t), size, batch, s) for size, shapes in probes]
    common = [f for f in per_probe[0] if all(any(_key(g) == _key(f) for g in other) for other in per_probe[1:])]
    if len(common) > 1:
        common = _by_producer(index, result, t, common)
    if len(common) != 1:
        return None
    layout, _, _, grid, ch = common[0]
    return TensorStride(t, s, layout, probes[0][1][t], ch, grid)


def _valid_fits(shape: tuple | None, size: tuple[int, int], batch: int, s: int) -> list[_Fit]:
    """4-D fits at stride ``s`` of a size that unpadded ops shrank: each spatial dim n within
    ``full / (2 s) < n <= ceil(full / s)`` (nearer to stride ``s`` than to ``2 s``)."""
    if shape is None or len(shape) != 4 or shape[0] != batch:
        return []
    fits = []
    for layout, grid, ch in (("nchw", shape[2:4], shape[1]), ("nhwc", shape[1:3], shape[3])):
        if grid != (1, 1) and all(full / (2 * s) < n <= -(-full // s) for full, n in zip(size, grid)):
            fits.append((layout, s, False, tuple(grid), ch))
    return fits


def _by_producer(index: GraphIndex, known: dict[str, TensorStride], t: str, fits: list[_Fit]) -> list[_Fit]:
    p = index.producer.get(t)
    if p is None:
        return fits
    node = index.nodes[p]
    layouts = set()
    for name in index.data_inputs(p):
        m = known.get(name)
        if m is None or m.layout not in _AXES:
            continue
        if node.op_type == "Transpose":
            perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None) or [3, 2, 1, 0]
            axes = tuple(_AXES[m.layout][k] for k in perm)
            layouts.update(lay for lay, ax in _AXES.items() if ax == axes)
        elif node.op_type not in ("Reshape", "Flatten"):
            layouts.add(m.layout)
    narrowed = [f for f in fits if f[0] in layouts]
    return narrowed or fits


# -- the trunk and the rule -------------------------------------------------------------------
def _trunk_tensors(index: GraphIndex, end: str | None = None) -> list[str]:
    """The tensors on every path from the input to the outputs (``end``: to that tensor, itself included)."""
    outs = set(index.outputs)
    if end is None:
        nodes = index.bottlenecks
    else:
        nodes = {index.producer[end], *index.dominators(index.producer[end])}
    trunk = []
    for i in sorted(nodes, key=index.pos.__getitem__):
        read = [o for o in index.nodes[i].output if o and (o in index.consumers or o in outs)]
        if i == index.producer.get(end):
            read = [end]
        if len(read) == 1:
            trunk.append(read[0])
    return trunk


@dataclass(frozen=True)
class Analysis:
    """What the rule sees: every tensor's measured stride, the trunk (to the backbone's end on a graph with a
    neck, else to the outputs), its candidates by stride (the rule's pick marked ``deepest``), and the neck's
    outputs by stride (empty without a neck)."""

    measured: dict[str, TensorStride]
    trunk: list[str]
    by_stride: dict[int, list[Candidate]]
    neck: dict[int, Candidate]
    end: str | None  # the backbone's last tensor on a graph with a neck
    neck_exits: dict[int, tuple[str, ...]]  # stride -> where the neck's output there leads
    after: frozenset[str] = frozenset()  # on a graph with a neck: every tensor computed from an upsampled one

    def claims(self, index: GraphIndex, levels: Sequence[tuple[str, int, str]]) -> list[tuple[str, list[str]]]:
        """What the rule's definition says of the picked ``levels`` ((tensor, stride, source), any order), for
        `graphfeat.resolve.dominance.check_claims`: a backbone level lies on every path to the next
        deeper backbone level and to the trunk's end (the backbone's last tensor, or the graph outputs); a
        neck output on every path to the places its stride leaves the neck."""
        end = [self.end] if self.end is not None else list(index.outputs)
        backbone = sorted((s, t) for t, s, source in levels if source != "neck")
        found = [(t, [deeper for _, deeper in backbone[k + 1:k + 2]] + end) for k, (_, t) in enumerate(backbone)]
        found += [(t, list(self.neck_exits.get(s, ()))) for t, s, source in levels if source == "neck"]
        return found


def _candidate(index: GraphIndex, m: TensorStride, source: str) -> Candidate:
    op = index.op_types[index.producer[m.tensor]]
    return Candidate(m.tensor, op, m.stride, m.layout, m.shape, m.channels, False, m.class_token, m.grid, source)


def analyse(index: GraphIndex) -> Analysis:
    """Measure, find the trunk (and the neck, if any), and mark the rule's pick at each stride."""
    measured = measure_strides(index)
    neck = find_neck(index, measured)
    trunk = _trunk_tensors(index, neck.end if neck else None)
    by_stride: dict[int, list[Candidate]] = {}
    for t in trunk:  # all precede the head: it starts after the last of them
        m = measured.get(t)
        if m is not None and m.stride is not None:
            by_stride.setdefault(m.stride, []).append(_candidate(index, m, "backbone"))
    for cands in by_stride.values():
        k = _before_norm_tail(index, [c.tensor for c in cands])
        cands[k] = replace(cands[k], deepest=True)
    necks = {} if neck is None else {
        s: replace(_candidate(index, measured[t], "neck"), deepest=True) for s, t in neck.outputs.items()}
    return Analysis(measured, trunk, dict(sorted(by_stride.items())), necks, neck.end if neck else None,
                    dict(neck.exits) if neck else {}, neck.after if neck else frozenset())


#: ops a normalization tail is made of: a LayerNorm (or its decomposition into statistics and affine
#: arithmetic), with the casts and transposes around it
_TAIL_OPS = frozenset(
    "Transpose Cast Identity Sub Div Mul Add Pow Sqrt Reciprocal ReduceMean ReduceSum ReduceSumSquare ReduceL2 "
    "LayerNormalization InstanceNormalization GroupNormalization MeanVarianceNormalization LpNormalization".split())
_NORMALIZING = frozenset(
    "ReduceMean ReduceSum ReduceSumSquare ReduceL2 LayerNormalization InstanceNormalization GroupNormalization "
    "MeanVarianceNormalization LpNormalization".split())


def _step_ops(index: GraphIndex, a: str, b: str) -> set[str] | None:
    """Op types of the nodes between trunk tensors ``a`` and ``b`` (consecutive dominators), or None as soon
    as one is not a normalization-tail op."""
    ops, seen, stack = set(), set(), [index.producer[b]]
    while stack:
        i = stack.pop()
        if i in seen:
            continue
        seen.add(i)
        op = index.nodes[i].op_type
        if op not in _TAIL_OPS or index.nodes[i].domain not in ONNX_DOMAINS:
            return None
        ops.add(op)
        stack.extend(index.producer[n] for n in index.data_inputs(i) if n != a and n in index.producer)
    return ops


def _before_norm_tail(index: GraphIndex, tensors: list[str]) -> int:
    """Position of the level among one stride's trunk tensors: the deepest, unless the deepest ones only
    normalize it for the next stage (ConvNeXt's downsampling LayerNorm, with its transposes): then the
    tensor the normalization starts from, the stage output."""
    k, normalized = len(tensors) - 1, False
    while k > 0:
        ops = _step_ops(index, tensors[k - 1], tensors[k])
        if ops is None:
            break
        normalized = normalized or bool(ops & _NORMALIZING)
        k -= 1
    if not normalized:
        return len(tensors) - 1
    while k < len(tensors) - 1 and not (_step_ops(index, tensors[k], tensors[k + 1]) or set()) & _NORMALIZING:
        k += 1  # stop at the last tensor before the first normalizing step
    return k


#: parameter-free ops an activation is made of (``x * sigmoid(x)``, ``clip(x + 3, 0, 6) / 6``, GELU's ``Erf``)
_ACTIVATION_OPS = frozenset(
    "Relu LeakyRelu PRelu Sigmoid HardSigmoid HardSwish Tanh Elu Selu Celu Gelu Mish Softplus Clip Erf Mul Div Add "
    "Sub Max Min Identity".split())


def _activation_step(index: GraphIndex, a: str, b: str) -> bool:
    """Whether trunk tensor ``b`` is an activation of ``a`` alone: parameter-free elementwise ops (scalar
    constants only) between them."""
    seen, stack = set(), [index.producer[b]]
    while stack:
        i = stack.pop()
        if i in seen:
            continue
        seen.add(i)
        node = index.nodes[i]
        if node.op_type not in _ACTIVATION_OPS or node.domain not in ONNX_DOMAINS:
            return False
        if any(_size(index, n) > 1 for n in index.inputs_of[i] if n in index.initializers):
            return False  # a scale or bias with parameters: a layer, not an activation
        stack.extend(index.producer[n] for n in index.data_inputs(i) if n != a and n in index.producer)
    return True


def _size(index: GraphIndex, name: str) -> int:
    return math.prod(index.initializers[name].dims)


def pick_named(index: GraphIndex, analysis: Analysis, named: Sequence[tuple[str, str]],
               s: int) -> tuple[str, str, bool] | None:
    """The level at stride ``s`` of a file whose layers have names (``named``: (name, tensor), shallow to deep):
    the deepest named tensor on the trunk at that stride, not counting a normalization tail (ConvNeXt's
    downsampling LayerNorm, a layer of its own in MindCV), then carried through the activation that follows
    it when names come from parameters (``bn1`` -> the stem's ReLU, MindCV's ``relu``). Returns
    ``(tensor, name, carried)`` (``carried``: the tensor is the activation after layer ``name``), or None when
    no named tensor of the trunk has stride ``s``."""
    position = {t: k for k, t in enumerate(analysis.trunk)}
    at = [(name, t) for name, t in named if t in position and analysis.measured.get(t) is not None
          and analysis.measured[t].stride == s]
    if not at:
        return None
    at.sort(key=lambda nt: position[nt[1]])
    name, tensor = at[_before_norm_tail(index, [t for _, t in at])]
    k = start = position[tensor]
    while k + 1 < len(analysis.trunk):
        nxt = analysis.trunk[k + 1]
        m = analysis.measured.get(nxt)
        if m is None or m.stride != s or not _activation_step(index, analysis.trunk[k], nxt):
            break
        k += 1
    return analysis.trunk[k], name, k != start


def trunk_candidates(index: GraphIndex) -> dict[int, list[Candidate]]:
    """Stride -> strided trunk tensors before the head, shallow to deep; the rule's pick is marked ``deepest``.
    On a graph with a neck these are the backbone's; `analyse` has the neck's outputs too."""
    return analyse(index).by_stride


def _check_stride(s) -> int:
    if isinstance(s, str) and s.strip().isdigit():
        s = int(s)
    if isinstance(s, bool) or not isinstance(s, Integral) or s <= 0:
        raise GraphfeatError(f"stride {s!r} is not a positive integer; give strides such as 4 8 16 32")
    return int(s)


def _names(tensors: list[str], limit: int = 6) -> str:
    shown = ", ".join(f"'{t}'" for t in tensors[:limit])
    return shown + (f" and {len(tensors) - limit} more" if len(tensors) > limit else "")


def check_strides(strides: Sequence[int]) -> list[int]:
    """The requested strides as ints; GraphfeatError for an empty list, a non-positive or non-integer
    stride (strings of digits are accepted, as the CLI passes them), or a stride given twice."""
    if isinstance(strides, (str, bytes, int)):
        strides = [strides]
    wanted = [_check_stride(s) for s in strides]
    if not wanted:
        raise GraphfeatError("no stride requested; give strides such as 4 8 16 32")
    dup = sorted({s for s in wanted if wanted.count(s) > 1})
    if dup:
        raise GraphfeatError(f"stride {dup[0]} is requested more than once; give each stride once")
    return wanted


def pick_strides(index: GraphIndex, strides: Sequence[int], neck: bool = False,
                 analysis: Analysis | None = None) -> list[Candidate]:
    """One level per requested stride, in the order requested: the deepest trunk tensor at that stride (the
    backbone's, on a graph with a neck), or with ``neck`` the neck's output there."""
    wanted = check_strides(strides)
    a = analysis or analyse(index)
    if neck:
        if not a.neck:
            raise GraphfeatError("--neck: this graph has no neck (no deeper tensor is upsampled and merged back at "
                                 "a shallower stride); drop --neck to take the backbone's levels")
        missing = [s for s in wanted if s not in a.neck]
        if missing:
            have = ", ".join(map(str, a.neck))
            raise GraphfeatError(f"--neck: no head reads the neck at stride {missing[0]}; its outputs have strides "
                                 f"{have}; request some of those")
        return [a.neck[s] for s in wanted]
    on_trunk = set(a.trunk)
    unplaced = [m for m in a.measured.values() if m.stride is None]
    picked = []
    for s in wanted:
        if s in a.by_stride:
            picked.append(next(c for c in a.by_stride[s] if c.deepest))
            continue
        branches = [t for t, m in a.measured.items() if m.stride == s and t not in on_trunk and t in index.producer]
        if a.end is not None:
            raise GraphfeatError(
                f"the backbone never reaches stride {s}: its levels have strides {', '.join(map(str, a.by_stride))} "
                f"(the neck's outputs: {', '.join(map(str, a.neck)) or 'none'}, with --neck)")
        if branches:
            branches.sort(key=lambda t: index.pos[index.producer[t]])
            raise GraphfeatError(
                f"stride {s} is not on the trunk: the graph reaches it only in parallel branches "
                f"({_names(branches)}); pick the tensors yourself with --tensors")
        have = ", ".join(map(str, a.by_stride)) or "none"
        note = ""
        if unplaced:
            note = f"; {len(unplaced)} tensor(s) could not be measured, e.g. '{unplaced[0].tensor}': {unplaced[0].note}"
        raise GraphfeatError(f"the graph never reaches stride {s}: its trunk has strides {have}; "
                             f"request some of those{note}")
    return picked
