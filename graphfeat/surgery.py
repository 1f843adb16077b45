"""``graphfeat cut``: keep a model's feature layers as its outputs, drop the rest.

Data flows one way: load (`graphfeat.onnxfile`), resolve names
(`graphfeat.resolve`), edit the outputs, clean up, check and type the
outputs (`graphfeat.graph`), record the kept levels
(`graphfeat.levels`), save.

The record lists exactly the kept levels, renumbered, with ``tensor`` = the
output name and ``source_index`` = the level's original position. Levels
that came from metadata keep their ``chs``/``reduction``. Other levels take
``chs`` from the output's static channel dim and ``reduction`` from input
H / output H when both are static and agree with W; an unknown value is
``null``, never guessed. If every level then has positive ``chs`` and
non-decreasing ``reduction`` (FeatureInfo's invariants) the record goes under
``graphfeat.feature_info``; otherwise under ``graphfeat.feature_levels``
(same fields, nulls allowed), which ``graphfeat info`` and later cuts also
read but ``graphfeat.feature_info()`` refuses.
"""
from __future__ import annotations

import dataclasses
import gc
import os
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from .errors import GraphfeatError
from .graph import GraphIndex, check_model, cleanup, set_outputs, shape_of, to_nchw
from .levels import (
    LevelRecord,
    build_record,
    level_dims,
    normalize_out_indices,
    read_feature_record,
    write_feature_record,
)
from .onnxfile import (
    as_path,
    check_destination,
    check_sane,
    load_skeleton,
    materialize_deferred,
    materialize_external_data,
    save_model,
    tensor_sizes,
    TensorSizes,
    weights_loader,
)
from .resolve import Resolution, Resolver, ValueFinder

#: how ``strides`` levels are delivered: converted to NCHW, or as the graph computes them
LAYOUT_CHOICES = ("nchw", "native")


@contextmanager
def gc_paused():
    """Pause the cyclic garbage collector: graph passes create many short-lived
    objects, and collections over a 100k-node graph make the cut superlinear."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass(frozen=True)
class CutOptions:
    """What a cut keeps, and how (see [`cut`][graphfeat.cut]): exactly one of ``layers``, ``indices``, ``tensors`` and
    ``strides``; ``neck`` with ``strides``; ``layout`` for ``strides`` levels (one of `LAYOUT_CHOICES`);
    ``keep_outputs``; at most one of ``reference`` and ``like`` to find levels by value."""

    layers: Sequence[str] | None = None
    indices: Sequence[int] | None = None
    tensors: Sequence[str] | None = None
    strides: Sequence[int] | None = None
    neck: bool = False
    layout: str = "nchw"
    keep_outputs: bool = False
    reference: str | os.PathLike | None = None
    like: str | os.PathLike | None = None

    @classmethod
    def of(cls, options: CutOptions | None, fields: dict[str, Any]) -> CutOptions:
        """``options``, or one made of ``fields`` (keyword arguments); both at once is a TypeError."""
        if options is not None and fields:
            raise TypeError(f"give a CutOptions or its fields as keywords, not both ({', '.join(fields)})")
        return options if options is not None else cls(**fields)


def cut(model_or_path: onnx.ModelProto | str | os.PathLike, options: CutOptions | None = None,
        **fields: Any) -> onnx.ModelProto:
    """Return a copy of the model whose outputs are the requested feature layers.

    ``options`` (a [`CutOptions`][graphfeat.CutOptions]) or its fields as keywords. Give exactly one of ``layers`` (module names such as ``layer1`` or
    ``features.3``), ``indices`` (positions in the model's feature levels, as
    ``out_indices``: negative counts from the end), ``tensors`` (tensor
    names, kept in the given order and named as they are) or ``strides``
    (``[4, 8, 16, 32]``: one level per stride, measured, see
    `graphfeat.resolve.strides`; outputs ``stride4``, ...; on a detector
    the backbone's levels, or with ``neck`` the tensors its neck hands the heads). Layers become
    outputs named after them, shallow to deep; the original outputs are
    dropped unless ``keep_outputs``; everything no output needs is removed;
    the graphfeat metadata lists exactly the kept levels. ``layout`` applies to
    ``strides``: ``"nchw"`` delivers every level as NCHW (a Transpose, or
    Reshape+Transpose for tokens, is added), ``"native"`` keeps each as it is.

    A path is loaded without its weights (external or embedded); the tensors
    the result still needs are then read into the returned proto (use
    [`cut_file`][graphfeat.cut_file] for models too large for memory). An in-memory model is
    not modified.

    A level whose recorded tensor a deployment tool renamed or replaced is
    found again by value (`graphfeat.resolve.fingerprint`): by the
    fingerprints the export recorded, or against ``reference`` (the export's
    ``.npz``) or ``like`` (the original ``.onnx``), which also supply the
    levels of a file whose metadata was dropped. This adds one forward pass
    of the model on ONNX Runtime, and only when a level needs it.
    """
    opts = CutOptions.of(options, fields)
    with gc_paused():
        if isinstance(model_or_path, onnx.ModelProto):
            check_sane(model_or_path, "the model")
            model = onnx.ModelProto()
            model.CopyFrom(model_or_path)
            base_dir = deferred = None
        else:
            path = as_path(model_or_path)
            model, deferred = load_skeleton(path)
            base_dir = path.parent
        _cut_model(model, opts, weights_loader(model_or_path))  # the weights read only if a level is found by value
        if base_dir is not None:
            materialize_external_data(model, base_dir)
        materialize_deferred(model, deferred)
        return model


def default_output(src: Path) -> Path:
    """``MODEL.features.onnx`` beside ``MODEL.onnx``."""
    stem = src.name.removesuffix(".onnx")
    return src.with_name(f"{stem}.features.onnx")


def cut_file(src: str | os.PathLike, dst: str | os.PathLike | None = None, options: CutOptions | None = None, *,
             force: bool = False, **fields: Any) -> Path:
    """Cut the model at ``src`` and write it to ``dst`` (default ``MODEL.features.onnx``); ``options`` or its
    fields as keywords, as for [`cut`][graphfeat.cut].

    Weights are never read into memory: embedded ones are streamed from
    ``src`` into their place in ``dst`` (`graphfeat.onnxfile.wire`), external
    ones referenced in place (same directory) or their byte ranges streamed
    into ``<dst>.data``.
    The input and an existing ``dst`` are only overwritten with ``force``;
    the write is atomic. Returns the output path.
    """
    opts = CutOptions.of(options, fields)
    src = as_path(src)
    dst = as_path(dst, "an output path") if dst is not None else default_output(src)
    if src.exists():
        check_destination(dst, src, force)  # fail fast, before any work
    with gc_paused():
        model, deferred = load_skeleton(src)
        _, sizes = _cut_model(model, opts, weights_loader(src))
        return save_model(model, dst, src_dir=src.parent, src=src, force=force, deferred=deferred, sizes=sizes)


def cut_model(model: onnx.ModelProto, options: CutOptions | None = None, *,
              load_full: Callable[[], onnx.ModelProto] | None = None, **fields: Any) -> list[Resolution]:
    """Cut ``model`` in place (see [`cut`][graphfeat.cut]); return the kept levels' resolutions in output order.

    ``load_full`` returns the model with its weights, for the one ONNX Runtime run that finds
    renamed levels by value; by default ``model`` itself (then it must hold its weights)."""
    return _cut_model(model, CutOptions.of(options, fields), load_full)[0]


def _cut_model(model: onnx.ModelProto, opts: CutOptions, load_full) -> tuple[list[Resolution], TensorSizes]:
    """[`cut_model`][graphfeat.cut_model], and the result's `tensor_sizes` (for its save)."""
    layers, indices, tensors, strides = opts.layers, opts.indices, opts.tensors, opts.strides
    layout, neck = opts.layout, opts.neck
    if layout not in LAYOUT_CHOICES:
        raise GraphfeatError(f"layout must be one of {', '.join(LAYOUT_CHOICES)}, got {layout!r}")
    index = GraphIndex(model)
    resolver = Resolver(index, ValueFinder(index, load_full, reference=opts.reference, like=opts.like))
    if neck and strides is None:
        raise GraphfeatError("--neck selects by stride: give it with --strides (e.g. --strides 8 16 32 --neck)")
    picked = _select(resolver, layers, indices, tensors, strides, neck)
    sources = {r.name: r.tensor for r in picked}
    if strides is not None and layout == "nchw":
        sources.update(_to_nchw(model, picked))
        if any(sources[r.name] != r.tensor for r in picked):
            index = GraphIndex(model)  # the conversion nodes are new tensors
    pairs = [(r.tensor if r.resolved_by == "tensor" else r.name, sources[r.name]) for r in picked]
    declared = _declared_types(model, pairs)  # before the renames drop the tensors' value_info
    inferred = _shared_inference(index, pairs)
    renamed = set_outputs(model, index, pairs, keep_existing=opts.keep_outputs)
    # renames keep the order and new Identity nodes go last: a sorted graph stays sorted
    cleanup(model, assume_sorted=index.order == list(range(len(index.nodes))), index=index, renamed=renamed)
    sizes = tensor_sizes(model)
    try:
        check_model(model, declared, inferred, sizes)  # strict shape inference (types the new outputs) + checker
    except GraphfeatError as exc:
        raise _blame_input(load_full, exc) from None
    write_feature_record(model, _record(index, picked, pairs, model, resolver.metadata.record))
    return picked, sizes


def _declared_types(model: onnx.ModelProto, pairs) -> dict[str, onnx.TypeProto]:
    """Output name -> the type the file declares for its source tensor (value_info, an output or an input)."""
    g = model.graph
    known = {vi.name: vi.type for vi in (*g.value_info, *g.input, *g.output)
             if vi.HasField("type") and vi.type.WhichOneof("value") is not None
             and (not vi.type.HasField("tensor_type") or vi.type.tensor_type.elem_type)}
    return {out: known[src] for out, src in pairs if src in known}


def _shared_inference(index: GraphIndex, pairs) -> dict[str, onnx.TypeProto] | None:
    """Output name -> the input's inferred type of its source, when the input passed a strict inference
    already run on ``index`` (the stride analysis, ``levels()``); see the rule in
    `graphfeat.graph.check_model`. ``index`` must be the input's: a cut that adds conversion
    nodes rebuilds it, and the new index has inferred nothing."""
    types = index.checked_types()
    if types is None or any(src not in types for _, src in pairs):
        return None
    return {out: types[src] for out, src in pairs}


def _blame_input(load_full, exc: GraphfeatError) -> GraphfeatError:
    """When the result fails a check, say so if the input file fails the same check (it was invalid before the cut)."""
    if "fails onnx shape inference" not in str(exc) or load_full is None:
        return exc
    try:
        check_model(_copy_of(load_full()))
    except GraphfeatError as before:
        return GraphfeatError(f"the input file is not a valid model before the cut: it {str(before).removeprefix('the resulting model ')}"
                              f" — the tool that wrote it produced inconsistent types; ONNX Runtime refuses such a file too")
    except Exception:  # noqa: BLE001 - only a diagnosis
        return exc
    return exc


def _copy_of(model: onnx.ModelProto) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


def _to_nchw(model: onnx.ModelProto, picked: list[Resolution]) -> dict[str, str]:
    """Append a conversion for each level not in NCHW; level name -> the tensor that holds it as NCHW."""
    converted = {}
    for r in picked:
        p = r.placement
        if p.layout == "nchw":
            continue
        if p.layout is None:
            raise GraphfeatError(f"the layout of '{r.tensor}' (for {r.name}) is unknown ({p.note}); "
                                 "cut with --layout native to take it as it is")
        converted[r.name] = f"{r.name}/nchw"
        to_nchw(model, r.tensor, converted[r.name], layout=p.layout, stride=p.stride, grid=p.grid,
                class_token=p.class_token)
    return converted


def _select(resolver: Resolver, layers, indices, tensors, strides=None, neck=False) -> list[Resolution]:
    given = [(k, v) for k, v in (("layers", layers), ("indices", indices), ("tensors", tensors),
                                 ("strides", strides)) if v is not None]
    if len(given) != 1:
        raise GraphfeatError("give exactly one of --layers, --indices, --tensors or --strides")
    kind, values = given[0]
    if kind == "strides":  # shallow to deep, like every selection
        return sorted(resolver.resolve_strides(values, neck=neck), key=lambda r: r.placement.stride)
    if isinstance(values, (str, bytes, int)):
        values = [values]
    try:
        values = list(values)
    except TypeError:
        raise GraphfeatError(f"{kind} must be a list, got {type(values).__name__}") from None
    if not values:
        raise GraphfeatError(f"the {kind} list is empty; name at least one layer (see `graphfeat info`)")
    if kind != "indices" and not all(isinstance(v, str) and v for v in values):
        raise GraphfeatError(f"{kind} must be non-empty strings, got {values!r:.200}")
    if kind == "tensors":
        if len(set(values)) != len(values):
            raise GraphfeatError(f"--tensors names a tensor twice: {values}")
        return [resolver.resolve_tensor(t) for t in values]
    if kind == "indices":
        levels = resolver.levels()
        if not levels:
            raise GraphfeatError("the model lists no feature layers, so --indices cannot select any; use --layers or --tensors")
        return [dataclasses.replace(levels[i], source_index=i) for i in normalize_out_indices(values, len(levels))]
    if len(set(values)) != len(values):
        raise GraphfeatError(f"--layers names a layer twice: {values}")
    picked = [resolver.resolve(name) for name in values]
    return _feature_order(resolver.index, picked)


def _feature_order(index: GraphIndex, picked: list[Resolution]) -> list[Resolution]:
    """Shallow to deep: metadata order if every layer is in the metadata, else topological order."""
    if all(r.level is not None and r.level.index is not None for r in picked):
        return sorted(picked, key=lambda r: r.level.index)
    return sorted(picked, key=lambda r: index.pos[index.producer[r.tensor]])


def _record(index: GraphIndex, picked: list[Resolution], pairs, model: onnx.ModelProto,
            fallback: dict | None = None) -> dict[str, Any]:
    """The metadata for the kept levels: renumbered, ``tensor`` = output name, ``source_index`` kept.
    ``fallback``: the record the levels came from when the file has none (a reference's)."""
    base = read_feature_record(index.model)[0] or fallback
    in_name = index.inputs[0] if index.inputs else None
    in_shape = next((shape_of(vi.type) for vi in model.graph.input if vi.name == in_name), None)
    out_shapes = {vi.name: shape_of(vi.type) for vi in model.graph.output}
    levels = []
    for res, (out_name, source) in zip(picked, pairs):
        if res.placement is not None:
            p = res.placement
            level = LevelRecord.of(
                name=res.name, chs=p.channels, reduction=p.stride,
                layout="nchw" if source != res.tensor else (p.layout or "unknown"), resolved_by="strides",
                **_given(layer=res.layer, after_layer=res.follows, source=res.source),
                origin=res.tensor,  # the tensor of the input graph the rule took
                **({"source_index": res.level.source_position} if res.level is not None else {}), tensor=out_name)
        elif res.level is not None:
            found = {"resolved_by": res.resolved_by} if res.resolved_by in ("fingerprint", "reference") else {}
            level = res.level.updated(source_index=res.level.source_position, **found, tensor=out_name)
        else:
            chs, red = level_dims(out_shapes.get(out_name), in_shape)
            keep = res.source_index is not None and base is None
            level = LevelRecord.of(name=res.name, chs=chs, reduction=red,
                                   **({"source_index": res.source_index} if keep else {}), tensor=out_name)
        levels.append(level)
    return build_record(levels, base=base, input_name=in_name, input_shape=in_shape)


def _given(**fields: Any) -> dict[str, Any]:
    """The ``fields`` that have a value: a level records only what is known."""
    return {k: v for k, v in fields.items() if v is not None}
