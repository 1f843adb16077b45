"""``graphfeat verify``: compare each level a runtime produces with the MindSpore reference."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx

from ..errors import GraphfeatError
from ..graph import input_spec
from ..levels import read_metadata
from ..onnxfile import load_model, materialize_external_data
from .compare import DEFAULT_RTOL, LevelMetrics, compare_level
from .sessions import session
from .workers import mindspore_levels


@dataclass
class VerifyReport:
    """The per-level comparison of one runtime against the reference."""

    model: str
    runtime: str
    input_shape: tuple
    levels: list[LevelMetrics] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.levels) and all(m.ok for m in self.levels)

    def as_dict(self) -> dict:
        return {"model": self.model, "runtime": self.runtime, "input_shape": list(self.input_shape),
                "ok": self.ok, "levels": [m.as_dict() for m in self.levels]}


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


def reference_inputs(reference: str | os.PathLike, names: Sequence[str], batch: int | None) -> tuple[np.ndarray, list]:
    """The probe input and expected levels from an ``export --reference`` file, tiled to ``batch``."""
    try:
        data = np.load(reference)
        x = data["input"]
        expected = [data[f"level/{n}"] for n in names]
    except KeyError as exc:
        raise GraphfeatError(f"reference '{reference}' lacks {exc}; it must come from graphfeat export "
                             "--reference for the same model") from None
    except (OSError, ValueError) as exc:
        raise GraphfeatError(f"cannot read reference '{reference}': {exc}") from None
    if batch and batch != x.shape[0]:
        reps = -(-batch // x.shape[0])
        x = np.concatenate([x] * reps)[:batch]
        expected = [np.concatenate([e] * reps)[:batch] for e in expected]
    return x, expected


def verify(path: str | os.PathLike, *, model: str | None = None, checkpoint: str = "",
           reference: str | os.PathLike | None = None, runtime: str = "onnxruntime", batch: int | None = None,
           input_size: Sequence[int] | None = None, rtol: float = DEFAULT_RTOL, atol: float = 0.0,
           seed: int = 0) -> VerifyReport:
    """Run the cut model at ``path`` on ``runtime`` and compare every level with MindSpore
    (``model``) or with a reference file (``reference``)."""
    return verify_runtimes(path, model=model, checkpoint=checkpoint, reference=reference, runtimes=[runtime],
                           batch=batch, input_size=input_size, rtol=rtol, atol=atol, seed=seed)[0]


def verify_runtimes(path: str | os.PathLike, *, model: str | None = None, checkpoint: str = "",
                    reference: str | os.PathLike | None = None, runtimes: Sequence[str] = ("onnxruntime",),
                    batch: int | None = None, input_size: Sequence[int] | None = None,
                    rtol: float = DEFAULT_RTOL, atol: float = 0.0, seed: int = 0) -> list[VerifyReport]:
    """:func:`verify` on several runtimes, against one reference (MindSpore runs once)."""
    if (model is None) == (reference is None):
        raise GraphfeatError("give exactly one of --model NAME or --reference REF.npz")
    if batch is not None and batch < 1:
        raise GraphfeatError(f"--batch must be at least 1, got {batch}")
    runtimes = list(dict.fromkeys(runtimes))
    if not runtimes:
        raise GraphfeatError("name at least one runtime")
    onnx_model = load_model(path)
    materialize_external_data(onnx_model, Path(path).parent)
    levels = _levels_of(onnx_model, str(path))
    names = [lv.get("layer", lv["name"]) for lv in levels]  # a --strides level names the layer it stands for
    input_name, dims = input_spec(onnx_model)
    if reference is not None:
        x, expected = reference_inputs(reference, names, batch)
    else:
        h, w = input_size or dims[2:4]
        if h is None or w is None:
            raise GraphfeatError("the model's input size is dynamic; pass --input-size H W")
        x = np.random.default_rng(seed).standard_normal((batch or 1, dims[1] or 3, h, w)).astype(np.float32)
    for k, d in enumerate(dims):
        if d is not None and d != x.shape[k]:
            raise GraphfeatError(f"the model takes input dim {k} = {d}, the reference has {x.shape[k]}"
                                 + ("; export without --static-batch for other batches" if k == 0 else ""))
    sessions = {rt: session(onnx_model, rt) for rt in runtimes}  # bad runtimes fail before MindSpore runs
    if reference is None:
        expected = mindspore_levels(model, names, x, checkpoint, seed)
    reports = []
    for rt, run in sessions.items():
        try:
            produced = run({input_name: x})
        except Exception as exc:
            raise GraphfeatError(f"{rt} failed to run '{path}': {str(exc).strip().splitlines()[0]}") from None
        report = VerifyReport(str(path), rt, tuple(x.shape))
        report.levels = [compare_level(lv["name"], produced.get(lv["tensor"]), e, rtol, atol)
                         for lv, e in zip(levels, expected)]
        reports.append(report)
    return reports
