"""MindSpore reference backbones with feature_info, MindCV-compatible.

Importing this package imports MindSpore (quietly, CPU graph mode). The
``graphfeat`` library itself never does.
"""
from . import _mindspore  # noqa: F401  (must come first: quiet logs, CPU graph mode)
from .checkpoint import LoadReport, load_checkpoint_into, read_checkpoint
from .factory import create_model
from .features import FeatureExtractWrapper, cell_list, flat_name
from .helpers import build_model_with_cfg, default_cfg, make_divisible
from .registry import list_families, list_models, model_family, register_model
from . import models  # noqa: F401,E402  (registers every backbone)

from typing import TYPE_CHECKING

from graphfeat.levels import FeatureInfo
from graphfeat.runtime import ExportOptions

if TYPE_CHECKING:
    from .onnx_export import ExportReport, export_model


def __getattr__(name: str):
    """``export_model`` and ``ExportReport``, imported on first use: the export imports networkx and the graph
    layer, which a worker's ``models`` or ``levels`` job does not need."""
    if name in ("ExportReport", "export_model"):
        from . import onnx_export

        return getattr(onnx_export, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ExportOptions",
    "ExportReport",
    "FeatureExtractWrapper",
    "FeatureInfo",
    "LoadReport",
    "build_model_with_cfg",
    "cell_list",
    "create_model",
    "default_cfg",
    "export_model",
    "flat_name",
    "list_families",
    "list_models",
    "load_checkpoint_into",
    "make_divisible",
    "model_family",
    "read_checkpoint",
    "register_model",
]
