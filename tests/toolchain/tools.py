"""The deployment tools of the toolchain matrix, each as ``apply(src, dst)`` on ONNX files.

Every tool is used the way its documentation shows; none is given graphfeat-specific options.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import onnx
from onnx_fixtures import quantize_qdq

#: seeds of the calibration images of the int8 QDQ quantisation (distinct from the export probe's)
CALIBRATION_SEED = 7
CALIBRATION_IMAGES = 8


def _load(src: Path) -> onnx.ModelProto:
    return onnx.load(str(src))


def _save(model: onnx.ModelProto, dst: Path) -> None:
    onnx.save(model, str(dst))


def onnxsim(src: Path, dst: Path) -> None:
    import onnxsim as sim

    model, ok = sim.simplify(_load(src))
    assert ok, "onnxsim could not validate its result"
    _save(model, dst)


def onnxslim(src: Path, dst: Path) -> None:
    import onnxslim as slim

    _save(slim.slim(_load(src)), dst)


def onnxoptimizer(src: Path, dst: Path) -> None:
    import onnxoptimizer as opt

    _save(opt.optimize(_load(src)), dst)  # the default passes


def fp16(src: Path, dst: Path) -> None:
    from onnxconverter_common import float16

    _save(float16.convert_float_to_float16(_load(src), keep_io_types=True), dst)


def qdq_int8(src: Path, dst: Path) -> None:
    quantize_qdq(src, dst, seed=CALIBRATION_SEED, images=CALIBRATION_IMAGES)


def ort_extended(src: Path, dst: Path) -> None:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = str(dst)
    ort.InferenceSession(str(src), so, providers=["CPUExecutionProvider"])


def opset18(src: Path, dst: Path) -> None:
    from onnx import version_converter

    _save(version_converter.convert_version(_load(src), 18), dst)


def polygraphy_fold(src: Path, dst: Path) -> None:
    """``polygraphy surgeon sanitize --fold-constants``, as TensorRT users run it (paddle2onnx runs it too)."""
    from polygraphy.backend.onnx import fold_constants

    _save(fold_constants(_load(src)), dst)


def no_metadata(src: Path, dst: Path) -> None:
    model = _load(src)
    del model.metadata_props[:]
    _save(model, dst)


TOOLS = {
    "onnxsim": (onnxsim, "onnxsim"),
    "onnxslim": (onnxslim, "onnxslim"),
    "onnxoptimizer": (onnxoptimizer, "onnxoptimizer"),
    "fp16": (fp16, "onnxconverter_common"),
    "qdq_int8": (qdq_int8, "onnxruntime"),
    "ort_extended": (ort_extended, "onnxruntime"),
    "opset18": (opset18, "onnx"),
    "no_metadata": (no_metadata, "onnx"),
    "polygraphy_fold": (polygraphy_fold, "polygraphy"),
}


def available(tool: str) -> bool:
    return importlib.util.find_spec(TOOLS[tool][1]) is not None
