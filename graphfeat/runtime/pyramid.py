"""``FeaturePyramid``: the deploy-time object a detection or segmentation neck calls."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import GraphfeatError
from ..graph import input_spec
from ..levels import FeatureInfo, read_metadata
from ..onnxfile import load_model, materialize_external_data
from .sessions import session


class FeaturePyramid:
    """Run a cut feature model: ``pyramid(images) -> {level name: array}`` in feature_info order.

    ``images`` is an NCHW float32 batch. ``feature_info`` gives each level's
    channels and reduction. ``runtime`` is ``onnxruntime`` (default),
    ``openvino`` or ``reference``; ``providers`` is passed to ONNX Runtime.
    """

    def __init__(self, path: str | os.PathLike, runtime: str = "onnxruntime",
                 providers: Sequence[str] | None = None) -> None:
        self.path = Path(path)
        model = load_model(self.path)
        record = read_metadata(model)
        if record is None:
            raise GraphfeatError(f"'{path}' has no graphfeat metadata; make it with graphfeat cut")
        outputs = {o.name for o in model.graph.output}
        levels = [lv for lv in record["levels"] if lv["tensor"] in outputs]
        if len(levels) != len(record["levels"]):
            raise GraphfeatError(f"'{path}' records levels that are not outputs; cut it with graphfeat cut first")
        self.feature_info = FeatureInfo(levels)
        self._tensors = [lv["tensor"] for lv in levels]
        self.input_name, self.input_shape = input_spec(model)
        materialize_external_data(model, self.path.parent)
        self._run = session(model, runtime, providers)
        self.runtime = runtime

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
        out = self._run({self.input_name: images})
        return {name: out[t] for name, t in zip(self.feature_info.module_name(), self._tensors)}

    def __repr__(self) -> str:
        return f"FeaturePyramid('{self.path}', runtime='{self.runtime}', {self.feature_info})"
