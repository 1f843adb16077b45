"""Feature levels: the ``FeatureInfo`` value object and the metadata record that carries it in a file.

``FeatureInfo`` serves the MindSpore feature wrapper (``exporters``) and the
ONNX side alike, so both answer the same questions the same way.

``graphfeat export`` and ``graphfeat cut`` store one JSON value under
:data:`METADATA_KEY`, built by :func:`build_record` (the only builder)::

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

This module imports only :mod:`graphfeat.errors` (and onnx/json).
"""
from __future__ import annotations

import json
from typing import Any, Iterable, Sequence, Union

import onnx

from .errors import GraphfeatError

__all__ = [
    "METADATA_KEY", "PARTIAL_KEY", "SCHEMA_VERSION", "FeatureInfo", "build_record", "level_dims",
    "normalize_out_indices", "read_feature_record", "read_metadata", "strip_metadata", "write_feature_record",
    "write_metadata",
]  # fmt: skip

Index = Union[int, Sequence[int], None]

#: keys every feature_info entry must have
REQUIRED_KEYS = ("chs", "reduction", "name")


def normalize_out_indices(out_indices: Iterable[int] | None, num_levels: int) -> tuple[int, ...]:
    """Turn user ``out_indices`` into sorted, non-negative positions.

    ``None`` selects every level. Negative indices count from the end. An index
    out of range, a duplicate, or an unsorted list raises ``GraphfeatError``
    (a ``ValueError``) naming the valid range.
    """
    if num_levels <= 0:
        raise GraphfeatError("the model has no feature_info entries, so no feature level can be selected")
    if out_indices is None:
        return tuple(range(num_levels))
    if isinstance(out_indices, (str, bytes)) or not isinstance(out_indices, Iterable):
        raise GraphfeatError(f"out_indices must be a list of integers, got {out_indices!r}")
    raw = list(out_indices)
    if not raw:
        raise GraphfeatError(
            f"out_indices is empty; give at least one index in [{-num_levels}, {num_levels - 1}]"
        )
    valid = f"valid indices are {-num_levels}..{num_levels - 1} for {num_levels} feature levels"
    resolved = []
    for i in raw:
        if isinstance(i, bool) or not isinstance(i, int):
            raise GraphfeatError(f"out_indices must hold integers, got {i!r}; {valid}")
        if not -num_levels <= i < num_levels:
            raise GraphfeatError(f"out_index {i} is out of range; {valid}")
        resolved.append(i % num_levels)
    if len(set(resolved)) != len(resolved):
        raise GraphfeatError(f"out_indices {raw} select a level twice; {valid}")
    if resolved != sorted(resolved):
        raise GraphfeatError(
            f"out_indices {raw} are not in ascending order (shallow to deep); "
            f"use {sorted(raw, key=lambda j: j % num_levels)}; {valid}"
        )
    return tuple(resolved)


class FeatureInfo:
    """The feature levels of a model, and a selection of them (``out_indices``).

    Accessors take an optional index (or list of indices) into the *selected*
    levels and default to all selected levels, like timm's ``FeatureInfo``.
    """

    def __init__(self, entries: Sequence[dict[str, Any]], out_indices: Iterable[int] | None = None):
        entries = [dict(e) for e in entries]
        prev = 0
        for i, e in enumerate(entries):
            missing = [k for k in REQUIRED_KEYS if k not in e]
            if missing:
                raise GraphfeatError(f"feature_info entry {i} lacks {missing}: {e}")
            if not isinstance(e["name"], str) or not e["name"]:
                raise GraphfeatError(f"feature_info entry {i} has no module name: {e}")
            for key in ("chs", "reduction"):
                if isinstance(e[key], bool) or not isinstance(e[key], int) or e[key] <= 0:
                    raise GraphfeatError(f"feature_info entry {i} ({e['name']}) has {key}={e[key]!r}; it must be a positive integer")
            if e["reduction"] < prev:
                raise GraphfeatError(
                    f"feature_info entry {i} ({e['name']}) has reduction {e['reduction']} after {prev}; "
                    "reductions must never decrease from shallow to deep"
                )
            prev = e["reduction"]
        self.info = entries
        self.out_indices = normalize_out_indices(out_indices, len(entries))

    def from_other(self, out_indices: Iterable[int] | None) -> "FeatureInfo":
        """The same levels with another selection."""
        return FeatureInfo(self.info, out_indices)

    def _selected(self, idx: Index) -> tuple[list[dict[str, Any]], bool]:
        chosen = [self.info[i] for i in self.out_indices]
        if idx is None:
            return chosen, True
        if isinstance(idx, int):
            return [chosen[idx]], False
        return [chosen[i] for i in idx], True

    def get(self, key: str, idx: Index = None) -> Any:
        """The value of ``key`` for one selected level, or a list for several."""
        rows, many = self._selected(idx)
        values = [r[key] for r in rows]
        return values if many else values[0]

    def get_dicts(self, keys: Sequence[str] | None = None, idx: Index = None) -> Any:
        """The selected entries as dicts, optionally restricted to ``keys``."""
        rows, many = self._selected(idx)
        out = [dict(r) if keys is None else {k: r[k] for k in keys} for r in rows]
        return out if many else out[0]

    def channels(self, idx: Index = None) -> Any:
        """Output channels of the selected levels."""
        return self.get("chs", idx)

    def reduction(self, idx: Index = None) -> Any:
        """Stride of the selected levels relative to the input."""
        return self.get("reduction", idx)

    def module_name(self, idx: Index = None) -> Any:
        """Module names (``layer1``, ``features.3``) of the selected levels."""
        return self.get("name", idx)

    def pyramid_indices(self, strides: Sequence[int] = (4, 8, 16, 32)) -> list[int]:
        """Positions (into all levels) of the deepest level at each of ``strides`` that exists:
        the standard detection pyramid (``layer1..layer4`` for a ResNet)."""
        deepest = {e["reduction"]: i for i, e in enumerate(self.info)}
        return [deepest[s] for s in strides if s in deepest]

    def __len__(self) -> int:
        return len(self.out_indices)

    def __getitem__(self, item: int) -> dict[str, Any]:
        return dict(self.info[self.out_indices[item]])

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        levels = ", ".join(f"{e['name']}:{e['chs']}/{e['reduction']}" for e in self)
        return f"FeatureInfo([{levels}])"


METADATA_KEY = "graphfeat.feature_info"
SCHEMA_VERSION = 1
#: levels of a cut whose chs/reduction are not all known, so they cannot form a
#: FeatureInfo; same level fields as the main record, with ``null`` for unknowns
PARTIAL_KEY = "graphfeat.feature_levels"


def level_dims(shape: list | None, input_shape: list | None) -> tuple[int | None, int | None]:
    """``(chs, reduction)`` of an NCHW feature tensor from its shape and the input's; None where unknown.

    ``chs`` is dim 1 when static. ``reduction`` is input H / feature H when
    both are static, divide exactly and agree with W; otherwise None — it is
    never guessed.
    """
    if not shape or len(shape) != 4:
        return None, None
    chs = shape[1] if isinstance(shape[1], int) and shape[1] > 0 else None
    red = None
    inp = input_shape
    if inp and len(inp) == 4 and all(isinstance(d, int) and d > 0 for d in (*inp[2:], *shape[2:])):
        (ih, iw), (h, w) = inp[2:], shape[2:]
        if ih % h == 0 and iw % w == 0 and ih // h == iw // w:
            red = ih // h
    return chs, red


def build_record(levels: Sequence[dict[str, Any]], *, base: dict[str, Any] | None = None,
                 input_name: str | None = None, input_shape: list | None = None, **fields: Any) -> dict[str, Any]:
    """The metadata record: the one builder, used by the export and by the cut.

    ``base`` is a previous record whose fields are kept (its levels are not);
    ``fields`` add or replace top-level fields. ``input`` (and ``input_size``
    when H and W are static) come from ``input_name``/``input_shape`` unless
    the record already has them. ``levels`` are renumbered: ``index`` is the
    position in this record.
    """
    record: dict[str, Any] = {k: v for k, v in (base or {}).items() if k != "levels"}
    record.setdefault("schema", SCHEMA_VERSION)
    record.update(fields)
    if "input" not in record and input_name is not None:
        record["input"] = {"name": input_name, "shape": input_shape}
        if input_shape and len(input_shape) == 4 and all(isinstance(d, int) for d in input_shape[2:]):
            record["input_size"] = [input_shape[2], input_shape[3]]
    numbered = []
    for i, level in enumerate(levels):
        level = dict(level)
        level["index"] = i
        numbered.append(level)
    record["levels"] = numbered
    return record


def _read_json(model: onnx.ModelProto, key: str) -> Any:
    """The JSON value stored under ``key``, or None; GraphfeatError if it is not valid JSON."""
    for prop in model.metadata_props:
        if prop.key == key:
            try:
                return json.loads(prop.value)
            except json.JSONDecodeError as exc:
                raise GraphfeatError(
                    f"the model's '{key}' metadata is not valid JSON ({exc}); re-export the model or remove the entry"
                ) from None
    return None


def _remove_keys(model: onnx.ModelProto, keys: Iterable[str]) -> None:
    """Drop the ``metadata_props`` entries under ``keys``, keeping the others in order."""
    keys = set(keys)
    kept = [p for p in model.metadata_props if p.key not in keys]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)


def _put_json(model: onnx.ModelProto, key: str, value: Any) -> None:
    entry = model.metadata_props.add()
    entry.key = key
    entry.value = json.dumps(value, sort_keys=False)


def read_metadata(model: onnx.ModelProto) -> dict[str, Any] | None:
    """The graphfeat record of ``model``, or ``None`` if the file has none."""
    record = _read_json(model, METADATA_KEY)
    if record is None:
        return None
    _validate(record)
    return record


def write_metadata(model: onnx.ModelProto, record: dict[str, Any]) -> None:
    """Store ``record`` under :data:`METADATA_KEY`, replacing any previous one."""
    _validate(record)
    _remove_keys(model, (METADATA_KEY,))
    _put_json(model, METADATA_KEY, record)


def strip_metadata(model: onnx.ModelProto) -> None:
    """Remove the graphfeat records (used to test structural resolution)."""
    _remove_keys(model, (METADATA_KEY,))


def _validate(record: Any) -> None:
    if not isinstance(record, dict) or not isinstance(record.get("levels"), list):
        raise GraphfeatError(f"the '{METADATA_KEY}' metadata must be an object with a 'levels' list")
    for i, level in enumerate(record["levels"]):
        if not isinstance(level, dict) or not isinstance(level.get("tensor"), str):
            raise GraphfeatError(f"'{METADATA_KEY}' level {i} must be an object with a 'tensor' name")
    FeatureInfo(record["levels"])  # checks name/chs/reduction invariants


def read_partial_metadata(model: onnx.ModelProto) -> dict[str, Any] | None:
    """The partial record (:data:`PARTIAL_KEY`) of ``model``, or ``None``."""
    record = _read_json(model, PARTIAL_KEY)
    if record is None:
        return None
    levels = record.get("levels") if isinstance(record, dict) else None
    if not isinstance(levels, list) or not all(
        isinstance(lv, dict) and isinstance(lv.get("name"), str) and isinstance(lv.get("tensor"), str)
        for lv in levels
    ):
        raise GraphfeatError(f"the '{PARTIAL_KEY}' metadata must hold a 'levels' list of {{name, tensor}} objects")
    return record


def write_feature_record(model: onnx.ModelProto, record: dict[str, Any]) -> str:
    """Store ``record`` under :data:`METADATA_KEY` if it is a valid FeatureInfo, else under
    :data:`PARTIAL_KEY`; remove the other key. Returns the key used."""
    try:
        _validate(record)
        key = METADATA_KEY
    except GraphfeatError:
        key = PARTIAL_KEY
    _remove_keys(model, (METADATA_KEY, PARTIAL_KEY))
    _put_json(model, key, record)
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
