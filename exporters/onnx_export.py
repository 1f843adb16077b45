"""Export a registered backbone to ONNX with its feature layers recorded and proven.

``export_model`` runs these stages in order, one function each (``_plan``, ...),
each handing the next a small dataclass:

1. plan: prepare a user's cell, check the destination and the sizes
   (the options are a ``graphfeat.runtime.ExportOptions``);
2. build: the model (full classifier, or the feature model) and the all-levels
   feature wrapper with the same weights (seed or checkpoint), and their
   MindSpore values on a seeded probe input;
3. export: ``mindspore.onnx.export`` (opset 11, IR 4) into a temp file;
4. free dims: a dynamic batch on every output (and, with ``dynamic_size``,
   a free height and width);
5. match levels: upgrade the opset with ``onnx.version_converter`` (on the
   weight-free skeleton) and find, for each feature level, the ONNX tensor of
   the upgraded graph whose values equal the MindSpore level on the probe
   (``exporters.proof.match_levels``): run on the graph as it will be saved,
   the match is the proof of the record. When the upgrade fails or a level
   matches nothing after it, the export keeps opset 11 and matches there;
6. record: the levels under ``graphfeat.feature_info``, the producer fields;
7. prove: run the checker, prove the classifier output and, for a dynamic
   batch, that two images at once give what each gives alone (in the match's
   ONNX Runtime session), and with ``dynamic_size`` the file at a second size;
8. save: atomically, and the reference ``.npz`` when asked for.

The MindSpore reference runs are eager (PYNATIVE_MODE, bit-identical to
GRAPH_MODE here): the only graph compile is the ONNX export's own.
``ExportReport.phases`` holds the time of each step (``bench/export_profile.py``).
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import onnx
from onnx import version_converter

import mindspore as ms
from mindspore import Tensor

from graphfeat.errors import GraphfeatError, first_line
from graphfeat.graph import ONNX_DOMAINS, GraphIndex, check_model, infer_types, ort_runner, set_outputs, skeleton
from graphfeat.levels import FeatureInfo, LevelRecord, build_record, write_metadata
from graphfeat.resolve import PROBE_SEED, probe_input, producer_op, sketch
from graphfeat.onnxfile import atomic_write, check_destination, save_model
from graphfeat.runtime import (DEFAULT_RTOL, SECOND_SIZE_OFFSET, ExportOptions, compare_level, run_onnxruntime,
                               worker_threads)

from ._mindspore import eager
from .cells import PreparedCell, in_channels_of, prepare_cell
from .checkpoint import load_checkpoint_into
from .dynamic import SPATIAL, Constants, free_spatial, set_dynamic_size, size_suspects
from .factory import create_model
from .features import FeatureExtractWrapper
from .init import clear_weights_cache
from .proof import check_levels, match_levels

INPUT_NAME = "images"
OUTPUT_NAME = "logits"
BATCH_DIM = "batch"
#: the opset of MindSpore's ONNX export: the file keeps it when the upgrade fails or loses a level
EXPORT_OPSET = 11
#: the smallest height and width of an input size
MIN_SIDE = 32


@dataclass
class ExportReport:
    """What an export produced and measured."""

    model: str
    path: str
    nodes: int
    size_bytes: int
    seconds: float
    opset: int
    levels: list[dict] = field(default_factory=list)
    output_max_rel: float | None = None
    worst_level_max_rel: float = 0.0
    reference: str | None = None
    notes: list[str] = field(default_factory=list)
    dynamic_size: bool = False
    second_size: list[int] | None = None
    second_size_worst_rel: float | None = None
    #: wall seconds per phase of the export, in order (``bench/export_profile.py`` prints them)
    phases: dict[str, float] = field(default_factory=dict)


class _Phases:
    """Wall time per named phase; a name used twice adds up."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0


def _versions() -> dict[str, str]:
    import onnxruntime

    try:
        gf = importlib_metadata.version("graphfeat")
    except importlib_metadata.PackageNotFoundError:
        gf = "0+unknown"
    return {"graphfeat": gf, "mindspore": ms.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__}


def _as_tuple(out) -> tuple:
    return out if isinstance(out, tuple) else (out,)


def _mindspore_export(net, probe: np.ndarray, output_names: list[str], dynamic: bool) -> onnx.ModelProto:
    with tempfile.TemporaryDirectory(prefix="graphfeat-export-") as tmp:
        path = os.path.join(tmp, "model.onnx")
        kwargs = {"dynamic_axes": {INPUT_NAME: {0: BATCH_DIM}}} if dynamic else {}
        try:
            ms.onnx.export(net, Tensor(probe), file_name=path, input_names=[INPUT_NAME], **kwargs)
        except Exception as exc:
            raise GraphfeatError(
                f"MindSpore's ONNX exporter failed ({first_line(exc)}). An operator it lacks is the usual "
                "cause: see docs/adding-a-backbone.md for the exportable substitutes"
            ) from None
        model = onnx.load(path)
    _rename_outputs(model, output_names)
    return model


def _rename_outputs(model: onnx.ModelProto, names: Sequence[str]) -> None:
    """Give the graph outputs ``names``, renaming each tensor at its producer and every consumer.

    (MindSpore's own ``output_names`` renames only the producer, which breaks a
    graph whose output also feeds later nodes, as every feature level does.)
    """
    if len(names) != len(model.graph.output):
        raise GraphfeatError(f"the export has {len(model.graph.output)} outputs, expected {len(names)}")
    types = {out.name: out.type for out in model.graph.output}
    pairs = [(new, out.name) for out, new in zip(model.graph.output, names)]
    set_outputs(model, GraphIndex(model), pairs, types)


def _set_dynamic_batch(model: onnx.ModelProto) -> None:
    """Declare the batch dimension of every graph output symbolic, like the input's."""
    for out in model.graph.output:
        dims = out.type.tensor_type.shape.dim
        if dims:
            dims[0].Clear()
            dims[0].dim_param = BATCH_DIM


def _free_batch_in_reshapes(model: onnx.ModelProto) -> int:
    """Turn a constant Reshape target ``[1, ...]`` (the probe's batch, baked in by MindSpore's
    exporter, e.g. by ``nn.Dense`` on 4-D input) into ``[-1, ...]``, or into ``[0, ..., -1, ...]``
    (copy the input's dim 0) when the target already holds a ``-1``.

    At batch 1 these are the same; at batch N, ``-1`` becomes N when the input
    scales with the batch, and stays 1 when it does not. The export proves the
    result at batch 1 and 2. Returns how many Reshapes were changed.
    """
    from onnx import numpy_helper

    constant = Constants(model)
    initializers = {t.name: t for t in model.graph.initializer}
    changed = 0
    for node in model.graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2:
            continue
        source = node.input[1]
        shape = constant(source)
        if shape is None:
            continue
        shape = shape.copy()
        if shape.ndim != 1 or shape.size < 2 or shape[0] != 1 or (shape == 0).any():
            continue
        # -1 may appear once: with one elsewhere already, copy the input's dim 0 instead (0)
        shape[0] = 0 if (shape == -1).any() else -1
        fixed = f"{source}__batch_free"
        if fixed not in initializers:
            initializers[fixed] = numpy_helper.from_array(shape, fixed)
            model.graph.initializer.append(initializers[fixed])
        node.input[1] = fixed
        changed += 1
    return changed


def _free_batch_in_resizes(model: onnx.ModelProto) -> int:
    """Give every Resize with a constant ``sizes`` of batch 1 the input's own batch instead.

    ``ops.ResizeNearestNeighbor`` exports with ``sizes = [1, C, H, W]`` baked in;
    at batch N the result would have batch 1 and broadcast silently. The new
    ``sizes`` is ``Concat(Shape(x)[0:1], [C, H, W])``. Returns how many changed.
    """
    from onnx import helper, numpy_helper

    constant = Constants(model)
    new_nodes: list[onnx.NodeProto] = []
    changed = 0
    for node in model.graph.node:
        if node.op_type == "Resize" and len(node.input) == 4 and node.input[3]:
            sizes = constant(node.input[3])
            if sizes is not None and sizes.ndim == 1 and sizes.size >= 2 and sizes[0] == 1:
                stem = f"{node.output[0]}__sizes"
                rest, start, end = f"{stem}_rest", f"{stem}_start", f"{stem}_end"
                for name, value in ((rest, sizes[1:]), (start, np.array([0])), (end, np.array([1]))):
                    model.graph.initializer.append(numpy_helper.from_array(value.astype(np.int64), name))
                new_nodes += [
                    helper.make_node("Shape", [node.input[0]], [f"{stem}_shape"], name=f"{stem}_Shape"),
                    helper.make_node("Slice", [f"{stem}_shape", start, end], [f"{stem}_batch"], name=f"{stem}_Slice"),
                    helper.make_node("Concat", [f"{stem}_batch", rest], [stem], name=f"{stem}_Concat", axis=0),
                ]
                node.input[3] = stem
                changed += 1
        new_nodes.append(node)
    if changed:
        del model.graph.node[:]
        model.graph.node.extend(new_nodes)
    return changed


def _upgrade_opset(model: onnx.ModelProto, opset: int) -> onnx.ModelProto:
    """``model`` converted to ``opset`` by ``onnx.version_converter`` (a new model; ``model`` itself when
    its opset is not lower). The converter runs on the weight-free skeleton (``graphfeat.graph.skeleton``:
    it would serialize and parse the whole model twice, weights included), and the weights are
    put back by name; a stubbed tensor the conversion lost or reshaped fails here, and the export then
    keeps opset 11. The proof that follows runs on the result, weights included."""
    current = next(o.version for o in model.opset_import if o.domain in ONNX_DOMAINS)
    if opset <= current:
        return model
    upgraded = version_converter.convert_version(skeleton(model)[0], opset)
    upgraded.ir_version = max(upgraded.ir_version, 8)
    originals = {t.name: t for t in model.graph.initializer}
    constants = {n.output[0]: n for n in model.graph.node if n.op_type == "Constant" and n.output}
    for tensor in upgraded.graph.initializer:
        if _is_stub(tensor):
            _restore(tensor, originals.get(tensor.name))
    for node in upgraded.graph.node:
        for attr in node.attribute:
            if attr.HasField("t") and _is_stub(attr.t):
                source = constants.get(node.output[0]) if node.op_type == "Constant" and node.output else None
                same = next((a.t for a in source.attribute if a.name == attr.name), None) if source else None
                _restore(attr.t, same)
    return upgraded


def _is_stub(tensor: onnx.TensorProto) -> bool:
    return tensor.data_location == onnx.TensorProto.EXTERNAL


def _restore(stub: onnx.TensorProto, original: onnx.TensorProto | None) -> None:
    if original is None or list(original.dims) != list(stub.dims) or original.data_type != stub.data_type:
        raise GraphfeatError(f"the opset conversion changed the weight '{stub.name}'")
    stub.CopyFrom(original)


def _save_reference(path: Path, probe: np.ndarray, names: list[str], levels: list[np.ndarray],
                    record: dict, force: bool) -> None:
    arrays = {"input": probe, **{f"level/{n}": v for n, v in zip(names, levels)}}
    arrays["meta"] = np.frombuffer(json.dumps(record).encode(), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, **arrays), force=force)


def _fingerprinted(levels: Sequence[LevelRecord], model: onnx.ModelProto, values: Sequence[np.ndarray]
                   ) -> list[LevelRecord]:
    """Each level with its fingerprint (a sketch of its values on the probe, with the op computing it), so
    that a tool's renamed tensor can be found again by value (``graphfeat.resolve``); the record then names
    the probe's seed."""
    index = GraphIndex(model)
    return [lv.updated(fingerprint=sketch(v, producer_op(index, lv.tensor))) for lv, v in zip(levels, values)]


#: images in the reference ``.npz``: the probe first, then distinct seeded images
REFERENCE_IMAGES = 3


def _reference_images(feature_model, probe: np.ndarray, positions: Sequence[int], levels: Sequence[np.ndarray]
                      ) -> tuple[np.ndarray, list[np.ndarray]]:
    """``REFERENCE_IMAGES`` distinct probe images (batch N: the probe, then seeds PROBE_SEED+1, ...) and
    the MindSpore levels on each, run one image at a time (the export's compiled shape)."""
    images, per_level = [probe], [[v] for v in levels]
    for k in range(1, REFERENCE_IMAGES):
        image = probe_input(probe.shape[2:], in_channels=probe.shape[1], seed=PROBE_SEED + k)
        images.append(image)
        with eager():
            out = _as_tuple(feature_model(Tensor(image)))
        for acc, p in zip(per_level, positions):  # positions of the recorded levels in the feature model's outputs
            acc.append(out[p].asnumpy())
    return np.concatenate(images), [np.concatenate(v) for v in per_level]


def _prove_batch(model: onnx.ModelProto, probe: np.ndarray, outputs: Sequence[str], rtol: float, *,
                 run=None, probe_values: dict[str, np.ndarray] | None = None) -> None:
    """Prove the dynamic batch: a batch of two images must give, image by image, what each gives alone.

    The model already equals MindSpore at batch 1; this catches what a batch-1
    export can bake in (a Reshape target, a Resize size, a broadcast that mixes
    images). It runs ONNX Runtime only: no MindSpore run at a new shape. ``run``
    is a session of ``model`` with ``outputs`` exposed, and ``probe_values`` its
    values on ``probe`` alone, when the caller has them already.
    """
    second = probe_input(probe.shape[2:], in_channels=probe.shape[1], seed=PROBE_SEED + 1)
    outputs = list(dict.fromkeys(outputs))
    try:
        if run is None:
            run = ort_runner(model, outputs, policy="proof", threads=worker_threads())
        pair = run({INPUT_NAME: np.concatenate([probe, second])})
        alone = [probe_values if probe_values is not None else run({INPUT_NAME: probe}),
                 run({INPUT_NAME: second})]
    except Exception as exc:  # ORT raises its own exception types
        raise GraphfeatError(f"the export does not run at batch 2 ({first_line(exc)}); export "
                             "with --static-batch, or make the model's reshapes batch-independent") from None
    bad = [f"'{t}' image {k}" for t in outputs for k in (0, 1)
           if not compare_level(t, pair[t][k:k + 1], alone[k][t], rtol).ok]
    if bad:
        raise GraphfeatError(f"the export does not hold at batch 2 ({', '.join(bad[:5])} differ from the image "
                             "run alone); export with --static-batch, or make the model's reshapes "
                             "batch-independent")


def _plan_cell(cell, features_only: bool, out_indices, checkpoint_path: str) -> PreparedCell:
    """A user's cell: load the checkpoint into it, check the protocol, plan the export (``exporters.cells``)."""
    if checkpoint_path:
        load_checkpoint_into(cell, checkpoint_path)
    plan = prepare_cell(cell, features_only, out_indices)
    plan.net.set_train(False)
    plan.feature_model.set_train(False)
    plan.export_net.set_train(False)  # a copy keeps the training flag it was copied with
    return plan


@dataclass
class _Plan:
    """Stage 1, plan: what the options and the destination decide before anything slow runs."""

    label: str  #: the record's ``model``: the registered name, or the cell's ``module:QualName``
    path: Path  #: the file to write
    input_size: list[int]  #: H, W of the probe
    second_size: list[int] | None  #: ``dynamic_size``'s second proof size (None without it)
    cell: PreparedCell | None  #: a user's cell, checked and planned; None for a registered name


@dataclass
class _Models:
    """Stage 2, build: the network to export, the all-levels feature model with the same weights, and what the
    record needs of them."""

    net: ms.nn.Cell
    feature_model: ms.nn.Cell  #: returns a tuple of levels
    info: FeatureInfo  #: every level of ``feature_model``
    features_only: bool  #: the export has no classifier output (a cell can decide this itself)
    selected: list[int]  #: the recorded levels, as positions in ``info``
    positions: list[int]  #: where each recorded level is in ``feature_model``'s output
    in_channels: int
    #: what the ONNX export compiles when it is not ``net`` (``exporters.cells.exportable_copy``: the proof runs
    #: ``net`` and ``feature_model``, so it covers the substitutions)
    export_net: ms.nn.Cell | None = None
    substitutions: list[dict] = field(default_factory=list)  #: recorded as the record's ``substitutions``


@dataclass
class _Reference:
    """Stage 2, build: MindSpore on the probe, what the ONNX graph must give."""

    probe: np.ndarray
    names: list[str]  #: the recorded levels' names
    levels: list[np.ndarray]  #: their values
    outputs: list[np.ndarray]  #: the network's outputs (the classifier's logits first)


@dataclass
class _Freed:
    """Stage 4, free dims: what was freed in the graph."""

    notes: list[str]
    unfreed: list[str]  #: with ``dynamic_size``, the Reshapes left with a constant split (for a refusal's reason)


@dataclass
class _Matched:
    """Stage 5, match levels: the graph as it will be saved, at the opset it keeps, with its levels proven."""

    model: onnx.ModelProto
    opset: int
    tensors: list[str]  #: each recorded level's tensor
    values: dict[str, np.ndarray] | None  #: every exposed tensor's value on the probe (None once freed)
    run: Callable[[dict], dict[str, np.ndarray]] | None  #: the ORT session of ``model`` (None once freed)
    worst_rel: float  #: the worst level's max relative error
    notes: list[str]


@dataclass
class _Proof:
    """Stage 7, prove: the errors of the proofs beyond the levels'."""

    output_max_rel: float | None  #: the classifier output's (None for features only)
    second_size_worst_rel: float | None  #: the worst at ``dynamic_size``'s second size (None without it)


def _plan(model: "str | ms.nn.Cell", output: str | os.PathLike | None, opts: ExportOptions) -> _Plan:
    """Stage 1: prepare a user's cell, check the destination and the sizes, all before the slow part."""
    is_cell = not isinstance(model, str)
    cell = _plan_cell(model, opts.features_only, opts.out_indices, opts.checkpoint) if is_cell else None
    path = Path(output) if output else Path("models_onnx") / f"{type(model).__name__ if is_cell else model}.onnx"
    if output is None:
        path.parent.mkdir(exist_ok=True)
    check_destination(path, None, opts.force)  # fail before the slow part
    if opts.reference:
        check_destination(Path(opts.reference), None, opts.force)
    if len(opts.input_size) != 2 or min(opts.input_size) < MIN_SIDE:
        raise GraphfeatError(f"input size {opts.input_size} must be two numbers (H W), each at least {MIN_SIDE}")
    input_size = [int(d) for d in opts.input_size]
    second_size = None
    if opts.dynamic_size:
        if opts.static_batch:
            raise GraphfeatError("--dynamic-size frees the batch too; drop --static-batch")
        default = tuple(d + k for d, k in zip(input_size, SECOND_SIZE_OFFSET))
        second_size = [int(d) for d in (opts.second_size or default)]
        if len(second_size) != 2 or min(second_size) < MIN_SIDE or second_size == input_size:
            raise GraphfeatError(f"the second size {tuple(second_size)} must be two numbers (H W), each at least "
                                 f"{MIN_SIDE}, and differ from the input size {tuple(input_size)}")
    return _Plan(cell.label if cell is not None else model, path, input_size, second_size, cell)


def _registered_models(name: str, opts: ExportOptions) -> _Models:
    """A registered model's network and its all-levels feature model, with the same weights (seed or checkpoint)."""
    out_indices = None if opts.out_indices is None else list(opts.out_indices)
    common = dict(seed=opts.seed, checkpoint_path=opts.checkpoint)
    features_only = opts.features_only
    # the classifier first: the feature model then reuses its seeded weights (no second calibration)
    if features_only:
        net = create_model(name, features_only=True, out_indices=out_indices, auto_mapping=True, **common)
    else:
        net = create_model(name, **common)
    if not features_only and getattr(net, "feature_info", None) and not getattr(net, "flatten_sequential", False):
        # what create_model(features_only=True) builds, around this very classifier: no second build.
        # Not for a flattened classifier (scenario 2): lifting ``features.3`` to ``features_3`` renames the
        # parameters it shares with the classifier, and the exported initializers must keep MindCV's names.
        feature_model = FeatureExtractWrapper(net)
        feature_model.set_train(False)
    elif not features_only and hasattr(net, "feature_view"):  # a rewritten feature class's levels, the same way
        feature_model = net.feature_view()
    else:  # the features-only net's levels (all of them, past a family's default selection), or a view-less class
        every = list(range(len(net.feature_info.info))) if features_only else None
        feature_model = create_model(name, features_only=True, out_indices=every, auto_mapping=True, **common)
    info = feature_model.feature_info
    # the recorded levels are the feature model's outputs in the same order: their positions are the selection
    selected = list(net.feature_info.out_indices) if features_only else list(range(len(info)))
    in_channels = net.default_cfg.get("input_size", (3,))[0] if hasattr(net, "default_cfg") else 3
    return _Models(net, feature_model, info, features_only, selected, list(selected), in_channels)


def _build(model: "str | ms.nn.Cell", plan: _Plan, opts: ExportOptions, phase: _Phases) -> _Models:
    """Stage 2: the models to export and to prove against (a user's cell as planned, or a registered model)."""
    with phase("build models"):
        if plan.cell is not None:
            c = plan.cell
            models = _Models(c.net, c.feature_model, c.info, c.features_only, c.selected, c.positions,
                             in_channels_of(c.net), c.export_net, c.substitutions)
        else:
            models = _registered_models(model, opts)
        clear_weights_cache()  # both models hold the seeded weights now; the cache's copy is not needed
    refusal = getattr(models.net, "dynamic_size_refusal", None) or getattr(
        getattr(models.net, "source_class", None), "dynamic_size_refusal", None)
    if opts.dynamic_size and refusal:  # a model fixed to its image size says why (a learned position embedding)
        raise GraphfeatError(f"--dynamic-size is refused for {plan.label}: {refusal}")
    return models


def _run_reference(models: _Models, plan: _Plan, phase: _Phases) -> _Reference:
    """Stage 2: the MindSpore levels and outputs on the probe. The runs are eager (``exporters._mindspore.eager``):
    one run per shape, no graph compile."""
    probe = probe_input(plan.input_size, in_channels=models.in_channels)
    with phase("MindSpore feature wrapper"), eager():
        all_levels = [t.asnumpy() for t in _as_tuple(models.feature_model(Tensor(probe)))]
    names = [models.info.module_name(i) for i in models.selected]
    levels = [all_levels[p] for p in models.positions]
    with phase("MindSpore classifier"), eager():
        outputs = [o.asnumpy() for o in _as_tuple(models.net(Tensor(probe)))]
    return _Reference(probe, names, levels, outputs)


def _export(models: _Models, ref: _Reference, plan: _Plan, opts: ExportOptions, phase: _Phases) -> onnx.ModelProto:
    """Stage 3: MindSpore's ONNX export (opset 11), with the outputs named."""
    output_names = ref.names if models.features_only else [OUTPUT_NAME]
    with phase("MindSpore ONNX export"):
        net = models.net if models.export_net is None else models.export_net
        model = _mindspore_export(net, ref.probe, output_names, dynamic=not opts.static_batch)
    # MindSpore names the graph with its process-wide counters (``434_1_..._construct_17``): a stable name keeps
    # the file the same byte for byte however many exports its process made before (``graphfeat.runtime.Worker``)
    model.graph.name = plan.label
    return model


def _free_dims(model: onnx.ModelProto, probe: np.ndarray, opts: ExportOptions) -> _Freed:
    """Stage 4: free the batch dimension in ``model`` (with ``dynamic_size`` the height and width too), in place;
    nothing for a static batch."""
    notes: list[str] = []
    unfreed: list[str] = []
    if opts.dynamic_size:
        set_dynamic_size(model, BATCH_DIM)
        n_reshape, n_resize, unfreed = free_spatial(model, probe, INPUT_NAME)
        if n_reshape or n_resize:
            notes.append(f"freed the input size in {n_reshape} constant Reshape target(s) and "
                         f"{n_resize} Resize size(s) (now scales)")
    elif not opts.static_batch:
        _set_dynamic_batch(model)
        if n := _free_batch_in_reshapes(model):
            notes.append(f"freed the batch dimension of {n} constant Reshape target(s)")
        if n := _free_batch_in_resizes(model):
            notes.append(f"freed the batch dimension of {n} constant Resize size(s)")
    return _Freed(notes, unfreed)


def _kept_note(opset: int, exc: Exception) -> str:
    return f"kept opset {EXPORT_OPSET}: upgrade to {opset} failed ({first_line(exc, 200)})"


def _match_on_opset(model: onnx.ModelProto, opts: ExportOptions, models: _Models, ref: _Reference,
                    phase: _Phases) -> _Matched:
    """Stage 5: the levels matched and proven on ``model`` upgraded to ``opts.opset``; where the upgrade fails,
    or a level matches no tensor of the upgraded graph, on the opset-11 ``model`` (with a note saying why).

    The graph as it will be saved runs in one ONNX Runtime session with every candidate tensor and the logits
    exposed: the match finds each level's tensor, and so proves the record on this very graph; the same session
    then proves the classifier output and runs the batch-2 proof (stage 7)."""
    notes: list[str] = []
    try:
        with phase("opset upgrade"):
            candidates = [(_upgrade_opset(model, opts.opset), opts.opset)]
    except Exception as exc:  # the converter raises many types
        candidates = []
        notes.append(_kept_note(opts.opset, exc))
    if not candidates or candidates[0][0] is not model:
        candidates.append((model, EXPORT_OPSET))
    for candidate, version in candidates[:-1]:  # the last candidate's failure is the export's
        try:
            return _prove_levels(candidate, version, models, ref, opts.rtol, notes, phase)
        except GraphfeatError as exc:
            notes.append(_kept_note(opts.opset, exc))
    return _prove_levels(*candidates[-1], models, ref, opts.rtol, notes, phase)


def _prove_levels(model: onnx.ModelProto, opset: int, models: _Models, ref: _Reference, rtol: float,
                  notes: list[str], phase: _Phases) -> _Matched:
    """Each level's tensor in ``model``, found by value and proven (``exporters.proof``), or GraphfeatError."""
    also = [] if models.features_only else [OUTPUT_NAME]
    with phase("match + prove levels (ORT)"):
        # the candidate's own types: the converter can add tensors (say, an int64 axes input)
        found = match_levels(model, {INPUT_NAME: ref.probe}, ref.levels, ref.names, rtol, infer_types(model),
                             also=also)
        metrics = check_levels(found.values, found.tensors, ref.levels, ref.names, rtol)
    return _Matched(model, opset, found.tensors, found.values, found.run, max(m.max_rel for m in metrics), notes)


def _record(matched: _Matched, models: _Models, ref: _Reference, plan: _Plan, opts: ExportOptions,
            phase: _Phases) -> dict:
    """Stage 6: the levels' record, with their fingerprints, written into the graph's metadata; the producer."""
    m, model = models, matched.model
    with phase("record + fingerprints"):
        levels = [LevelRecord.of(index=k, name=n, chs=m.info.channels(i), reduction=m.info.reduction(i), tensor=t,
                                 **({"source_index": i} if m.features_only else {}))
                  for k, (i, n, t) in enumerate(zip(m.selected, ref.names, matched.tensors))]
        record = build_record(
            _fingerprinted(levels, model, ref.levels),
            model=plan.label,
            features_only=m.features_only,
            input={"name": INPUT_NAME, "shape": [1 if opts.static_batch else BATCH_DIM, m.in_channels,
                                                 *(SPATIAL if opts.dynamic_size else plan.input_size)]},
            input_size=list(plan.input_size),
            seed=None if opts.checkpoint or plan.cell is not None else opts.seed,
            checkpoint=os.path.basename(opts.checkpoint) if opts.checkpoint else None,
            versions=_versions(),
            **({"cell_factory": opts.cell} if opts.cell else {}),
            **({"substitutions": m.substitutions} if m.substitutions else {}),
            **({"dynamic_size": True, "proven_sizes": [plan.input_size, plan.second_size]}
               if opts.dynamic_size else {}),
        )
        record["probe_seed"] = PROBE_SEED  # the probe the fingerprints were taken on, after the levels
        write_metadata(model, record)
        model.producer_name = "graphfeat"
        model.producer_version = f"{record['versions']['graphfeat']} (MindSpore {ms.__version__})"
    return record


def _prove(matched: _Matched, models: _Models, ref: _Reference, plan: _Plan, opts: ExportOptions,
           unfreed: Sequence[str], phase: _Phases) -> _Proof:
    """Stage 7: the ONNX checker, the classifier output, a batch of two (in the match's session, which is then
    freed) and, with ``dynamic_size``, the second size against MindSpore. Raises GraphfeatError on a failure."""
    try:
        # onnx.checker.check_model(full_check=True) on the weight-free skeleton: the same structural check and
        # strict shape inference, without serializing the weights (ONNX Runtime has loaded them above)
        with phase("checker"):
            check_model(matched.model)
    except Exception as exc:
        raise GraphfeatError(f"the exported model fails the ONNX checker: {first_line(exc)}") from None
    output_max_rel = None
    if not models.features_only:
        m = compare_level(OUTPUT_NAME, matched.values[OUTPUT_NAME], ref.outputs[0], opts.rtol)
        if not m.ok:
            raise GraphfeatError(f"the exported classifier output differs from MindSpore (max rel err {m.max_rel:.3g})")
        output_max_rel = m.max_rel
    if not opts.static_batch:
        wanted = list(dict.fromkeys([*matched.tensors, *([] if models.features_only else [OUTPUT_NAME])]))
        with phase("prove batch 2 (ORT)"):
            _prove_batch(matched.model, ref.probe, wanted, opts.rtol, run=matched.run, probe_values=matched.values)
    matched.run = matched.values = None  # the session and its exposed values: free them before the save
    second_size_worst_rel = None
    if opts.dynamic_size:
        with phase("prove second size (MindSpore + ORT)"):
            second_size_worst_rel = _prove_size(matched.model, models, ref.names, matched.tensors,
                                                plan.second_size, opts.rtol, unfreed)
    return _Proof(output_max_rel, second_size_worst_rel)


def _save(matched: _Matched, record: dict, models: _Models, ref: _Reference, plan: _Plan, opts: ExportOptions,
          phase: _Phases) -> None:
    """Stage 8: the file, atomically; with ``reference``, the probe images and their MindSpore levels."""
    with phase("save"):
        save_model(matched.model, plan.path, force=opts.force)
    if opts.reference:
        with phase("reference images (MindSpore)"):
            images, levels = _reference_images(models.feature_model, ref.probe, models.positions, ref.levels)
            _save_reference(Path(opts.reference), images, ref.names, levels, record, opts.force)


def _prove_size(model: onnx.ModelProto, models: _Models, names: Sequence[str], tensors: Sequence[str],
                size: Sequence[int], rtol: float, unfreed: Sequence[str] = ()) -> float:
    """Prove a free-size export at a second size against MindSpore (a compile for the new shape);
    the worst relative error. Refuses the export, with the likely reason, when it does not hold."""
    x = probe_input(size, in_channels=models.in_channels, seed=PROBE_SEED + 2)
    where = f"{size[0]}x{size[1]}"

    def refuse(what: str) -> GraphfeatError:
        suspects = size_suspects(model, list(unfreed))
        why = f"; the graph keeps the probe size in: {', '.join(suspects[:3])}" if suspects else ""
        return GraphfeatError(f"the input size cannot be freed: at {where} {what}{why}; export without "
                              "--dynamic-size (a fixed --input-size)")

    try:
        with eager():
            levels = [t.asnumpy() for t in _as_tuple(models.feature_model(Tensor(x)))]
            expected = [levels[p] for p in models.positions]
            if not models.features_only:
                expected.append(_as_tuple(models.net(Tensor(x)))[0].asnumpy())
    except Exception as exc:
        raise GraphfeatError(f"the input size cannot be freed: MindSpore itself does not run the model at {where} "
                             f"({first_line(exc)})"
                             ) from None
    wanted = [*tensors] if models.features_only else [*tensors, OUTPUT_NAME]
    labels = [*names] if models.features_only else [*names, OUTPUT_NAME]
    try:
        got = run_onnxruntime(model, {INPUT_NAME: x}, list(dict.fromkeys(wanted)))
    except GraphfeatError as exc:
        raise refuse(f"the file does not run ({str(exc).split(': ', 1)[-1]})") from None
    metrics = [compare_level(n, got[t], e, rtol) for n, t, e in zip(labels, wanted, expected)]
    bad = [f"'{m.name}' (max rel err {m.max_rel:.3g})" for m in metrics if not m.ok]
    if bad:
        raise refuse(f"{', '.join(bad[:4])} differ from MindSpore")
    return max(m.max_rel for m in metrics)


def _substitution_notes(record: dict) -> list[str]:
    """One note per substituted layer class of the record's ``substitutions``."""
    return [f"exported {len(s['cells'])} {s['replaced']} cell(s) as {s['with']} (no ONNX converter in MindSpore; "
            "same values, and the levels are proven against the original cell)"
            for s in record.get("substitutions", ())]


def _report(plan: _Plan, opts: ExportOptions, freed: _Freed, matched: _Matched, proof: _Proof, record: dict,
            start: float, phase: _Phases) -> ExportReport:
    """What the export produced and measured, its phases' seconds included."""
    nodes, size_bytes = len(matched.model.graph.node), plan.path.stat().st_size
    seconds = time.perf_counter() - start
    return ExportReport(
        plan.label, str(plan.path), nodes, size_bytes, seconds, opset=matched.opset, levels=record["levels"],
        output_max_rel=proof.output_max_rel, worst_level_max_rel=matched.worst_rel,
        reference=str(opts.reference) if opts.reference else None,
        notes=[*_substitution_notes(record), *freed.notes, *matched.notes],
        dynamic_size=bool(opts.dynamic_size), second_size=plan.second_size,
        second_size_worst_rel=proof.second_size_worst_rel,
        phases={**phase.seconds, "other": seconds - sum(phase.seconds.values())})


def _options(options: ExportOptions | None, kwargs: dict) -> ExportOptions:
    """``options`` with ``kwargs`` on top (the fields of ExportOptions, or their older names) and the default
    tolerance filled in."""
    opts = ExportOptions.of(options, kwargs, caller="export_model")
    return opts if opts.rtol is not None else replace(opts, rtol=DEFAULT_RTOL)


def export_model(model: "str | ms.nn.Cell", output: str | os.PathLike | None = None,
                 options: ExportOptions | None = None, **kwargs) -> ExportReport:
    """Export ``model`` to ONNX at ``output`` (default ``models_onnx/NAME.onnx``).

    ``options`` is a ``graphfeat.runtime.ExportOptions`` (default: all defaults); any of its fields can
    be given as a keyword argument instead, or on top (``checkpoint_path`` is ``checkpoint``, and
    ``factory`` is ``cell``). ``model`` is a registered name, or a ``mindspore.nn.Cell`` that follows the
    feature protocol (see ``exporters.cells``): its weights are whatever it holds (``checkpoint`` loads
    into it first) and the record's ``model`` is its class, ``module:QualName``. The feature levels are
    recorded in the file's metadata, each with the name of the ONNX tensor proven to hold it.
    ``reference`` also writes the probe input and the expected MindSpore levels to an ``.npz`` for
    verification without MindSpore. ``dynamic_size`` frees height and width as well as the batch and
    proves the file against MindSpore at ``second_size`` too (default: 32 rows and 96 columns more).
    ``cell`` (the ``--cell`` spec) is recorded. Raises ``GraphfeatError`` on any failure; no partial
    file remains.
    """
    opts = _options(options, kwargs)
    start, phase = time.perf_counter(), _Phases()
    plan = _plan(model, output, opts)
    models = _build(model, plan, opts, phase)
    ref = _run_reference(models, plan, phase)
    exported = _export(models, ref, plan, opts, phase)
    freed = _free_dims(exported, ref.probe, opts)
    matched = _match_on_opset(exported, opts, models, ref, phase)
    record = _record(matched, models, ref, plan, opts, phase)
    proof = _prove(matched, models, ref, plan, opts, freed.unfreed, phase)
    _save(matched, record, models, ref, plan, opts, phase)
    return _report(plan, opts, freed, matched, proof, record, start, phase)
