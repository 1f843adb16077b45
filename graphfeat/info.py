"""``graphfeat info``: the feature layers a model offers, as ``graphfeat cut`` sees them."""
from __future__ import annotations

import os
from dataclasses import dataclass

import onnx

from .errors import GraphfeatError
from .graph import GraphIndex, Shape
from .levels import FeatureInfo, level_dims
from .onnxfile import check_sane, load_skeleton
from .resolve import Resolver


@dataclass
class Level:
    """One row of ``graphfeat info``."""

    index: int
    name: str
    chs: int | None
    reduction: int | None
    tensor: str
    shape: Shape | None
    resolved_by: str


def _load(model_or_path: onnx.ModelProto | str | os.PathLike) -> onnx.ModelProto:
    if isinstance(model_or_path, onnx.ModelProto):
        check_sane(model_or_path, "the model")
        return model_or_path
    return load_skeleton(model_or_path)[0]  # the weights are never needed here


def feature_levels(model_or_path: onnx.ModelProto | str | os.PathLike) -> list[Level]:
    """The model's feature layers: from its graphfeat metadata, else resolved structurally.

    Structural rows take ``chs``/``reduction`` from inferred NCHW shapes when
    they are static, else None (see :func:`graphfeat.levels.level_dims`).
    """
    index = GraphIndex(_load(model_or_path))
    rows = []
    for i, res in enumerate(Resolver(index).levels()):
        if res.level is not None:
            chs, red = res.level.get("chs"), res.level.get("reduction")
            index_value = res.level.get("index", i)
        else:
            chs, red = level_dims(index.shape(res.tensor), index.shape(index.inputs[0]) if index.inputs else None)
            index_value = i
        rows.append(Level(index_value, res.name, chs, red, res.tensor, index.shape(res.tensor), res.resolved_by))
    return rows


def feature_info(model_or_path: onnx.ModelProto | str | os.PathLike) -> FeatureInfo:
    """A :class:`FeatureInfo` of the model's feature layers (all selected).

    Raises GraphfeatError when a layer's channels or reduction are unknown
    (``graphfeat info`` shows which).
    """
    rows = feature_levels(model_or_path)
    if not rows:
        raise GraphfeatError("the model has no feature layers that graphfeat can resolve")
    unknown = [r.name for r in rows if r.chs is None or r.reduction is None]
    if unknown:
        raise GraphfeatError(
            f"channels/reduction of {', '.join(unknown)} are unknown (dynamic or non-NCHW shapes); "
            "run `graphfeat info` to see them"
        )
    return FeatureInfo([{"name": r.name, "chs": r.chs, "reduction": r.reduction, "tensor": r.tensor} for r in rows])
