"""The options of an export, and their defaults: written here once, used by every way into the export.

``exporters.export_model`` takes an [`ExportOptions`][exporters.ExportOptions] (or its fields as
keyword arguments); ``graphfeat export`` builds one from its arguments;
`graphfeat.runtime.export_in_worker` sends one to the MindSpore worker
as JSON (`ExportOptions.to_json`), which rebuilds it
(`ExportOptions.from_json`). This module imports neither MindSpore nor
numpy: ``graphfeat export`` starts its worker before those imports.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: the opset the export upgrades MindSpore's opset-11 graph to
DEFAULT_OPSET = 17
#: the probe's height and width, the size the file is proven (and, without ``dynamic_size``, fixed) at
DEFAULT_INPUT_SIZE = (224, 224)
#: the seed of the random weights when no checkpoint is given
DEFAULT_SEED = 0
#: ``dynamic_size``'s second proof size by default: this many rows and columns more than the input size
SECOND_SIZE_OFFSET = (32, 96)
#: older names of some options, still accepted as keyword arguments (``exporters.export_model``'s)
ALIASES = {"checkpoint_path": "checkpoint", "factory": "cell"}


def _tuple(value: Iterable | None) -> tuple | None:
    return None if value is None else tuple(value)


@dataclass(frozen=True)
class ExportOptions:
    """How to export a backbone; see ``exporters.export_model`` for what each option does."""

    input_size: tuple[int, ...] = DEFAULT_INPUT_SIZE  #: H, W of the probe (each at least 32)
    checkpoint: str = ""  #: a MindSpore ``.ckpt`` to load ("": seeded random weights)
    seed: int = DEFAULT_SEED  #: the seed of the random weights
    static_batch: bool = False  #: fix the batch dimension to 1
    features_only: bool = False  #: export the feature model instead of the classifier
    out_indices: tuple[int, ...] | None = None  #: the levels of ``features_only``
    reference: str | None = None  #: also write the probe and the expected levels to this ``.npz``
    opset: int = DEFAULT_OPSET  #: the target opset after the opset-11 export
    force: bool = False  #: overwrite existing outputs
    rtol: float | None = None  #: the proof's relative tolerance (None: ``graphfeat.runtime.DEFAULT_RTOL``)
    cell: str | None = None  #: a cell factory ``package.module:factory`` (recorded as ``cell_factory``)
    cell_kwargs: dict | None = None  #: keyword arguments of ``cell``'s factory
    dynamic_size: bool = False  #: free the input's height and width too
    second_size: tuple[int, ...] | None = None  #: ``dynamic_size``'s second proof size (default: SECOND_SIZE_OFFSET)

    def __post_init__(self) -> None:
        for name in ("input_size", "out_indices", "second_size"):
            object.__setattr__(self, name, _tuple(getattr(self, name)))
        object.__setattr__(self, "checkpoint", os.fspath(self.checkpoint) if self.checkpoint else "")
        if self.reference is not None:
            object.__setattr__(self, "reference", os.fspath(self.reference))

    @classmethod
    def of(cls, options: ExportOptions | None = None, overrides: Mapping[str, Any] | None = None, *,
           caller: str = "ExportOptions") -> ExportOptions:
        """``options`` (default: all defaults) with the fields in ``overrides`` replaced; an override may use
        an older name (`ALIASES`). An unknown name raises TypeError, as an unknown keyword would."""
        fields = {f.name for f in dataclasses.fields(cls)}
        changes: dict[str, Any] = {}
        for name, value in (overrides or {}).items():
            field = ALIASES.get(name, name)
            if field not in fields:
                raise TypeError(f"{caller}() got an unexpected keyword argument {name!r}")
            if field in changes:
                raise TypeError(f"{caller}() got multiple values for keyword argument {field!r}")
            changes[field] = value
        return dataclasses.replace(options or cls(), **changes)

    def to_json(self) -> dict[str, Any]:
        """The options as JSON values (tuples become lists)."""
        return {name: list(value) if isinstance(value, tuple) else value
                for name, value in dataclasses.asdict(self).items()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExportOptions:
        """The options `to_json` wrote (older names accepted, see `ALIASES`)."""
        return cls.of(None, data, caller="ExportOptions.from_json")


__all__ = ["ALIASES", "DEFAULT_INPUT_SIZE", "DEFAULT_OPSET", "DEFAULT_SEED", "SECOND_SIZE_OFFSET", "ExportOptions"]
