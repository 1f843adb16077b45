"""graphfeat: a backbone's multi-scale feature pyramid, portable to any ONNX runtime.

``graphfeat.cut`` keeps the chosen feature layers as a model's outputs and
removes the rest; ``graphfeat.feature_info`` lists the layers a model offers;
``graphfeat.verify`` compares them with MindSpore or a reference file;
``graphfeat.FeaturePyramid`` runs them at deploy time. This package needs only
onnx, networkx, numpy and onnxruntime, and never imports MindSpore.

The public API is `__all__`, each name imported on first use (`_lazy`). The layers underneath, bottom-up:
`errors`, `levels`, `onnxfile` (file), `graph`,
`resolve` (names), `surgery` and `info` (verbs),
`runtime` (run), `report` (HTML and JUnit reports) and
`testing` (``assert_pyramid_close``, for users' CI), `cli`. A
module imports only from layers below its own. Each subpackage's ``__all__``
lists the names shared with the rest of the project (``exporters``, ``bench``,
tests); the modules inside a subpackage are private to graphfeat.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports

if TYPE_CHECKING:
    from . import testing
    from .errors import GraphfeatError, OutputError
    from .info import feature_info, feature_levels
    from .levels import METADATA_KEY, FeatureInfo
    from .onnxfile import load_model, save_model
    from .runtime import FeaturePyramid, verify
    from .surgery import CutOptions, cut, cut_file, cut_model

__version__ = "0.1.0"

__all__ = [
    "METADATA_KEY",
    "CutOptions",
    "FeatureInfo",
    "FeaturePyramid",
    "GraphfeatError",
    "OutputError",
    "cut",
    "cut_file",
    "cut_model",
    "feature_info",
    "feature_levels",
    "load_model",
    "save_model",
    "testing",
    "verify",
]

__getattr__, __dir__ = lazy_exports(__name__, {
    ".errors": ["GraphfeatError", "OutputError"], ".info": ["feature_info", "feature_levels"],
    ".levels": ["METADATA_KEY", "FeatureInfo"], ".onnxfile": ["load_model", "save_model"],
    ".runtime": ["FeaturePyramid", "verify"], ".surgery": ["CutOptions", "cut", "cut_file", "cut_model"],
    ".testing": ["testing"]})
