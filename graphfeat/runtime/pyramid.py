"""``FeaturePyramid``: the deploy-time object a detection or segmentation neck calls."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import GraphfeatError
from ..graph import input_dtype, input_spec
from ..levels import FeatureInfo, read_metadata, record_levels
from ..onnxfile import load_skeleton
from .sessions import session
from .verification import run_error


class FeaturePyramid:
    """Run a cut feature model: ``pyramid(images) -> {level name: array}`` in feature_info order.

    ``images`` is an NCHW float32 batch (cast to float16 for a file whose input
    is float16). ``feature_info`` gives each level's channels and reduction.
    ``runtime`` is ``onnxruntime`` (default), ``openvino`` or ``reference``;
    ``providers`` is passed to ONNX Runtime, and ``self.providers`` lists the
    ones really active (``["CPUExecutionProvider"]`` when CUDA was asked for
    on a machine without it; ``["openvino:CPU"]``, ``["onnx.reference"]``).
    A requested provider that is not active warns (``ProviderWarning``), or
    raises GraphfeatError with ``strict_providers=True``. A call the runtime
    cannot run (an input size the strides do not divide, say) raises
    GraphfeatError.
    """

    def __init__(self, path: str | os.PathLike, runtime: str = "onnxruntime",
                 providers: Sequence[str] | None = None, strict_providers: bool = False) -> None:
        self.path = Path(path)
        # graph and metadata (external-data locations checked): the runtime reads the weights from the file
        model, _ = load_skeleton(self.path)
        record = read_metadata(model)
        if record is None:
            raise GraphfeatError(f"'{path}' has no graphfeat metadata; make it with graphfeat cut")
        outputs = {o.name for o in model.graph.output}
        levels = record_levels(record)
        if any(lv.tensor not in outputs for lv in levels):
            raise GraphfeatError(f"'{path}' records levels that are not outputs; cut it with graphfeat cut first")
        self.feature_info = FeatureInfo([lv.to_dict() for lv in levels])
        self._levels = levels
        self._tensors = [lv.tensor for lv in levels]
        self.input_name, self.input_shape = input_spec(model)
        self._dtype = input_dtype(model)
        self._run = session(self.path, runtime, providers, strict_providers)
        self.runtime = runtime

    @property
    def providers(self) -> list[str]:
        """The execution providers that really run the model."""
        return list(self._run.providers)

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        if not isinstance(images, np.ndarray):
            raise GraphfeatError(f"images must be a numpy array, got {type(images).__name__}")
        if images.dtype != np.float32:
            raise GraphfeatError(f"images must be float32, got {images.dtype}; use images.astype(np.float32)")
        if images.ndim != 4:
            raise GraphfeatError(f"images must be NCHW (rank 4), got shape {images.shape}")
        for axis, (want, got) in enumerate(zip(self.input_shape, images.shape)):
            if want is not None and want != got:
                what = {0: "batch", 1: "channels", 2: "height", 3: "width"}[axis]
                raise GraphfeatError(f"the model expects {what} = {want}, got {got} (input shape "
                                     f"{['N' if d is None else d for d in self.input_shape]})")
        x = images.astype(self._dtype, copy=False)
        try:
            out = self._run({self.input_name: x})
        except Exception as exc:  # each runtime raises its own types
            raise run_error(self.runtime, self.path, images, self._levels, exc) from None
        return {name: out[t] for name, t in zip(self.feature_info.module_name(), self._tensors)}

    def __repr__(self) -> str:
        return f"FeaturePyramid('{self.path}', runtime='{self.runtime}', providers={self.providers}, {self.feature_info})"
