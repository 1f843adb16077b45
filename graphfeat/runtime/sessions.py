"""Run an ONNX model on one of several runtimes, behind one function."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import onnx

from ..errors import GraphfeatError
from ..graph import expose

RUNTIMES = ("onnxruntime", "openvino", "reference")


def _onnxruntime(model: onnx.ModelProto, providers=None) -> Callable[[dict], dict]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=providers or ["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return lambda feeds: dict(zip(names, session.run(names, feeds)))


def _openvino(model: onnx.ModelProto, providers=None) -> Callable[[dict], dict]:
    try:
        import openvino as ov
    except ImportError:
        raise GraphfeatError("the openvino runtime is not installed; pip install 'graphfeat[openvino]'") from None
    core = ov.Core()
    # OpenVINO's CPU plugin computes in bf16 where the processor can; ask for fp32 explicitly
    compiled = core.compile_model(core.read_model(model.SerializeToString(), b""), "CPU",
                                  {"INFERENCE_PRECISION_HINT": "f32"})
    names = [o.name for o in model.graph.output]

    def run(feeds: dict) -> dict:
        result = compiled(feeds)
        return {n: np.asarray(result[compiled.output(n)]) for n in names}

    return run


def _reference(model: onnx.ModelProto, providers=None) -> Callable[[dict], dict]:
    from onnx.reference import ReferenceEvaluator

    evaluator = ReferenceEvaluator(model)
    names = [o.name for o in model.graph.output]
    return lambda feeds: dict(zip(names, evaluator.run(None, feeds)))


_LOADERS = {"onnxruntime": _onnxruntime, "openvino": _openvino, "reference": _reference}


def session(model: onnx.ModelProto, runtime: str = "onnxruntime", providers=None) -> Callable[[dict], dict]:
    """A callable ``feeds -> {output name: array}`` running ``model`` on ``runtime``."""
    if runtime not in _LOADERS:
        raise GraphfeatError(f"unknown runtime '{runtime}'; choose one of {', '.join(RUNTIMES)}")
    try:
        return _LOADERS[runtime](model, providers)
    except GraphfeatError:
        raise
    except Exception as exc:  # each runtime raises its own types
        raise GraphfeatError(f"{runtime} cannot load the model: {str(exc).strip().splitlines()[0]}") from None


def run_onnxruntime(model: onnx.ModelProto, feeds: dict[str, np.ndarray],
                    outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Run ``model`` on the CPU with ONNX Runtime; ``outputs`` may name intermediate tensors."""
    if outputs is not None:
        model = expose(model, outputs)
    run = session(model, "onnxruntime")
    try:
        return run(feeds)
    except Exception as exc:  # ORT raises its own exception types
        raise GraphfeatError(f"ONNX Runtime could not run the model: {str(exc).strip().splitlines()[0]}") from None
