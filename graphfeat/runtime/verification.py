"""``graphfeat verify``: compare each level a runtime produces with a reference.

The reference is MindSpore (``model``), a file written by ``export --reference``
(``reference``), or the pyramid of the file this one was made from
(``against``: an fp16, quantised or optimised copy judged by its original, on
ONNX Runtime, with no MindSpore and no npz). Each level is judged by the
criterion its precision calls for (:mod:`.precision`); the report says which
applied, which providers really ran, and how many distinct images were used.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx

from ..errors import GraphfeatError, first_line
from ..graph import input_spec, is_quantized
from ..info import feature_levels
from ..levels import read_metadata
from ..onnxfile import load_model, load_skeleton, materialize_external_data
from .compare import LevelMetrics, compare_level
from .precision import criterion_for, level_precisions
from .sessions import run_onnxruntime, session
from .workers import mindspore_levels

_NP_TYPES = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.FLOAT16: np.float16,
             onnx.TensorProto.DOUBLE: np.float64}


@dataclass
class VerifyReport:
    """The per-level comparison of one runtime against the reference.

    ``providers`` are the execution providers that really ran (``requested`` those asked for);
    ``source`` names the reference; ``images`` the distinct images in the batch; ``notes`` say what
    the caller should know (tiled images, inactive providers).
    """

    model: str
    runtime: str
    input_shape: tuple
    levels: list[LevelMetrics] = field(default_factory=list)
    providers: list[str] = field(default_factory=list)
    requested_providers: list[str] = field(default_factory=list)
    source: str = ""
    images: int = 0
    quantized: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.levels) and all(m.ok for m in self.levels)

    def as_dict(self) -> dict:
        return {"model": self.model, "runtime": self.runtime, "providers": self.providers,
                "requested_providers": self.requested_providers, "source": self.source,
                "input_shape": list(self.input_shape), "distinct_images": self.images,
                "quantized": self.quantized, "ok": self.ok, "notes": self.notes,
                "levels": [m.as_dict() for m in self.levels]}


def _levels_of(model: onnx.ModelProto, path: str) -> list[dict]:
    record = read_metadata(model)
    if record is None:
        raise GraphfeatError(f"'{path}' has no graphfeat metadata; verify a model written by "
                             "graphfeat export or graphfeat cut")
    outputs = {o.name for o in model.graph.output}
    missing = [lv["name"] for lv in record["levels"] if lv["tensor"] not in outputs]
    if missing:
        raise GraphfeatError(f"levels {missing} of '{path}' are not graph outputs; "
                             f"cut the model first: graphfeat cut {path} --layers {' '.join(missing)}")
    return record["levels"]


def reference_inputs(reference: str | os.PathLike, names: Sequence[str], batch: int | None,
                     notes: list[str] | None = None) -> tuple[np.ndarray, list]:
    """The probe images and expected levels from an ``export --reference`` file.

    The file holds one or more distinct images (``input`` is ``(n, C, H, W)``). ``batch`` None takes them
    all; ``batch <= n`` the first ``batch``; a larger batch repeats them (tiled), and a note saying so is
    appended to ``notes``.
    """
    try:
        data = np.load(reference)
        x = data["input"]
        expected = [data[f"level/{n}"] for n in names]
    except KeyError as exc:
        raise GraphfeatError(f"reference '{reference}' lacks {exc}; it must come from graphfeat export "
                             "--reference for the same model") from None
    except (OSError, ValueError) as exc:
        raise GraphfeatError(f"cannot read reference '{reference}': {exc}") from None
    for n, e in zip(names, expected):
        if e.shape[:1] != x.shape[:1]:
            raise GraphfeatError(f"reference '{reference}' holds {x.shape[0]} images but level '{n}' has "
                                 f"{e.shape[0]}; it is not one written by graphfeat export --reference")
    have = x.shape[0]
    if batch and batch <= have:
        x, expected = x[:batch], [e[:batch] for e in expected]
    elif batch:
        reps = -(-batch // have)
        x = np.concatenate([x] * reps)[:batch]
        expected = [np.concatenate([e] * reps)[:batch] for e in expected]
        if notes is not None:
            notes.append(f"the reference holds {have} distinct image{'s' if have > 1 else ''}; batch {batch} "
                         f"repeats {'them' if have > 1 else 'it'} ("
                         + (f"images {have + 1}..{batch} are copies)" if batch > have + 1 else f"image {batch} is a copy)"))
    return x, expected


def distinct_images(x: np.ndarray) -> int:
    """How many of the batch's images differ from every earlier one."""
    flat = x.reshape(x.shape[0], -1)
    return len({row.tobytes() for row in flat})


def input_dtype(model: onnx.ModelProto) -> type:
    """The numpy type the model's image input declares (float16 for an fp16-input file), float32 if unknown."""
    name, _ = input_spec(model)
    elem = next((i.type.tensor_type.elem_type for i in model.graph.input if i.name == name), 0)
    return _NP_TYPES.get(elem, np.float32)


def _feed(x: np.ndarray, model: onnx.ModelProto) -> np.ndarray:
    return x.astype(input_dtype(model), copy=False)


def _size_hint(x: np.ndarray, levels: Sequence[dict]) -> str:
    deepest = max((lv.get("reduction") or 1 for lv in levels), default=1)
    h, w = x.shape[2:4]
    if deepest > 1 and (h % deepest or w % deepest):
        return (f"; input {h}x{w} is not a multiple of the deepest stride {deepest}: "
                f"try {max(deepest, h - h % deepest)}x{max(deepest, w - w % deepest)}")
    return ""


def run_error(what: str, path, x: np.ndarray, levels: Sequence[dict], exc: BaseException) -> GraphfeatError:
    """The GraphfeatError for a runtime that failed to run ``path`` on ``x``, with a size hint."""
    first = first_line(exc)
    return GraphfeatError(f"{what} failed to run '{path}' on input {'x'.join(map(str, x.shape))}: {first}"
                          + _size_hint(x, levels))


def _original_levels(original: onnx.ModelProto, path: str, names: Sequence[str]) -> list[str]:
    """The tensor of each named level in the original file (its metadata, else what ``info`` resolves)."""
    record = read_metadata(original)
    table: dict[str, str] = {}
    if record is not None:
        table = {lv.get("layer", lv["name"]): lv["tensor"] for lv in record["levels"]}
        table.update({lv["name"]: lv["tensor"] for lv in record["levels"]})
    if any(n not in table for n in names):
        table = {**{r.name: r.tensor for r in feature_levels(original)}, **table}
    missing = [n for n in names if n not in table]
    if missing:
        raise GraphfeatError(f"the original '{path}' has no level {', '.join(missing)} (it has "
                             f"{', '.join(table) or 'none'}); --against takes the file the cut was made from")
    return [table[n] for n in names]


def verify(path: str | os.PathLike, *, model: str | None = None, checkpoint: str = "",
           reference: str | os.PathLike | None = None, against: str | os.PathLike | None = None,
           runtime: str = "onnxruntime", batch: int | None = None, input_size: Sequence[int] | None = None,
           rtol: float | None = None, atol: float = 0.0, min_cosine: float | None = None,
           min_sqnr: float | None = None, seed: int = 0, providers: Sequence | None = None,
           strict_providers: bool = False) -> VerifyReport:
    """Run the cut model at ``path`` on ``runtime`` and compare every level with MindSpore
    (``model``), a reference file (``reference``) or the original file's pyramid (``against``).

    ``rtol`` None means the default for each level's precision; see :func:`verify_runtimes`."""
    return verify_runtimes(path, model=model, checkpoint=checkpoint, reference=reference, against=against,
                           runtimes=[runtime], batch=batch, input_size=input_size, rtol=rtol, atol=atol,
                           min_cosine=min_cosine, min_sqnr=min_sqnr, seed=seed, providers=providers,
                           strict_providers=strict_providers)[0]


def verify_runtimes(path: str | os.PathLike, *, model: str | None = None, checkpoint: str = "",
                    reference: str | os.PathLike | None = None, against: str | os.PathLike | None = None,
                    runtimes: Sequence[str] = ("onnxruntime",), batch: int | None = None,
                    input_size: Sequence[int] | None = None, rtol: float | None = None, atol: float = 0.0,
                    min_cosine: float | None = None, min_sqnr: float | None = None, seed: int = 0,
                    providers: Sequence | None = None, strict_providers: bool = False) -> list[VerifyReport]:
    """:func:`verify` on several runtimes, against one reference (MindSpore runs once).

    Criteria (:func:`graphfeat.runtime.precision.criterion_for`): a level computed in float32 passes at
    ``max_abs <= atol + rtol * max|ref|`` with rtol 1e-4, float16 and bfloat16 at their looser defaults;
    a quantised level by cosine and SQNR floors. Explicit ``rtol``/``min_cosine``/``min_sqnr`` override.
    ``providers`` go to ONNX Runtime; one not active warns, or raises with ``strict_providers``.
    """
    if sum(s is not None for s in (model, reference, against)) != 1:
        raise GraphfeatError("give exactly one of --model NAME, --reference REF.npz or --against ORIGINAL.onnx")
    if batch is not None and batch < 1:
        raise GraphfeatError(f"--batch must be at least 1, got {batch}")
    runtimes = list(dict.fromkeys(runtimes))
    if not runtimes:
        raise GraphfeatError("name at least one runtime")
    # graph, metadata and types (external-data locations checked): each runtime reads the weights from the file
    onnx_model, _ = load_skeleton(path)
    levels = _levels_of(onnx_model, str(path))
    names = [lv.get("layer", lv["name"]) for lv in levels]  # a --strides level names the layer it stands for
    input_name, dims = input_spec(onnx_model)
    notes: list[str] = []
    original = None
    if against is not None:
        original = load_model(against)
        materialize_external_data(original, Path(against).parent)
        original_tensors = _original_levels(original, str(against), names)
    if reference is not None:
        x, expected = reference_inputs(reference, names, batch, notes)
        source = f"reference {reference}"
    else:
        h, w = input_size or dims[2:4]
        if (h is None or w is None) and original is not None:
            recorded = (read_metadata(original) or read_metadata(onnx_model) or {}).get("input_size")
            h, w = recorded if recorded else (h, w)
            if h is not None and w is not None:
                notes.append(f"dynamic input size: using the recorded input_size {h}x{w}")
        if h is None or w is None:
            raise GraphfeatError("the model's input size is dynamic; pass --input-size H W")
        b = batch or (dims[0] if dims and dims[0] else 1)
        x = np.random.default_rng(seed).standard_normal((b, dims[1] or 3, h, w)).astype(np.float32)
        source = f"MindSpore {model}" if model is not None else f"original {against} on onnxruntime"
    for k, d in enumerate(dims):
        if d is not None and d != x.shape[k]:
            raise GraphfeatError(f"the model takes input dim {k} = {d}, the reference has {x.shape[k]}"
                                 + ("; export without --static-batch for other batches" if k == 0 else ""))
    sessions = {rt: session(path, rt, providers, strict_providers) for rt in runtimes}  # fail before MindSpore
    if model is not None:
        expected = mindspore_levels(model, names, x, checkpoint, seed)
    elif original is not None:
        try:
            produced = run_onnxruntime(original, {input_spec(original)[0]: _feed(x, original)},
                                       outputs=original_tensors)
        except GraphfeatError as exc:
            raise GraphfeatError(f"the original '{against}': {exc}" + _size_hint(x, levels)) from None
        expected = [produced[t] for t in original_tensors]
    precisions = level_precisions(onnx_model, [lv["tensor"] for lv in levels])
    quantized = is_quantized(onnx_model)
    n_distinct = distinct_images(x)
    reports = []
    for rt, run in sessions.items():
        try:
            produced = run({input_name: _feed(x, onnx_model)})
        except Exception as exc:
            raise run_error(rt, path, x, levels, exc) from None
        report = VerifyReport(str(path), rt, tuple(x.shape), providers=run.providers,
                              requested_providers=run.requested, source=source, images=n_distinct,
                              quantized=quantized, notes=list(notes))
        if run.missing:
            report.notes.append(f"requested {', '.join(run.missing)} not active; ran on {', '.join(run.providers)}")
        for lv, e in zip(levels, expected):
            crit = criterion_for(precisions[lv["tensor"]], rtol=rtol, atol=atol, min_cosine=min_cosine,
                                 min_sqnr=min_sqnr)
            report.levels.append(compare_level(lv["name"], produced.get(lv["tensor"]), e, crit.rtol, crit.atol,
                                               min_cosine=crit.min_cosine, min_sqnr=crit.min_sqnr,
                                               criterion=crit.describe()))
        reports.append(report)
    return reports
