"""``graphfeat info``: the feature layers a model offers, as ``graphfeat cut`` sees them."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

import onnx

from .cut import level_dims
from .errors import GraphfeatError
from .feature_info import FeatureInfo
from .graph import GraphIndex
from .io import check_sane, load_skeleton
from .modules import tensor_shape
from .resolve import Resolver

COLUMNS = ("index", "name", "chs", "reduction", "tensor", "shape", "resolved_by")


@dataclass
class Level:
    """One row of ``graphfeat info``."""

    index: int
    name: str
    chs: int | None
    reduction: int | None
    tensor: str
    shape: list[int | str | None] | None
    resolved_by: str


def _load(model_or_path: onnx.ModelProto | str | os.PathLike) -> onnx.ModelProto:
    if isinstance(model_or_path, onnx.ModelProto):
        check_sane(model_or_path, "the model")
        return model_or_path
    return load_skeleton(model_or_path)[0]  # the weights are never needed here


def feature_levels(model_or_path: onnx.ModelProto | str | os.PathLike) -> list[Level]:
    """The model's feature layers: from its graphfeat metadata, else resolved structurally.

    Structural rows take ``chs``/``reduction`` from inferred NCHW shapes when
    they are static, else None (see :func:`graphfeat.cut.level_dims`).
    """
    index = GraphIndex(_load(model_or_path))
    rows = []
    for i, res in enumerate(Resolver(index).levels()):
        if res.level is not None:
            chs, red = res.level.get("chs"), res.level.get("reduction")
            index_value = res.level.get("index", i)
        else:
            chs, red = level_dims(tensor_shape(index, res.tensor), tensor_shape(index, index.inputs[0]) if index.inputs else None)
            index_value = i
        rows.append(Level(index_value, res.name, chs, red, res.tensor, tensor_shape(index, res.tensor), res.resolved_by))
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


def printable(text: str) -> str:
    """``text`` with control and other non-printable characters escaped (``\\x1b``): names come
    from the model file, which must not be able to drive the user's terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == "\n" else c.encode("unicode_escape").decode("ascii") for c in text)


def levels_json(rows: list[Level]) -> dict[str, Any]:
    """The ``--json`` document: ``{"layers": [{index, name, chs, reduction, tensor, shape, resolved_by}]}``."""
    return {"layers": [asdict(r) for r in rows]}


def format_table(rows: list[Level]) -> str:
    """A plain-text table of the rows."""
    if not rows:
        return "no feature layers found (no graphfeat metadata, module scopes or named parameters resolve)"

    def cell(v: Any) -> str:
        if v is None:
            return "?"
        if isinstance(v, list):
            return "[" + ", ".join(cell(d) for d in v) + "]"
        return printable(str(v)).replace("\n", "\\n")

    table = [list(COLUMNS)] + [[cell(getattr(r, c)) for c in COLUMNS] for r in rows]
    widths = [max(len(row[k]) for row in table) for k in range(len(COLUMNS))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in table)
