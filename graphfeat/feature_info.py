"""``FeatureInfo``: a small value object describing a model's feature pyramid.

The same class serves the MindSpore feature wrapper (``exporters``) and the
ONNX side (``graphfeat``), so both answer the same questions the same way.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence, Union

from .errors import GraphfeatError

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
