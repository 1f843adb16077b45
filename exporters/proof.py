"""The export's numerical proofs: find the ONNX tensor of each feature level, and prove a record.

The export runs the MindSpore feature wrapper and the ONNX graph on the same
seeded probe input; a level's tensor is the first one in node order whose
values equal the level within tolerance (`match_levels`). Run on the file
as it will be saved, the match is also the proof of its record: the values it
returns are checked by `check_levels`, and its session runs the other proofs.
`prove_levels` checks a record again on a model of its own.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import onnx
from onnx import TensorProto

from graphfeat.errors import GraphfeatError, first_line
from graphfeat.graph import infer_types, ort_runner, shape_of
from graphfeat.runtime import (DEFAULT_RTOL, DEGENERATE_STD, LevelMetrics, compare_level, run_onnxruntime,
                               worker_threads)


def candidate_tensors(model: onnx.ModelProto, shapes: Iterable[tuple],
                      types: Mapping[str, onnx.TypeProto] | None = None) -> list[str]:
    """Float tensors, in node order, whose inferred shape ends with one of ``shapes[1:]``
    (or whose shape is unknown). ``types``: ``infer_types(model)``, when the caller has it."""
    wanted = {tuple(s[1:]) for s in shapes}
    types = infer_types(model) if types is None else types
    out: list[str] = []
    for node in model.graph.node:
        for name in node.output:
            tp = types.get(name)
            if tp is None:
                out.append(name)
                continue
            if tp.tensor_type.elem_type != TensorProto.FLOAT:
                continue
            shape = shape_of(tp)
            if shape is None:
                out.append(name)
                continue
            tail = tuple(d if isinstance(d, int) else None for d in shape[1:])
            if any(d is None for d in tail) or tail in wanted:
                out.append(name)
    return out


@dataclass
class LevelMatch:
    """What `match_levels` found, and the ONNX Runtime session it ran."""

    tensors: list[str]  #: the tensor of each level, in the levels' order
    values: dict[str, np.ndarray]  #: every exposed tensor's value on the feeds
    run: Callable[[dict], dict[str, np.ndarray]]  #: the session, for more runs with the same outputs


def match_levels(model: onnx.ModelProto, feeds: dict[str, np.ndarray], expected: Sequence[np.ndarray],
                 names: Sequence[str], rtol: float = DEFAULT_RTOL,
                 types: Mapping[str, onnx.TypeProto] | None = None, also: Sequence[str] = ()) -> LevelMatch:
    """The tensor of ``model`` that holds each expected level.

    Every float tensor of a fitting shape is run, in one ONNX Runtime session
    that also exposes ``also`` (say, the classifier output); a level's tensor is
    the first one in node order whose values equal the level within ``rtol``
    (copies made later by Identity-like ops lose the tie). Raises
    ``GraphfeatError`` naming each level that no tensor matches, with the
    closest candidate.
    """
    types = infer_types(model) if types is None else types
    candidates = candidate_tensors(model, [e.shape for e in expected], types)
    values, run = _run_exposed(model, feeds, list(dict.fromkeys([*candidates, *also])))
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
    return LevelMatch(found, values, run)


def _run_exposed(model: onnx.ModelProto, feeds: dict[str, np.ndarray], names: Sequence[str]
                 ) -> tuple[dict[str, np.ndarray], Callable]:
    if not names:
        return {}, lambda feeds: {}
    run = ort_runner(model, names, policy="proof", threads=worker_threads())  # it runs two or three times
    try:
        return run(feeds), run
    except Exception as exc:  # ORT raises its own exception types
        raise GraphfeatError(f"ONNX Runtime could not run the model: {first_line(exc)}") from None


def prove_levels(model: onnx.ModelProto, feeds: dict[str, np.ndarray], tensors: Sequence[str],
                 expected: Sequence[np.ndarray], names: Sequence[str],
                 rtol: float = DEFAULT_RTOL) -> list[LevelMetrics]:
    """Run the recorded ``tensors`` and raise ``GraphfeatError`` unless each equals its level."""
    values = run_onnxruntime(model, feeds, list(dict.fromkeys(tensors)))
    return check_levels(values, tensors, expected, names, rtol)


def check_levels(values: dict[str, np.ndarray], tensors: Sequence[str], expected: Sequence[np.ndarray],
                 names: Sequence[str], rtol: float = DEFAULT_RTOL) -> list[LevelMetrics]:
    """`prove_levels` on values already computed (``values[tensor]``, one runtime run)."""
    metrics = [compare_level(n, values[t], e, rtol) for n, t, e in zip(names, tensors, expected)]
    bad = [f"'{m.name}' -> tensor '{t}' (max rel err {m.max_rel:.3g}{'; ' + m.note if m.note else ''})"
           for m, t in zip(metrics, tensors) if not m.ok]
    if bad:
        raise GraphfeatError("recorded feature tensors do not equal the reference: " + ", ".join(bad))
    return metrics
