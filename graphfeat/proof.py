"""Numerical proof: run ONNX tensors and compare them with reference arrays.

Used by ``graphfeat export`` (to find and prove the tensor of each feature
level) and by ``graphfeat verify``. The figure of merit is the error relative
to the reference level's largest magnitude: ``max|a - r| / max|r|``.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, shape_inference

from .errors import GraphfeatError

#: default tolerance: max error <= 1e-4 x the level's max magnitude
DEFAULT_RTOL = 1e-4
#: a reference level whose std is below this proves nothing
DEGENERATE_STD = 1e-6


@dataclass
class LevelMetrics:
    """How far one produced level is from its reference."""

    name: str
    shape: tuple
    max_abs: float
    max_rel: float
    cosine: float
    ok: bool
    note: str = ""

    def as_dict(self) -> dict:
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d


def compare_level(name: str, actual: np.ndarray, expected: np.ndarray, rtol: float = DEFAULT_RTOL,
                  atol: float = 0.0) -> LevelMetrics:
    """Metrics of ``actual`` against ``expected``; ``ok`` needs matching shapes, a non-degenerate
    reference, and ``max_abs <= atol + rtol * max|expected|``."""
    expected = np.asarray(expected, dtype=np.float64)
    if actual is None or tuple(actual.shape) != tuple(expected.shape):
        got = None if actual is None else tuple(actual.shape)
        return LevelMetrics(name, tuple(expected.shape), float("inf"), float("inf"), 0.0, False,
                            f"shape {got} != expected {tuple(expected.shape)}")
    actual = np.asarray(actual, dtype=np.float64)
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    diff = float(np.abs(actual - expected).max()) if expected.size else 0.0
    denom = float(np.linalg.norm(actual) * np.linalg.norm(expected))
    cosine = float(np.dot(actual.ravel(), expected.ravel()) / denom) if denom > 0 else 0.0
    max_rel = diff / scale if scale > 0 else float("inf")
    if float(expected.std()) < DEGENERATE_STD:
        return LevelMetrics(name, tuple(expected.shape), diff, max_rel, cosine, False,
                            f"reference is degenerate (std {expected.std():.2g} < {DEGENERATE_STD}); "
                            "a comparison on it proves nothing")
    ok = bool(np.isfinite(actual).all()) and diff <= atol + rtol * scale
    return LevelMetrics(name, tuple(expected.shape), diff, max_rel, cosine, ok)


def _typed_outputs(model: onnx.ModelProto, names: Iterable[str]) -> list[onnx.ValueInfoProto]:
    """Value infos for ``names`` with their element types (shapes left open)."""
    names = list(names)
    types: dict[str, int] = {}
    for vi in list(model.graph.input) + list(model.graph.output) + list(model.graph.value_info):
        types[vi.name] = vi.type.tensor_type.elem_type
    missing = [n for n in names if n not in types]
    if missing:
        inferred = shape_inference.infer_shapes(model)
        for vi in inferred.graph.value_info:
            types.setdefault(vi.name, vi.type.tensor_type.elem_type)
    return [helper.make_tensor_value_info(n, types.get(n, TensorProto.FLOAT), None) for n in names]


def expose(model: onnx.ModelProto, names: Sequence[str]) -> onnx.ModelProto:
    """A copy of ``model`` whose outputs are exactly the tensors ``names`` (nothing pruned)."""
    exposed = copy.deepcopy(model)
    outputs = _typed_outputs(model, names)
    del exposed.graph.output[:]
    exposed.graph.output.extend(outputs)
    return exposed


def run_onnxruntime(model: onnx.ModelProto, feeds: dict[str, np.ndarray],
                    outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Run ``model`` on the CPU with ONNX Runtime; ``outputs`` may name intermediate tensors."""
    from .runtimes import session

    if outputs is not None:
        model = expose(model, outputs)
    run = session(model, "onnxruntime")
    try:
        return run(feeds)
    except Exception as exc:  # ORT raises its own exception types
        raise GraphfeatError(f"ONNX Runtime could not run the model: {str(exc).strip().splitlines()[0]}") from None


def candidate_tensors(model: onnx.ModelProto, shapes: Iterable[tuple]) -> list[str]:
    """Float tensors, in node order, whose inferred shape ends with one of ``shapes[1:]``
    (or whose shape is unknown)."""
    wanted = {tuple(s[1:]) for s in shapes}
    inferred = shape_inference.infer_shapes(model)
    info: dict[str, onnx.ValueInfoProto] = {vi.name: vi for vi in inferred.graph.value_info}
    info.update({vi.name: vi for vi in inferred.graph.output})
    out: list[str] = []
    for node in model.graph.node:
        for name in node.output:
            vi = info.get(name)
            if vi is None:
                out.append(name)
                continue
            tt = vi.type.tensor_type
            if tt.elem_type != TensorProto.FLOAT:
                continue
            if not tt.HasField("shape"):
                out.append(name)
                continue
            dims = tt.shape.dim
            tail = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims[1:])
            if any(d is None for d in tail) or tail in wanted:
                out.append(name)
    return out


def match_levels(model: onnx.ModelProto, feeds: dict[str, np.ndarray], expected: Sequence[np.ndarray],
                 names: Sequence[str], rtol: float = DEFAULT_RTOL) -> list[str]:
    """The tensor of ``model`` that holds each expected level.

    Every float tensor of a fitting shape is run; a level's tensor is the first
    one in node order whose values equal the level within ``rtol`` (copies made
    later by Identity-like ops lose the tie). Raises ``GraphfeatError`` naming
    each level that no tensor matches, with the closest candidate.
    """
    candidates = candidate_tensors(model, [e.shape for e in expected])
    values = run_onnxruntime(model, feeds, candidates) if candidates else {}
    found, problems = [], []
    for name, ref in zip(names, expected):
        best, best_rel = None, float("inf")
        hit = None
        for cand in candidates:
            value = values[cand]
            if value.shape != ref.shape:
                continue
            m = compare_level(name, value, ref, rtol)
            if m.ok:
                hit = cand
                break
            if m.max_rel < best_rel:
                best, best_rel = cand, m.max_rel
        if hit is None:
            degenerate = float(ref.std()) < DEGENERATE_STD
            why = "its reference is degenerate" if degenerate else (
                f"closest tensor '{best}' has max rel err {best_rel:.3g}" if best else
                f"no tensor has shape {tuple(ref.shape)}")
            problems.append(f"'{name}' ({why})")
        found.append(hit)
    if problems:
        raise GraphfeatError(
            "no ONNX tensor equals the MindSpore output of feature level(s) " + ", ".join(problems)
            + f" within rtol {rtol}; the export cannot record where these layers are"
        )
    return found


def prove_levels(model: onnx.ModelProto, feeds: dict[str, np.ndarray], tensors: Sequence[str],
                 expected: Sequence[np.ndarray], names: Sequence[str],
                 rtol: float = DEFAULT_RTOL) -> list[LevelMetrics]:
    """Run the recorded ``tensors`` and raise ``GraphfeatError`` unless each equals its level."""
    values = run_onnxruntime(model, feeds, list(dict.fromkeys(tensors)))
    metrics = [compare_level(n, values[t], e, rtol) for n, t, e in zip(names, tensors, expected)]
    bad = [f"'{m.name}' -> tensor '{t}' (max rel err {m.max_rel:.3g}{'; ' + m.note if m.note else ''})"
           for m, t in zip(metrics, tensors) if not m.ok]
    if bad:
        raise GraphfeatError("recorded feature tensors do not equal the reference: " + ", ".join(bad))
    return metrics
