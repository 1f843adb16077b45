"""``graphfeat info``: the feature layers a model offers, as ``graphfeat cut`` sees them.

Every level also gets its *measured* stride and layout
(`graphfeat.resolve.strides`); where the measurement disagrees with a
recorded ``reduction`` the row says so. A file whose levels have no names gets
the trunk candidates at each stride instead (`stride_candidates`).
`stride_map` is the same analysis laid out along the trunk, for ``info --html``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import onnx

from .errors import GraphfeatError, first_line
from .graph import GraphIndex, Shape
from .levels import FeatureInfo, level_dims
from .onnxfile import check_sane, load_skeleton, weights_loader
from .resolve import Resolver, ValueFinder
from .resolve.strides import Analysis, analyse


@dataclass
class Level:
    """One row of ``graphfeat info``: ``stride``/``layout`` are measured, ``note`` flags a disagreement."""

    index: int
    name: str
    chs: int | None
    reduction: int | None
    tensor: str
    shape: Shape | None
    resolved_by: str
    stride: int | None = None
    layout: str | None = None
    note: str = ""
    source: str = ""  # on a detector: "backbone" or "neck"
    pick: str = ""  # "strides": what `cut --strides` takes at its stride; "neck": what `--neck` takes


@dataclass
class StrideCandidate:
    """A trunk tensor at a measured stride of a file without named levels; ``deepest`` is what
    ``cut --strides`` takes at that stride."""

    stride: int
    tensor: str
    op: str
    shape: list
    layout: str
    deepest: bool
    class_token: bool = False
    source: str = "backbone"  # or "neck": a detector neck's output (what `cut --strides --neck` takes)


def _load(model_or_path: onnx.ModelProto | str | os.PathLike) -> onnx.ModelProto:
    if isinstance(model_or_path, onnx.ModelProto):
        check_sane(model_or_path, "the model")
        return model_or_path
    return load_skeleton(model_or_path)[0]  # the weights are never needed here


def feature_levels(model_or_path: onnx.ModelProto | str | os.PathLike, *,
                   reference: str | os.PathLike | None = None, like: str | os.PathLike | None = None) -> list[Level]:
    """The model's feature layers: from its graphfeat metadata, else resolved structurally.

    Structural rows take ``chs``/``reduction`` from inferred NCHW shapes when
    they are static, else None (see `graphfeat.levels.level_dims`).
    A level whose recorded tensor a tool renamed is found again by value (its
    fingerprint, or ``reference``/``like``: see [`graphfeat.cut`][graphfeat.cut]); its row
    says ``resolved_by`` ``fingerprint`` or ``reference``. A recorded level
    that cannot be found (fused away, ambiguous, stale without a fingerprint)
    is a GraphfeatError naming it, as for the cut.
    """
    index = GraphIndex(_load(model_or_path))
    resolver = Resolver(index, ValueFinder(index, weights_loader(model_or_path), reference=reference, like=like))
    levels = resolver.levels()
    return _level_rows(index, resolver, levels, _analysis(index) if levels else None)


def _level_rows(index: GraphIndex, resolver: Resolver, levels: list, analysis: Analysis | None) -> list[Level]:
    """The rows of the resolved ``levels``, each with its stride and layout as ``analysis`` measured them."""
    measured = analysis.measured if analysis is not None else {}
    picks = _picks(resolver, analysis)
    rows = []
    for i, res in enumerate(levels):
        m = measured.get(res.tensor)
        stride, layout = (m.stride, m.layout) if m is not None else (None, None)
        note = m.note if m is not None else ""
        if res.level is not None:
            chs, red = res.level.chs, res.level.reduction
            index_value = res.level.index if res.level.index is not None else i
            if stride is not None and red is not None and stride != red:
                note = f"measured stride {stride} differs from the recorded reduction {red}"
        else:
            chs, red = level_dims(index.shape(res.tensor), index.shape(index.inputs[0]) if index.inputs else None)
            if red is None and stride is not None:  # NHWC or tokens: the measurement knows
                chs, red = m.channels, stride
            index_value = i
        source = "" if analysis is None or analysis.end is None else (
            "neck" if res.tensor in analysis.after else "backbone")
        rows.append(Level(index_value, res.name, chs, red, res.tensor, index.shape(res.tensor), res.resolved_by,
                          stride, layout, note, source, picks.get(res.tensor, "")))
    return rows


def _analysis(index: GraphIndex) -> Analysis | None:
    """The stride rule's view, or none when the graph has no image input to measure strides from."""
    try:
        return analyse(index)
    except GraphfeatError:
        return None


def _picks(resolver: Resolver, analysis: Analysis | None) -> dict[str, str]:
    """Tensor -> ``strides`` or ``neck``: what ``cut --strides`` (and ``--neck``) would take at each stride."""
    if analysis is None:
        return {}
    strides = sorted({m.stride for m in analysis.measured.values() if m.stride})
    picks = {c.tensor: "neck" for c in analysis.neck.values()}
    for s in strides:
        try:
            picks.update((r.tensor, "strides") for r in resolver.resolve_strides([s]))
        except GraphfeatError:
            continue
    return picks


def stride_candidates(model_or_path: onnx.ModelProto | str | os.PathLike) -> list[StrideCandidate]:
    """The trunk tensors at each measured stride, shallow to deep, then a detector neck's outputs (for files
    without named levels)."""
    a = analyse(GraphIndex(_load(model_or_path)))
    found = [c for cands in a.by_stride.values() for c in cands] + list(a.neck.values())
    return [StrideCandidate(c.stride, c.tensor, c.op, list(c.shape), c.layout, c.deepest, c.class_token, c.source)
            for c in found]


@dataclass
class MapTensor:
    """One tensor of the stride map. ``part``: ``input``, ``backbone`` (the trunk before the head), ``head``
    (the trunk after its last strided tensor), ``neck`` (a detector neck's output) or ``branch`` (a level off
    the trunk). ``candidate``: a strided trunk tensor before the head (``--tensors`` takes any, ``--strides``
    the ``deepest``); ``levels``: the names of the file's levels at this tensor. ``shape`` is measured at the
    map's ``input_shape``."""

    position: int
    tensor: str
    op: str
    shape: list | None
    stride: int | None
    layout: str | None
    channels: int | None
    part: str
    candidate: bool = False
    deepest: bool = False
    levels: list[str] = field(default_factory=list)
    note: str = ""


@dataclass
class StrideMap:
    """The trunk from input to head with each tensor's measured stride, a neck's outputs, and the file's levels
    (as [`feature_levels`][graphfeat.feature_levels] lists them). ``note`` says why ``tensors`` is empty (no image input)."""

    input_shape: list | None
    tensors: list[MapTensor]
    levels: list[Level]
    note: str = ""


def stride_map(model_or_path: onnx.ModelProto | str | os.PathLike, *, reference: str | os.PathLike | None = None,
               like: str | os.PathLike | None = None) -> StrideMap:
    """The stride analysis ``info`` and ``cut --strides`` use, laid out along the trunk, with the file's levels
    (``reference``/``like`` as for [`feature_levels`][graphfeat.feature_levels]) marked where they lie."""
    index = GraphIndex(_load(model_or_path))
    resolver = Resolver(index, ValueFinder(index, weights_loader(model_or_path), reference=reference, like=like))
    levels = resolver.levels()
    try:
        analysis = analyse(index)
    except GraphfeatError as exc:
        return StrideMap(None, [], _level_rows(index, resolver, levels, None), first_line(exc))
    rows = _level_rows(index, resolver, levels, analysis)
    tensors = _map_tensors(index, analysis, rows)
    return StrideMap(tensors[0].shape if tensors else None, tensors, rows)


def _map_tensors(index: GraphIndex, analysis: Analysis, rows: list[Level]) -> list[MapTensor]:
    """The input, the trunk (backbone, then head), the neck's outputs, then any level off all of those."""
    named: dict[str, list[str]] = {}
    for r in rows:
        named.setdefault(r.tensor, []).append(r.name)
    candidates = {c.tensor: c for cands in analysis.by_stride.values() for c in cands}
    last = max((k for k, t in enumerate(analysis.trunk) if t in candidates), default=-1)
    image = next((t for t in index.inputs if t in analysis.measured), None)
    placed = ([(image, "input")] if image is not None else []) + [
        (t, "backbone" if k <= last else "head") for k, t in enumerate(analysis.trunk)]
    placed += [(c.tensor, "neck") for c in analysis.neck.values()]
    seen = {t for t, _ in placed}
    placed += [(r.tensor, "branch") for r in rows if r.tensor not in seen and not seen.add(r.tensor)]
    out = []
    for position, (t, part) in enumerate(placed):
        m = analysis.measured.get(t)
        cand = analysis.neck.get(m.stride) if part == "neck" and m is not None else candidates.get(t)
        shape = m.shape if m is not None else index.shape(t)
        producer = index.producer.get(t)
        out.append(MapTensor(position, t, index.op_types[producer] if producer is not None else "input",
                             list(shape) if shape is not None else None, m.stride if m else None,
                             m.layout if m else None, m.channels if m else None, part, cand is not None,
                             bool(cand and cand.deepest), named.get(t, []), m.note if m else ""))
    return out


def feature_info(model_or_path: onnx.ModelProto | str | os.PathLike) -> FeatureInfo:
    """A [`FeatureInfo`][graphfeat.FeatureInfo] of the model's feature layers (all selected).

    Raises GraphfeatError when a layer's channels or reduction are unknown
    (``graphfeat info`` shows which).
    """
    rows = feature_levels(model_or_path)
    if not rows:
        raise GraphfeatError("the model has no feature layers that graphfeat can resolve")
    unknown = [r.name for r in rows if r.chs is None or r.reduction is None]
    if unknown:
        raise GraphfeatError(
            f"channels/reduction of {', '.join(unknown)} are unknown (dynamic or non-NCHW shapes); "
            "run `graphfeat info` to see them"
        )
    return FeatureInfo([{"name": r.name, "chs": r.chs, "reduction": r.reduction, "tensor": r.tensor} for r in rows])
