"""``graphfeat verify``: compare each level a runtime produces with a reference.

The reference is MindSpore (``model``), a file written by ``export --reference``
(``reference``), or the pyramid of the file this one was made from
(``against``: an fp16, quantised or optimised copy judged by its original, on
ONNX Runtime, with no MindSpore and no npz). Each level is judged by the
criterion its precision calls for (`precision`); the report says which
applied, which providers really ran, and how many distinct images were used.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx

from ..errors import GraphfeatError, first_line
from ..graph import input_dtype, input_spec, is_quantized
from ..info import feature_levels
from ..levels import LevelRecord, read_metadata, record_levels
from ..onnxfile import load_model, load_skeleton, materialize_external_data
from .compare import LevelMetrics, compare_level
from .precision import criterion_for, level_precisions
from .sessions import run_onnxruntime, session
from .workers import mindspore_levels


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


def _levels_of(model: onnx.ModelProto, path: str) -> list[LevelRecord]:
    record = read_metadata(model)
    if record is None:
        raise GraphfeatError(f"'{path}' has no graphfeat metadata; verify a model written by "
                             "graphfeat export or graphfeat cut")
    outputs = {o.name for o in model.graph.output}
    levels = record_levels(record)
    missing = [lv.name for lv in levels if lv.tensor not in outputs]
    if missing:
        raise GraphfeatError(f"levels {missing} of '{path}' are not graph outputs; "
                             f"cut the model first: graphfeat cut {path} --layers {' '.join(missing)}")
    return levels


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


def _feed(x: np.ndarray, model: onnx.ModelProto) -> np.ndarray:
    return x.astype(input_dtype(model), copy=False)


def _size_hint(x: np.ndarray, levels: Sequence[LevelRecord]) -> str:
    deepest = max((lv.reduction or 1 for lv in levels), default=1)
    h, w = x.shape[2:4]
    if deepest > 1 and (h % deepest or w % deepest):
        return (f"; input {h}x{w} is not a multiple of the deepest stride {deepest}: "
                f"try {max(deepest, h - h % deepest)}x{max(deepest, w - w % deepest)}")
    return ""


def run_error(what: str, path, x: np.ndarray, levels: Sequence[LevelRecord], exc: BaseException) -> GraphfeatError:
    """The GraphfeatError for a runtime that failed to run ``path`` on ``x``, with a size hint."""
    first = first_line(exc)
    return GraphfeatError(f"{what} failed to run '{path}' on input {'x'.join(map(str, x.shape))}: {first}"
                          + _size_hint(x, levels))


def _original_levels(original: onnx.ModelProto, path: str, names: Sequence[str]) -> list[str]:
    """The tensor of each named level in the original file (its metadata, else what ``info`` resolves)."""
    record = read_metadata(original)
    levels = record_levels(record)
    table = {lv.stands_for: lv.tensor for lv in levels}
    table.update({lv.name: lv.tensor for lv in levels})
    if any(n not in table for n in names):
        table = {**{r.name: r.tensor for r in feature_levels(original)}, **table}
    missing = [n for n in names if n not in table]
    if missing:
        raise GraphfeatError(f"the original '{path}' has no level {', '.join(missing)} (it has "
                             f"{', '.join(table) or 'none'}); --against takes the file the cut was made from")
    return [table[n] for n in names]


@dataclass(frozen=True)
class VerifyOptions:
    """What ``verify`` compares against and how. Exactly one source: ``model`` (MindSpore, with
    ``checkpoint``), ``reference`` (an export's ``.npz``) or ``against`` (the original ``.onnx``). ``rtol``
    None: each level's precision's default (`graphfeat.runtime.precision.criterion_for`)."""

    model: str | None = None
    checkpoint: str = ""
    reference: str | os.PathLike | None = None
    against: str | os.PathLike | None = None
    runtimes: tuple[str, ...] = ("onnxruntime",)
    batch: int | None = None
    input_size: Sequence[int] | None = None
    rtol: float | None = None
    atol: float = 0.0
    min_cosine: float | None = None
    min_sqnr: float | None = None
    seed: int = 0
    providers: Sequence | None = None
    strict_providers: bool = False

    def checked(self) -> VerifyOptions:
        """These options, runtimes deduplicated; GraphfeatError for a missing or doubled source, a batch
        below 1 or no runtime."""
        if sum(s is not None for s in (self.model, self.reference, self.against)) != 1:
            raise GraphfeatError("give exactly one of --model NAME, --reference REF.npz or --against ORIGINAL.onnx")
        if self.batch is not None and self.batch < 1:
            raise GraphfeatError(f"--batch must be at least 1, got {self.batch}")
        runtimes = tuple(dict.fromkeys(self.runtimes))
        if not runtimes:
            raise GraphfeatError("name at least one runtime")
        return replace(self, runtimes=runtimes)


def verify(path: str | os.PathLike, *, runtime: str = "onnxruntime", **options) -> VerifyReport:
    """Run the cut model at ``path`` on ``runtime`` and compare every level with MindSpore
    (``model``), a reference file (``reference``) or the original file's pyramid (``against``).

    ``options``: the fields of `VerifyOptions` but ``runtimes``; see `verify_runtimes`."""
    return verify_runtimes(path, runtimes=[runtime], **options)[0]


def verify_runtimes(path: str | os.PathLike, options: VerifyOptions | None = None, **fields) -> list[VerifyReport]:
    """[`verify`][graphfeat.verify] on several runtimes, against one reference (MindSpore runs once).

    Give a `VerifyOptions`, or its fields as keywords. Criteria
    (`graphfeat.runtime.precision.criterion_for`): a level computed in float32 passes at
    ``max_abs <= atol + rtol * max|ref|`` with rtol 1e-4, float16 and bfloat16 at their looser defaults;
    a quantised level by cosine and SQNR floors. Explicit ``rtol``/``min_cosine``/``min_sqnr`` override.
    ``providers`` go to ONNX Runtime; one not active warns, or raises with ``strict_providers``.
    """
    if "runtimes" in fields:
        fields["runtimes"] = tuple(fields["runtimes"])
    opts = (options or VerifyOptions(**fields)).checked()
    # graph, metadata and types (external-data locations checked): each runtime reads the weights from the file
    onnx_model, _ = load_skeleton(path)
    levels = _levels_of(onnx_model, str(path))
    names = [lv.stands_for for lv in levels]  # a --strides level names the layer it stands for
    ref = _reference(opts, onnx_model, names)
    sessions = {rt: session(path, rt, opts.providers, opts.strict_providers) for rt in opts.runtimes}  # fail early
    expected = ref.expected if ref.expected is not None else _computed_levels(opts, ref, names, levels)
    precisions = level_precisions(onnx_model, [lv.tensor for lv in levels])
    return [_report(path, rt, run, onnx_model, levels, ref, expected, precisions, opts)
            for rt, run in sessions.items()]


@dataclass
class _Reference:
    """The input the levels are compared on, where the expected values come from, and (for a reference file)
    the values themselves."""

    x: np.ndarray
    source: str
    notes: list[str]
    expected: list[np.ndarray] | None = None
    original: onnx.ModelProto | None = None
    original_tensors: list[str] = field(default_factory=list)

    @property
    def images(self) -> int:
        """How many distinct images the batch holds."""
        return distinct_images(self.x)


def _reference(opts: VerifyOptions, onnx_model: onnx.ModelProto, names: list[str]) -> _Reference:
    """The images and, for a reference file, the expected levels; the original file loaded for ``against``."""
    _, dims = input_spec(onnx_model)
    notes: list[str] = []
    original, original_tensors = None, []
    if opts.against is not None:
        original = load_model(opts.against)
        materialize_external_data(original, Path(opts.against).parent)
        original_tensors = _original_levels(original, str(opts.against), names)
    if opts.reference is not None:
        x, expected = reference_inputs(opts.reference, names, opts.batch, notes)
        ref = _Reference(x, f"reference {opts.reference}", notes, expected)
    else:
        h, w = _input_hw(opts, onnx_model, original, dims, notes)
        b = opts.batch or (dims[0] if dims and dims[0] else 1)
        x = np.random.default_rng(opts.seed).standard_normal((b, dims[1] or 3, h, w)).astype(np.float32)
        source = f"MindSpore {opts.model}" if opts.model is not None else f"original {opts.against} on onnxruntime"
        ref = _Reference(x, source, notes, None, original, original_tensors)
    for k, d in enumerate(dims):
        if d is not None and d != ref.x.shape[k]:
            raise GraphfeatError(f"the model takes input dim {k} = {d}, the reference has {ref.x.shape[k]}"
                                 + ("; export without --static-batch for other batches" if k == 0 else ""))
    return ref


def _input_hw(opts: VerifyOptions, onnx_model: onnx.ModelProto, original: onnx.ModelProto | None, dims,
              notes: list[str]) -> tuple[int, int]:
    """The image size: ``input_size``, the model's static size, or the original's recorded ``input_size``."""
    h, w = opts.input_size or dims[2:4]
    if (h is None or w is None) and original is not None:
        recorded = (read_metadata(original) or read_metadata(onnx_model) or {}).get("input_size")
        h, w = recorded if recorded else (h, w)
        if h is not None and w is not None:
            notes.append(f"dynamic input size: using the recorded input_size {h}x{w}")
    if h is None or w is None:
        raise GraphfeatError("the model's input size is dynamic; pass --input-size H W")
    return h, w


def _computed_levels(opts: VerifyOptions, ref: _Reference, names: list[str], levels: list[LevelRecord]
                     ) -> list[np.ndarray]:
    """The expected levels MindSpore computes (``model``), or the original file on ONNX Runtime (``against``)."""
    if opts.model is not None:
        return mindspore_levels(opts.model, names, ref.x, opts.checkpoint, opts.seed)
    original = ref.original
    try:
        produced = run_onnxruntime(original, {input_spec(original)[0]: _feed(ref.x, original)},
                                   outputs=ref.original_tensors)
    except GraphfeatError as exc:
        raise GraphfeatError(f"the original '{opts.against}': {exc}" + _size_hint(ref.x, levels)) from None
    return [produced[t] for t in ref.original_tensors]


def _report(path, rt: str, run, onnx_model: onnx.ModelProto, levels: list[LevelRecord], ref: _Reference,
            expected: list[np.ndarray], precisions: dict, opts: VerifyOptions) -> VerifyReport:
    """One runtime's run of the model on the reference images, each level judged by its criterion."""
    input_name, _ = input_spec(onnx_model)
    try:
        produced = run({input_name: _feed(ref.x, onnx_model)})
    except Exception as exc:
        raise run_error(rt, path, ref.x, levels, exc) from None
    report = VerifyReport(str(path), rt, tuple(ref.x.shape), providers=run.providers,
                          requested_providers=run.requested, source=ref.source, images=ref.images,
                          quantized=is_quantized(onnx_model), notes=list(ref.notes))
    if run.missing:
        report.notes.append(f"requested {', '.join(run.missing)} not active; ran on {', '.join(run.providers)}")
    for lv, e in zip(levels, expected):
        crit = criterion_for(precisions[lv.tensor], rtol=opts.rtol, atol=opts.atol, min_cosine=opts.min_cosine,
                             min_sqnr=opts.min_sqnr)
        report.levels.append(compare_level(lv.name, produced.get(lv.tensor), e, crit.rtol, crit.atol,
                                           min_cosine=crit.min_cosine, min_sqnr=crit.min_sqnr,
                                           criterion=crit.describe()))
    return report
