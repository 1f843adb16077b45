"""graphfeat: a backbone's multi-scale feature pyramid, portable to any ONNX runtime.

``graphfeat.cut`` keeps the chosen feature layers as a model's outputs and
removes the rest; ``graphfeat.feature_info`` lists the layers a model offers;
``graphfeat.verify`` compares them with MindSpore; ``graphfeat.FeaturePyramid``
runs them at deploy time.
This package needs only onnx, networkx and numpy.
"""
from .cut import cut, cut_file, cut_model
from .errors import GraphfeatError
from .feature_info import FeatureInfo
from .info import feature_info, feature_levels
from .io import load_model, save_model
from .metadata import METADATA_KEY
from .pyramid import FeaturePyramid
from .verify import verify

__version__ = "0.1.0"

__all__ = [
    "METADATA_KEY",
    "FeatureInfo",
    "FeaturePyramid",
    "GraphfeatError",
    "cut",
    "cut_file",
    "cut_model",
    "feature_info",
    "feature_levels",
    "load_model",
    "save_model",
    "verify",
]
