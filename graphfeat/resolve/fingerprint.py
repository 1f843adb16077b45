"""Levels found again by what they compute: fingerprints, reference values, and the one matching run.

A deployment tool may rename the tensor a level was recorded under (onnxsim
folds a BatchNorm into the conv before it: same values, new name) or drop the
graphfeat metadata. A level is then found again by *value*: the candidate file
runs once on ONNX Runtime on the probe input, every float tensor of a fitting
shape exposed, and each level takes the tensor whose values match it.

What a level is matched against (a `Target`), from one of:

* its **fingerprint** (``LevelRecord.fingerprint`` in the metadata, written by
  the export): a sketch of the level's values on the seeded probe input — the
  shape, the max |value|, 32 values at fixed seeded positions and the mean/std
  of 8 contiguous chunks (channel groups, for NCHW). The probe is regenerated
  from the record's ``probe_seed`` and ``input_size`` (`probe_input`);
* a **reference** ``.npz`` of the export (``input``, ``level/<name>``, ``meta``):
  the full level values on its first probe image;
* the **original** file (``--like``): run once on the probe, its levels exposed.

Tolerances are dtype-aware (`file_kind`): float32 files within
`TOL_FP32` of the level's max |value|; float16 files within
`TOL_FP16`; quantised files (QDQ / QLinear ops) by cosine similarity of
at least `MIN_COSINE_QDQ`. A tensor and its exact copies (same values:
Identity, a Cast round trip) are one candidate; a quantise-dequantise of a
tensor counts as a copy of it. Two distinct candidates that match equally well
(the second within `TIE_FACTOR` of the best) are refused as ambiguous,
with both named; a level nothing matches is refused with the closest ones.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ..errors import GraphfeatError
from ..graph import GraphIndex, infer_types, is_quantized, real_inputs, shape_of
from ..graph.probe import run_tensors
from ..levels import read_feature_record, record_levels
from ..onnxfile import load_model

FINGERPRINT_VERSION = 1
#: the seed of the export's probe input (the exporters draw it with `probe_input` too)
PROBE_SEED = 20261126
SAMPLES = 32
CHUNKS = 8
#: float32 files: max error on the sampled values and chunk statistics, relative to the level's max |value|
TOL_FP32 = 1e-3
#: float16 files (rounding to 11 bits in every layer)
TOL_FP16 = 3e-2
#: quantised (QDQ) files: the sampled values' cosine similarity with the level's
MIN_COSINE_QDQ = 0.9
#: a second candidate whose distance is within this factor of the best one's makes the match ambiguous
TIE_FACTOR = 2.0
#: distances below this are float noise: two such candidates are equally good
_NOISE = 1e-6
FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16}
#: ops whose output holds the same values for a match by value: an exact copy, or a precision change (a file's
#: fp16 Cast of a level still holds it); not the graph's copy ops (graph.region.COPY_OPS), which must keep types
_SAME_VALUES = {"Identity", "Cast"}


def probe_input(input_size: Sequence[int], batch: int = 1, in_channels: int = 3,
                seed: int = PROBE_SEED) -> np.ndarray:
    """The seeded standard-normal probe batch of the export (the same draw as ``exporters``' one)."""
    h, w = input_size
    return np.random.default_rng(seed).standard_normal((batch, in_channels, h, w)).astype(np.float32)


def _positions(n: int, k: int = SAMPLES) -> np.ndarray:
    return np.sort(np.random.default_rng(n).choice(n, size=min(k, n), replace=False))


def _r(v: float) -> float:
    return float(f"{float(v):.6g}")


def sketch(values: np.ndarray, op: str | None = None) -> dict[str, Any]:
    """The fingerprint of one level from its values on the probe (batch 1): a few hundred bytes of JSON."""
    x = np.asarray(values, dtype=np.float64)[0].ravel()
    chunks = np.array_split(x, min(CHUNKS, x.size))
    fp = {"v": FINGERPRINT_VERSION, "shape": list(np.asarray(values).shape[1:]), "absmax": _r(np.abs(x).max()),
          "samples": [_r(v) for v in x[_positions(x.size)]],
          "chunks": [[_r(c.mean()), _r(c.std())] for c in chunks]}
    if op:
        fp["op"] = op
    return fp


def file_kind(model: onnx.ModelProto) -> str:
    """``"qdq"`` (quantisation ops), ``"fp16"`` (float16 weights or values) or ``"fp32"``."""
    if is_quantized(model):
        return "qdq"
    if any(t.data_type in (onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16) for t in model.graph.initializer) or \
            any(vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16 for vi in model.graph.value_info):
        return "fp16"
    return "fp32"


@dataclass
class Target:
    """What one level is matched against: a fingerprint, or full values (batch 1)."""

    name: str
    shape: tuple
    fingerprint: dict | None = None
    values: np.ndarray | None = None

    def distance(self, got: np.ndarray, kind: str) -> float:
        """How far ``got`` (batch 1) is from the level: relative error, or 1 - cosine for quantised files."""
        y = np.asarray(got, dtype=np.float64)[0].ravel()
        if self.values is not None:
            ref = np.asarray(self.values, dtype=np.float64)[0].ravel()
            if kind == "qdq":
                return _cosine_distance(y, ref)
            return float(np.abs(y - ref).max() / max(np.abs(ref).max(), 1e-12))
        fp = self.fingerprint
        samples = np.asarray(fp["samples"])
        ys = y[_positions(y.size)]
        if kind == "qdq":
            return _cosine_distance(ys, samples)
        scale = max(float(fp["absmax"]), 1e-12)
        err = float(np.abs(ys - samples).max())
        for chunk, (mean, std) in zip(np.array_split(y, len(fp["chunks"])), fp["chunks"]):
            err = max(err, abs(chunk.mean() - mean), abs(chunk.std() - std))
        return err / scale


def tolerance(kind: str) -> float:
    """The largest distance (see `Target.distance`) that still matches, for a file kind."""
    return {"fp32": TOL_FP32, "fp16": TOL_FP16, "qdq": 1.0 - MIN_COSINE_QDQ}[kind]


def _cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    """``1 - cosine``, as a matching distance: two zero vectors are the same point (0), a zero vector against
    any other is as far as orthogonal (1). Verification's cosine differs on purpose: there a zero level
    carries no signal and fails."""
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return 0.0 if na == nb else 1.0
    return 1.0 - float(a @ b / (na * nb))


@dataclass
class Match:
    """The tensor a level was found at, how far it is, and the candidates considered."""

    name: str
    tensor: str
    distance: float
    resolved_by: str
    recorded: str | None = None
    runners_up: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class Targets:
    """The levels to find, what they are matched against, the probe input and the source of both."""

    record: dict[str, Any]
    by_name: dict[str, Target]
    probe: np.ndarray
    resolved_by: str  # "fingerprint" or "reference"
    origin: str

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "Targets | None":
        """From the fingerprints in a metadata record; None if its levels carry none."""
        levels = [lv for lv in record_levels(record) if lv.fingerprint is not None]
        size = record.get("input_size")
        if not levels or not (isinstance(size, list) and len(size) == 2):
            return None
        shape = (record.get("input") or {}).get("shape") or []
        channels = shape[1] if len(shape) == 4 and isinstance(shape[1], int) else 3
        probe = probe_input(size, in_channels=channels, seed=int(record.get("probe_seed", PROBE_SEED)))
        by_name = {lv.name: Target(lv.name, tuple(lv.fingerprint["shape"]), fingerprint=lv.fingerprint)
                   for lv in levels}
        return cls(record, by_name, probe, "fingerprint", "the fingerprints recorded in the file")

    @classmethod
    def from_reference(cls, path: str | os.PathLike) -> "Targets":
        """From an export's reference ``.npz`` (``input``, ``level/<name>``, ``meta``): its first probe image."""
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError) as exc:
            raise GraphfeatError(f"cannot read the reference '{path}': {exc}") from None
        if "input" not in arrays or "meta" not in arrays:
            raise GraphfeatError(f"'{path}' is not a graphfeat reference: it lacks 'input' or 'meta'")
        try:
            record = json.loads(arrays["meta"].tobytes().decode())
        except (ValueError, UnicodeDecodeError):
            raise GraphfeatError(f"the 'meta' entry of the reference '{path}' is not a graphfeat record") from None
        by_name = {}
        for lv in record_levels(record, f"reference '{path}'"):
            values = arrays.get(f"level/{lv.name}")
            if values is not None:
                by_name[lv.name] = Target(lv.name, tuple(values.shape[1:]), values=values[:1])
        if not by_name:
            raise GraphfeatError(f"the reference '{path}' holds no level values (level/<name>)")
        return cls(record, by_name, arrays["input"][:1].astype(np.float32), "reference", f"the reference '{path}'")

    @classmethod
    def from_original(cls, path: str | os.PathLike) -> "Targets":
        """From the original file (before the tool): its recorded levels, run once on its probe."""
        original = load_model(path)
        record = read_feature_record(original)[0]
        levels = record_levels(record)
        if not levels:
            raise GraphfeatError(f"'{path}' has no graphfeat metadata, so it names no levels to look for")
        index = GraphIndex(original)
        missing = [lv.tensor for lv in levels if lv.tensor not in index.tensor_names]
        if missing:
            raise GraphfeatError(f"'{path}' is itself stale: its metadata names tensors not in its graph ({missing[:3]})")
        size = record.get("input_size") or [d for d in (shape_of(real_inputs(original.graph)[0].type) or [])[2:]]
        if len(size) != 2 or not all(isinstance(d, int) for d in size):
            raise GraphfeatError(f"'{path}' records no input size to probe it at")
        shape = (record.get("input") or {}).get("shape") or []
        channels = shape[1] if len(shape) == 4 and isinstance(shape[1], int) else 3
        probe = probe_input(size, in_channels=channels, seed=int(record.get("probe_seed", PROBE_SEED)))
        feeds = {real_inputs(original.graph)[0].name: probe}
        got = run_tensors(original, feeds, [lv.tensor for lv in levels])
        by_name = {lv.name: Target(lv.name, tuple(got[lv.tensor].shape[1:]), values=got[lv.tensor]) for lv in levels}
        return cls(record, by_name, probe, "reference", f"the original '{path}'")


def _copy_root(index: GraphIndex, tensor: str) -> str:
    """Follow Identity, Cast and QuantizeLinear->DequantizeLinear back to the tensor they copy."""
    seen = set()
    while tensor in index.producer and tensor not in seen:
        seen.add(tensor)
        node = index.nodes[index.producer[tensor]]
        if node.op_type in _SAME_VALUES and node.input:
            tensor = node.input[0]
        elif node.op_type == "DequantizeLinear" and node.input and node.input[0] in index.producer and \
                index.nodes[index.producer[node.input[0]]].op_type == "QuantizeLinear":
            tensor = index.nodes[index.producer[node.input[0]]].input[0]
        else:
            break
    return tensor


def producer_op(index: GraphIndex, tensor: str) -> str | None:
    """The op that computes ``tensor``, looking through Identity nodes (a cut's renamed outputs)."""
    seen = set()
    while tensor in index.producer and tensor not in seen:
        seen.add(tensor)
        node = index.nodes[index.producer[tensor]]
        if node.op_type != "Identity" or not node.input:
            return node.op_type
        tensor = node.input[0]
    return None


def find_levels(index: GraphIndex, full_model: onnx.ModelProto, targets: Targets, names: Sequence[str]
                ) -> dict[str, Match | GraphfeatError]:
    """Run ``full_model`` (with weights; the graph of ``index``) once on the probe and find each of
    ``names`` by value: a Match, or the GraphfeatError (naming the candidates) for a level that is
    missing or ambiguous — one level's refusal does not stop the others."""
    kind = file_kind(full_model)
    tol = tolerance(kind)
    wanted = [targets.by_name[n] for n in names]
    shapes = {t.shape for t in wanted}
    inputs = real_inputs(full_model.graph)
    if not inputs:
        raise GraphfeatError("the model has no input to run the probe through")
    in_name = inputs[0].name
    declared = shape_of(inputs[0].type)
    # the types the index inferred already hold when the input is declared at the probe's shape
    types = (index.types if declared is not None and tuple(declared) == targets.probe.shape
             else infer_types(index.model, {in_name: targets.probe.shape}))
    candidates = []
    for node in index.nodes:
        for out in node.output:
            if not out:
                continue
            tp = types.get(out)
            shape = shape_of(tp) if tp is not None else None
            elem = tp.tensor_type.elem_type if tp is not None and tp.HasField("tensor_type") else 0
            if elem and elem not in FLOAT_TYPES:
                continue
            if shape is not None and all(isinstance(d, int) for d in shape):
                if len(shape) < 1 or tuple(shape[1:]) not in shapes:
                    continue
            candidates.append(out)
    got = run_tensors(full_model, {in_name: targets.probe}, candidates)
    matches = {}
    for target in wanted:
        scored = []
        for name in candidates:
            v = got.get(name)
            if v is None or v.dtype.kind != "f" or tuple(v.shape[1:]) != target.shape or v.shape[:1] != (1,):
                continue
            scored.append((target.distance(v, kind), name))
        scored.sort()
        try:
            matches[target.name] = _pick(index, target, scored, got, tol, kind, targets)
        except GraphfeatError as exc:
            matches[target.name] = exc
    return matches


def _pick(index: GraphIndex, target: Target, scored: list[tuple[float, str]], got: Mapping[str, np.ndarray],
          tol: float, kind: str, targets: Targets) -> Match:
    what = {"fingerprint": "its fingerprint", "reference": targets.origin}[targets.resolved_by]
    within = [(d, n) for d, n in scored if d <= tol]
    if not within:
        near = ", ".join(f"'{n}' ({d:.3g})" for d, n in scored[:3]) or "none of its shape"
        raise GraphfeatError(
            f"no tensor of this file matches level '{target.name}' by value ({what}; {kind} tolerance {tol:.3g}); "
            f"closest: {near}. The level may have been fused away (an optimiser merged the op that ends it "
            "into the next one); cut the file before optimising it, or name a tensor with --tensors")
    # copies (same values, or a quantise-dequantise of a tensor) form one class; the class stands for its
    # root tensor unless a member matches clearly better (a quantiser that absorbed a Relu into the
    # QuantizeLinear range leaves the activation's values only after the DequantizeLinear)
    members: dict[str, list[tuple[float, str]]] = {}
    for d, n in within:
        root = _copy_root(index, n)
        for other, group in members.items():
            if other != root and np.array_equal(got[group[0][1]], got[n]):
                root = other  # the same values: an exact copy
                break
        members.setdefault(root, []).append((d, n))
    classes: dict[str, tuple[float, str]] = {}
    for root, group in members.items():
        best = min(group)
        at_root = next((m for m in group if m[1] == root), None)
        classes[root] = at_root if at_root is not None and at_root[0] <= TIE_FACTOR * best[0] + _NOISE else best
    ranked = sorted(classes.items(), key=lambda kv: kv[1][0])
    best_root, (best_d, tensor) = ranked[0]
    if len(ranked) > 1:
        second_d = ranked[1][1][0]
        if second_d <= max(TIE_FACTOR * best_d, _NOISE):
            names = ", ".join(f"'{n}' ({d:.3g})" for _, (d, n) in ranked[:4])
            raise GraphfeatError(
                f"level '{target.name}' matches several distinct tensors equally well by value ({what}): {names}; "
                "refusing to guess — name the tensor with --tensors")
    return Match(target.name, tensor, best_d, targets.resolved_by,
                 runners_up=[(n, d) for _, (d, n) in ranked[1:3]])
