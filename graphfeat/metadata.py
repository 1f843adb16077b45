"""The feature layers recorded in an ONNX file's ``metadata_props``.

``graphfeat export`` writes one JSON value under :data:`METADATA_KEY`::

    {
      "schema": 1,
      "model": "resnet50",                  # registry name, or null
      "input": {"name": "images", "shape": ["batch", 3, 224, 224]},
      "input_size": [224, 224],             # H, W used for the export proof
      "versions": {"graphfeat": "0.1.0", "mindspore": "2.10.0", "onnx": "1.23.2", "onnxruntime": "1.32.0"},
      "levels": [
        {"index": 0, "name": "relu", "chs": 64, "reduction": 2, "tensor": "onnx tensor name"},
        ...
      ]
    }

``index`` is the position in this file's ``levels`` list (``--indices`` and
``out_indices`` refer to it). A cut rewrites ``levels`` to the kept ones,
renumbers ``index`` and keeps the original position as ``source_index``; it
also points ``tensor`` at the new graph output name.
"""
from __future__ import annotations

import json
from typing import Any

import onnx

from .errors import GraphfeatError
from .feature_info import FeatureInfo

METADATA_KEY = "graphfeat.feature_info"
SCHEMA_VERSION = 1


def read_metadata(model: onnx.ModelProto) -> dict[str, Any] | None:
    """The graphfeat record of ``model``, or ``None`` if the file has none."""
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            try:
                record = json.loads(prop.value)
            except json.JSONDecodeError as exc:
                raise GraphfeatError(
                    f"the model's '{METADATA_KEY}' metadata is not valid JSON ({exc}); "
                    "re-export the model or remove the entry"
                ) from None
            _validate(record)
            return record
    return None


def write_metadata(model: onnx.ModelProto, record: dict[str, Any]) -> None:
    """Store ``record`` under :data:`METADATA_KEY`, replacing any previous one."""
    _validate(record)
    kept = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    entry = model.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps(record, sort_keys=False)


def strip_metadata(model: onnx.ModelProto) -> None:
    """Remove the graphfeat record (used to test structural resolution)."""
    kept = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)


def feature_info_from_record(record: dict[str, Any]) -> FeatureInfo:
    """A :class:`FeatureInfo` over all levels of a record."""
    return FeatureInfo(record["levels"])


def _validate(record: Any) -> None:
    if not isinstance(record, dict) or not isinstance(record.get("levels"), list):
        raise GraphfeatError(f"the '{METADATA_KEY}' metadata must be an object with a 'levels' list")
    for i, level in enumerate(record["levels"]):
        if not isinstance(level, dict) or not isinstance(level.get("tensor"), str):
            raise GraphfeatError(f"'{METADATA_KEY}' level {i} must be an object with a 'tensor' name")
    FeatureInfo(record["levels"])  # checks name/chs/reduction invariants


#: levels of a cut whose chs/reduction are not all known, so they cannot form a
#: FeatureInfo; same level fields as the main record, with ``null`` for unknowns
PARTIAL_KEY = "graphfeat.feature_levels"


def read_partial_metadata(model: onnx.ModelProto) -> dict[str, Any] | None:
    """The partial record (:data:`PARTIAL_KEY`) of ``model``, or ``None``."""
    for prop in model.metadata_props:
        if prop.key == PARTIAL_KEY:
            try:
                record = json.loads(prop.value)
            except json.JSONDecodeError as exc:
                raise GraphfeatError(f"the model's '{PARTIAL_KEY}' metadata is not valid JSON ({exc})") from None
            levels = record.get("levels") if isinstance(record, dict) else None
            if not isinstance(levels, list) or not all(
                isinstance(lv, dict) and isinstance(lv.get("name"), str) and isinstance(lv.get("tensor"), str)
                for lv in levels
            ):
                raise GraphfeatError(f"the '{PARTIAL_KEY}' metadata must hold a 'levels' list of {{name, tensor}} objects")
            return record
    return None


def write_feature_record(model: onnx.ModelProto, record: dict[str, Any]) -> str:
    """Store ``record`` under :data:`METADATA_KEY` if it is a valid FeatureInfo, else under
    :data:`PARTIAL_KEY`; remove the other key. Returns the key used."""
    try:
        FeatureInfo(record["levels"])
        key = METADATA_KEY
    except GraphfeatError:
        key = PARTIAL_KEY
    kept = [p for p in model.metadata_props if p.key not in (METADATA_KEY, PARTIAL_KEY)]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    if key == METADATA_KEY:
        write_metadata(model, record)
    else:
        entry = model.metadata_props.add()
        entry.key = PARTIAL_KEY
        entry.value = json.dumps(record, sort_keys=False)
    return key


def read_feature_record(model: onnx.ModelProto) -> tuple[dict[str, Any] | None, bool]:
    """``(record, complete)``: the :data:`METADATA_KEY` record, else the :data:`PARTIAL_KEY` one, else None.

    Any malformed value (bad JSON, JSON nested too deep or with numbers too
    long for Python) is a GraphfeatError; callers read the record through here.
    """
    try:
        record = read_metadata(model)
        if record is not None:
            return record, True
        return read_partial_metadata(model), False
    except GraphfeatError:
        raise
    except (ValueError, RecursionError) as exc:
        raise GraphfeatError(f"the model's graphfeat metadata cannot be read ({str(exc)[:120]}); re-export or re-cut the model") from None
