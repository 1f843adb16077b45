"""Feature levels: the ``FeatureInfo`` value object and the metadata record that carries it in a file.

``FeatureInfo`` serves the MindSpore feature wrapper (``exporters``) and the
ONNX side alike, so both answer the same questions the same way.

``graphfeat export`` and ``graphfeat cut`` store one JSON value under
[`METADATA_KEY`][graphfeat.METADATA_KEY], built by `build_record` (the only builder)::

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

A level is typed as a `LevelRecord`: `record_levels` reads a
record's levels (`LevelRecord.from_dict`, the one reader) and
`build_record` writes them (`LevelRecord.to_dict`, the one
writer), so a level read and written back is the same JSON.

This module imports only `graphfeat.errors` (and json; onnx for the
hints only, so the CLI's text formatting can read levels without onnx).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence, Union

from .errors import GraphfeatError

if TYPE_CHECKING:  # for the hints only: records are read and written through ``metadata_props`` alone
    import onnx

__all__ = [
    "METADATA_KEY", "PARTIAL_KEY", "SCHEMA_VERSION", "FeatureInfo", "LevelRecord", "build_record", "level_dims",
    "normalize_out_indices", "read_feature_record", "read_metadata", "record_levels", "strip_metadata",
    "write_feature_record", "write_metadata",
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
"""The ``metadata_props`` key under which a file's level record is stored (a JSON value)."""
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


def _typed(*types: type, required: bool = False) -> Any:
    """A field of `LevelRecord` whose JSON value must be one of ``types`` (bool never counts as a number)."""
    if required:
        return field(metadata={"types": types})
    return field(default=None, metadata={"types": types})


@dataclass(frozen=True)
class LevelRecord:
    """One level of a record (an entry of its ``levels`` list), typed.

    ``name`` and ``tensor`` are required strings; every other field is None
    when the level does not carry it. ``extra`` holds what the level carries
    but graphfeat does not interpret: keys it does not know (a newer writer's),
    and a known field whose value is not of the field's type (that field then
    reads as None). ``order`` is the order of the level's keys in its JSON
    object: as read, or as given to `of` and `updated`; it does not
    take part in equality. `to_dict` writes exactly those keys in that
    order, so a level read and written back is the same JSON, and a field
    never given is omitted.
    """

    name: str = _typed(str, required=True)
    tensor: str = _typed(str, required=True)  # the ONNX tensor that holds the level
    chs: int | None = _typed(int)  # null in a partial record where unknown
    reduction: int | None = _typed(int)
    index: int | None = _typed(int)  # the position in this record's levels
    source_index: int | None = _typed(int)  # a cut's level: its position in the record it was cut from
    layout: str | None = _typed(str)  # a --strides level: "nchw", or the layout the graph computes
    resolved_by: str | None = _typed(str)  # "strides", or "fingerprint"/"reference" (found by value)
    layer: str | None = _typed(str)  # a --strides level: the named layer it is
    after_layer: str | None = _typed(str)  # a --strides level: the layer whose activation it is
    source: str | None = _typed(str)  # a --strides level: "backbone" or "neck"
    origin: str | None = _typed(str)  # a --strides level: the input graph's tensor the rule took
    fingerprint: dict[str, Any] | None = _typed(dict)  # the export's sketch of the level's values
    recorded_tensor: str | None = _typed(str)  # found by value: the tensor the record named
    match_distance: float | None = _typed(float, int)  # found by value: the distance of the match
    extra: Mapping[str, Any] = field(default_factory=dict)
    order: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        present = [f.name for f in _LEVEL_FIELDS if f.name in _REQUIRED_FIELDS or getattr(self, f.name) is not None]
        object.__setattr__(self, "order", tuple(dict.fromkeys([*self.order, *present, *self.extra])))

    @classmethod
    def from_dict(cls, value: Any, where: str = "a level") -> LevelRecord:
        """The level a JSON object describes (the one reader).

        GraphfeatError, naming ``where`` and the field, when ``value`` is not
        an object or its ``name`` or ``tensor`` is missing or not a string.
        Any other field whose value is not of its type is kept unread in
        ``extra`` (see the class).
        """
        if not isinstance(value, dict):
            raise GraphfeatError(f"{where} must be an object with a 'name' and a 'tensor', got {type(value).__name__}")
        typed, extra = {}, {}
        for key, v in value.items():
            types = _LEVEL_TYPES.get(key)
            if types is not None and not isinstance(v, bool) and isinstance(v, types):
                typed[key] = v
            elif key in _REQUIRED_FIELDS:
                raise GraphfeatError(f"{where}: field '{key}' must be a string, got {v!r:.80}")
            else:
                extra[key] = v
        missing = [k for k in _REQUIRED_FIELDS if k not in value]
        if missing:
            raise GraphfeatError(f"{where} lacks the field '{missing[0]}' (a string)")
        return cls(**typed, extra=extra, order=tuple(value))

    @classmethod
    def of(cls, **values: Any) -> LevelRecord:
        """A new level from its fields, its JSON keys in the order given."""
        return cls.from_dict(values)

    def to_dict(self) -> dict[str, Any]:
        """The level as its JSON object (the one writer): the keys of ``order``, in that order."""
        return {k: self.extra[k] if k in self.extra else getattr(self, k) for k in self.order}

    def updated(self, **changes: Any) -> LevelRecord:
        """This level with ``changes``: a key it has keeps its place, a new one goes last."""
        return LevelRecord.from_dict({**self.to_dict(), **changes})

    @property
    def stands_for(self) -> str:
        """The layer this level stands for: ``layer`` for a ``--strides`` level taken at a named layer,
        else ``name``."""
        return self.layer if self.layer is not None else self.name

    @property
    def source_position(self) -> Any:
        """What a cut records as the level's ``source_index``: its own ``source_index`` if it carries one
        (a cut of a cut keeps the first position), else its ``index``; the value as written, None if neither."""
        written = self.to_dict()
        return written.get("source_index", written.get("index"))


_LEVEL_FIELDS = [f for f in fields(LevelRecord) if "types" in f.metadata]
_LEVEL_TYPES: dict[str, tuple[type, ...]] = {f.name: f.metadata["types"] for f in _LEVEL_FIELDS}
_REQUIRED_FIELDS = ("name", "tensor")


def record_levels(record: Mapping[str, Any] | None, where: str = f"'{METADATA_KEY}'") -> list[LevelRecord]:
    """The typed levels of a metadata record, shallow to deep; none for no record.

    GraphfeatError if ``levels`` is not a list or a level is malformed
    (`LevelRecord.from_dict`); ``where`` names the record in the message.
    """
    if record is None:
        return []
    levels = record.get("levels", [])
    if not isinstance(levels, list):
        raise GraphfeatError(f"the {where} metadata must be an object with a 'levels' list")
    return [LevelRecord.from_dict(lv, f"{where} level {i}") for i, lv in enumerate(levels)]


def build_record(levels: Sequence[LevelRecord], *, base: dict[str, Any] | None = None,
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
    record["levels"] = [level.updated(index=i).to_dict() for i, level in enumerate(levels)]
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
    """Store ``record`` under [`METADATA_KEY`][graphfeat.METADATA_KEY], replacing any previous one."""
    _validate(record)
    _remove_keys(model, (METADATA_KEY,))
    _put_json(model, METADATA_KEY, record)


def strip_metadata(model: onnx.ModelProto) -> None:
    """Remove the graphfeat records (used to test structural resolution)."""
    _remove_keys(model, (METADATA_KEY,))


def _validate(record: Any) -> None:
    if not isinstance(record, dict) or not isinstance(record.get("levels"), list):
        raise GraphfeatError(f"the '{METADATA_KEY}' metadata must be an object with a 'levels' list")
    record_levels(record)  # each level an object with a name and a tensor
    FeatureInfo(record["levels"])  # checks name/chs/reduction invariants


def read_partial_metadata(model: onnx.ModelProto) -> dict[str, Any] | None:
    """The partial record (`PARTIAL_KEY`) of ``model``, or ``None``."""
    record = _read_json(model, PARTIAL_KEY)
    if record is None:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("levels"), list):
        raise GraphfeatError(f"the '{PARTIAL_KEY}' metadata must hold a 'levels' list of {{name, tensor}} objects")
    record_levels(record, f"'{PARTIAL_KEY}'")  # each level an object with a name and a tensor
    return record


def write_feature_record(model: onnx.ModelProto, record: dict[str, Any]) -> str:
    """Store ``record`` under [`METADATA_KEY`][graphfeat.METADATA_KEY] if it is a valid FeatureInfo, else under
    `PARTIAL_KEY`; remove the other key. Returns the key used."""
    try:
        _validate(record)
        key = METADATA_KEY
    except GraphfeatError:
        key = PARTIAL_KEY
    _remove_keys(model, (METADATA_KEY, PARTIAL_KEY))
    _put_json(model, key, record)
    return key


def read_feature_record(model: onnx.ModelProto) -> tuple[dict[str, Any] | None, bool]:
    """``(record, complete)``: the [`METADATA_KEY`][graphfeat.METADATA_KEY] record, else the `PARTIAL_KEY` one, else None.

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
