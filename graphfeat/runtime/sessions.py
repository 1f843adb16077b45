"""Run an ONNX model on one of several runtimes, behind one function.

A `Session` says which execution providers really ran it
(``providers``): ONNX Runtime's ``get_providers()`` after loading (it falls
back to the CPU silently when, say, CUDA is requested on a machine without it),
``["openvino:CPU"]`` for OpenVINO, ``["onnx.reference"]`` for the reference
evaluator. A requested provider that is not active is a warning
(`ProviderWarning`), or a GraphfeatError with ``strict_providers``.
"""
from __future__ import annotations

import os
import warnings
from typing import Callable, Sequence, Union

import numpy as np
import onnx

from ..errors import GraphfeatError, first_line
from ..graph.probe import ort_runner, ort_session, session_model
from ..onnxfile import load_skeleton, load_with_weights
from .workers import worker_threads

#: what a runtime loads: a model, or the path of an ONNX file (read by the runtime itself, external data and all)
Source = Union[onnx.ModelProto, str, os.PathLike]

RUNTIMES = ("onnxruntime", "openvino", "reference")


class ProviderWarning(UserWarning):
    """A requested execution provider is not the one that runs the model."""


class Session:
    """``session(feeds) -> {output name: array}``; ``providers`` are the ones really active."""

    def __init__(self, run: Callable[[dict], dict], runtime: str, providers: list[str],
                 requested: list[str] | None = None) -> None:
        self._run = run
        self.runtime = runtime
        self.providers = list(providers)
        self.requested = list(requested or [])

    def __call__(self, feeds: dict) -> dict:
        return self._run(feeds)

    @property
    def missing(self) -> list[str]:
        """Requested providers that are not active."""
        return [p for p in self.requested if p not in self.providers]


def provider_names(providers) -> list[str]:
    """Names of an ORT-style providers list (entries may be ``(name, options)`` pairs)."""
    if providers is None:
        return []
    if isinstance(providers, str):
        providers = [providers]
    return [p if isinstance(p, str) else str(p[0]) for p in providers]


def _onnxruntime(source: Source, graph: onnx.GraphProto, providers=None,
                 policy: str = "deploy") -> tuple[Callable[[dict], dict], list[str]]:
    # a session under the ``deploy`` policy (``proof`` without pre-packing), with ``graphfeat export --jobs N``
    # the worker's share of the cores. A proto's large weights go to ORT as arrays, not serialized with the
    # graph (see ``session_model``)
    arrays = None
    if isinstance(source, onnx.ModelProto):
        source, arrays = session_model(source)
    session = ort_session(source, policy, arrays, providers=providers, threads=worker_threads())
    names = [o.name for o in session.get_outputs()]

    def run(feeds: dict, _weights=arrays) -> dict:  # the arrays live as long as the session
        return dict(zip(names, session.run(names, feeds)))

    return run, list(session.get_providers())


def _openvino(source: Source, graph: onnx.GraphProto, providers=None) -> tuple[Callable[[dict], dict], list[str]]:
    try:
        import openvino as ov
    except ImportError:
        raise GraphfeatError("the openvino runtime is not installed; pip install 'graphfeat[openvino]'") from None
    core = ov.Core()
    if isinstance(source, onnx.ModelProto):
        read = core.read_model(source.SerializeToString(), b"")
    else:
        read = core.read_model(os.fspath(source))
    # OpenVINO's CPU plugin computes in bf16 where the processor can; ask for fp32 explicitly
    compiled = core.compile_model(read, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    names = [o.name for o in graph.output]

    def run(feeds: dict) -> dict:
        result = compiled(feeds)
        return {n: np.asarray(result[compiled.output(n)]) for n in names}

    return run, ["openvino:CPU"]


def _reference_fixes(model: onnx.ModelProto) -> list[type]:
    """Operators of ``model`` that ``onnx.reference`` computes wrongly, as corrected implementations.

    Before opset 14 a one-output BatchNormalization is in inference mode (the output count selects the
    mode), but ``onnx.reference`` normalises it with the batch's statistics, because the schema's default
    momentum stands in for "training"; the running statistics are the right ones.
    """
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    norms = [n for n in model.graph.node if n.op_type == "BatchNormalization" and n.domain in ("", "ai.onnx")]
    if opset >= 14 or not norms or any(len([o for o in n.output if o]) != 1 for n in norms):
        return []
    from onnx.reference.op_run import OpRun

    class BatchNormalization(OpRun):
        """Inference-mode BatchNormalization: the running mean and variance."""

        def _run(self, x, scale, bias, mean, var, epsilon=None, momentum=None, spatial=None,  # noqa: ARG002
                 is_test=None, consumed_inputs=None, training_mode=None):
            shape = (1, -1) + (1,) * (x.ndim - 2)
            eps = 1e-5 if epsilon is None else epsilon
            y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) * scale.reshape(shape) + bias.reshape(shape)
            return (y.astype(x.dtype),)

    return [BatchNormalization]


def _reference(source: Source, graph: onnx.GraphProto, providers=None) -> tuple[Callable[[dict], dict], list[str]]:
    from onnx.reference import ReferenceEvaluator

    model = source if isinstance(source, onnx.ModelProto) else load_with_weights(source)
    evaluator = ReferenceEvaluator(model, new_ops=_reference_fixes(model) or None)
    names = [o.name for o in graph.output]
    return (lambda feeds: dict(zip(names, evaluator.run(None, feeds)))), ["onnx.reference"]


_LOADERS = {"onnxruntime": _onnxruntime, "openvino": _openvino, "reference": _reference}


def session(model: Source, runtime: str = "onnxruntime", providers=None,
            strict_providers: bool = False, *, prepack: bool = True) -> Session:
    """A `Session` (``feeds -> {output name: array}``) running ``model`` on ``runtime``.

    ``model``: a proto (its weights in memory), or the path of an ONNX file, which ONNX Runtime and
    OpenVINO read themselves, external data included: no copy of the weights is made in Python. A path
    is first read without its weights (`graphfeat.onnxfile.load_skeleton`), so graphfeat's checks of
    the file and of every external-data location come before a runtime reads them.

    ``providers`` go to ONNX Runtime (the other runtimes take none). When one of them is not active after
    loading, a `ProviderWarning` says which providers run instead; with ``strict_providers`` it is a
    GraphfeatError.

    ``prepack``: ONNX Runtime pre-packs the weights of its matrix kernels while it loads (its default, for
    a session that runs many times: the ``deploy`` policy). False for one that runs a few times, such as an
    export's proofs (the ``proof`` policy): it loads faster and holds less memory while it does (see
    `graphfeat.graph.POLICIES`).
    """
    if runtime not in _LOADERS:
        raise GraphfeatError(f"unknown runtime '{runtime}'; choose one of {', '.join(RUNTIMES)}")
    requested = provider_names(providers)
    graph = model.graph if isinstance(model, onnx.ModelProto) else load_skeleton(model)[0].graph
    try:
        policy = "deploy" if prepack else "proof"
        extra = {"providers": providers, "policy": policy} if runtime == "onnxruntime" else {}
        run, active = _LOADERS[runtime](model, graph, **extra)
    except GraphfeatError:
        raise
    except Exception as exc:  # each runtime raises its own types
        raise GraphfeatError(f"{runtime} cannot load the model: {first_line(exc)}") from None
    sess = Session(run, runtime, active, requested)
    if sess.missing:
        msg = (f"requested provider{'s' if len(sess.missing) > 1 else ''} {', '.join(sess.missing)} "
               f"{'are' if len(sess.missing) > 1 else 'is'} not active on {runtime}; "
               f"running on {', '.join(active) or 'nothing'}")
        if strict_providers:
            raise GraphfeatError(msg + " (strict providers)")
        warnings.warn(msg, ProviderWarning, stacklevel=2)
    return sess


def run_onnxruntime(model: onnx.ModelProto, feeds: dict[str, np.ndarray],
                    outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Run ``model`` (not modified) once on the CPU with ONNX Runtime, under the ``proof`` policy;
    ``outputs`` may name intermediate tensors (`graphfeat.graph.ort_runner`)."""
    run = ort_runner(model, outputs, policy="proof", threads=worker_threads())
    try:
        return run(feeds)
    except Exception as exc:  # ORT raises its own exception types
        raise GraphfeatError(f"ONNX Runtime could not run the model: {first_line(exc)}") from None
