"""Bring your own network: export any MindSpore cell that follows the feature protocol.

The feature protocol (docs/adding-a-backbone.md, sections 1-4): the cell carries
``feature_info``, a list of ``dict(chs=, reduction=, name=)`` entries shallow to
deep, and holds its levels in one of three ways: one top-level cell per level
(scenario 1), one ``SequentialCell`` marked ``flatten_sequential = True``
(scenario 2), or a rewritten feature class marked ``is_rewritten = True`` whose
``construct`` returns one tensor per entry (scenario 3). MindCV's classifiers
follow it. A features-only cell made by ``create_model(..., features_only=True)``
(a [`FeatureExtractWrapper`][exporters.FeatureExtractWrapper]) is accepted as it is.

`prepare_cell` turns such a cell into what the export needs: the network
to export, the all-levels feature model that gives the expected levels, and
which levels the file records. `exportable_copy` gives the network the
ONNX export compiles: layers MindSpore's ONNX exporter cannot convert
(`EXPORTABLE_SUBSTITUTES`) replaced, in a copy, by cells computing the
same values. `build_from_factory` imports and calls a
``package.module:factory`` for ``graphfeat export --cell``.
"""
from __future__ import annotations

import copy
import importlib
import json
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from mindspore import nn

from graphfeat.errors import GraphfeatError, first_line
from graphfeat.levels import FeatureInfo

from .features import FeatureExtractWrapper
from .models import layers

#: layers MindSpore's ONNX exporter has no converter for, and the exportable cell computing the same values
#: (from ``Add``, ``Clip``, ``Mul`` and ``Div``); neither has parameters, so no parameter name changes
EXPORTABLE_SUBSTITUTES: dict[type, type] = {nn.HSwish: layers.HSwish, nn.HSigmoid: layers.HSigmoid}
#: per-instance compile state a copied cell must not share with its original (the original's compiled
#: graphs would be freed with the copy)
_FRESH_STATE = {"_compile_cache": None, "_phase_cache": None, "_compiled": False, "arguments_key": ""}

PROTOCOL_HINT = ("a cell must follow the feature protocol: self.feature_info = [dict(chs=, reduction=, name=), ...] "
                 "shallow to deep, its levels held as top-level cells (scenario 1), one SequentialCell with "
                 "flatten_sequential = True (scenario 2) or a rewritten feature class with is_rewritten = True "
                 "(scenario 3); see docs/adding-a-backbone.md")


def cell_label(cell: nn.Cell) -> str:
    """``module:QualName`` of the cell's class, the ``model`` field of a cell's export record.

    A features-only wrapper is labelled by the class of the network it wraps.
    """
    return class_label(getattr(cell, "source_class", None) or type(cell))


def in_channels_of(cell: nn.Cell) -> int:
    """The input channels: ``default_cfg['input_size'][0]``, else the first Conv2d's, else 3."""
    cfg = getattr(cell, "default_cfg", None)
    if isinstance(cfg, dict) and cfg.get("input_size"):
        return int(cfg["input_size"][0])
    for _, sub in cell.cells_and_names():
        if isinstance(sub, nn.Conv2d):
            return int(sub.in_channels)
    return 3


def require_protocol(cell: Any) -> list[dict]:
    """The cell's feature_info entries, or a GraphfeatError that names the protocol."""
    if not isinstance(cell, nn.Cell):
        raise GraphfeatError(f"expected a mindspore.nn.Cell, got {type(cell).__module__}.{type(cell).__qualname__}; "
                             + PROTOCOL_HINT)
    info = getattr(cell, "feature_info", None)
    if isinstance(info, FeatureInfo):
        return [dict(e) for e in info.info]
    if not info:
        raise GraphfeatError(f"{type(cell).__name__} has no feature_info, so its levels are unknown; {PROTOCOL_HINT}")
    try:
        entries = [dict(e) for e in info]
        FeatureInfo(entries)  # checks names, channels and reductions
    except (TypeError, ValueError, KeyError) as exc:
        raise GraphfeatError(f"{type(cell).__name__}.feature_info is not valid ({exc}); {PROTOCOL_HINT}") from None
    return entries


@contextmanager
def parameter_names_kept(cell: nn.Cell) -> Iterator[None]:
    """Restore the parameter names of ``cell`` on exit.

    Wrapping a scenario-2 cell for its levels renames its parameters in place
    (``features.0.weight`` -> ``features_0.0.weight``); the user's cell keeps its names.
    """
    saved = [(p, p.name) for p in cell.get_parameters()]
    try:
        yield
    finally:
        for p, name in saved:
            if p.name != name:
                p.name = name


@dataclass
class PreparedCell:
    """What `prepare_cell` gives the export."""

    net: nn.Cell              # what is exported: the classifier, or a features-only cell
    feature_model: nn.Cell    # returns a tuple of levels
    info: FeatureInfo         # every level of the cell (all selected)
    selected: list[int]       # the levels the file records, as positions in ``info``
    positions: list[int]      # where each recorded level is in feature_model's output
    features_only: bool       # the export has no classifier output
    label: str                # ``module:QualName``
    export_net: nn.Cell | None = None  # what the ONNX export compiles: ``net``, or its copy with substitutes
    substitutions: list[dict] = field(default_factory=list)  # what `exportable_copy` replaced


def class_label(cls: type) -> str:
    """``module:QualName`` of a class."""
    return f"{cls.__module__}:{cls.__qualname__}"


def _copy_with_children(cell: nn.Cell, children: dict[str, nn.Cell]) -> nn.Cell:
    """A shallow copy of ``cell`` whose children named in ``children`` are replaced; ``cell`` is unchanged.

    The copy shares every other attribute (parameters included); a list or tuple attribute that holds a
    replaced child (``SequentialCell.cell_list``) is rebuilt with the replacement.
    """
    clone = copy.copy(cell)  # its __dict__ is still the original's object: a new one is set below
    swap = {id(cell._cells[name]): new for name, new in children.items()}
    state = dict(cell.__dict__)
    state["_cells"] = OrderedDict((name, children.get(name, child)) for name, child in cell._cells.items())
    for key, value in state.items():
        if key != "_cells" and isinstance(value, (list, tuple)) and any(id(v) in swap for v in value):
            state[key] = (list if isinstance(value, list) else tuple)(swap.get(id(v), v) for v in value)
    state.update({k: v for k, v in _FRESH_STATE.items() if k in state}, _create_time=time.time_ns())
    object.__setattr__(clone, "__dict__", state)
    nn.Cell.total_instance_count += 1  # what Cell.__init__ counts, and the copy's __del__ uncounts
    return clone


def exportable_copy(net: nn.Cell, names_from: nn.Cell | None = None) -> tuple[nn.Cell, list[dict]]:
    """``(net, [])``, or a copy of ``net`` in which every `EXPORTABLE_SUBSTITUTES` layer is replaced,
    and the substitutions: ``[{"replaced": class, "with": class, "cells": [path, ...]}]``.

    Only the cells on the path from the root to a replaced layer are copied; every other cell and every
    parameter is shared, so the copy has ``net``'s weights and parameter names, and ``net`` (the user's
    cell, which the export's proof runs) is never changed. The type must match exactly: a subclass may
    compute something else. ``cells`` are the paths in ``names_from`` (default ``net``), the user's cell.
    """
    where = {id(sub): name for name, sub in (names_from if names_from is not None else net).cells_and_names()}
    memo: dict[int, nn.Cell] = {}
    replaced: dict[type, list[str]] = {}

    def visit(cell: nn.Cell, path: str) -> nn.Cell:
        if id(cell) in memo:
            return memo[id(cell)]
        substitute = EXPORTABLE_SUBSTITUTES.get(type(cell))
        if substitute is not None:
            new = substitute()
            replaced.setdefault(type(cell), []).append(where.get(id(cell), path))
        else:
            changed = {}
            for name, child in cell._cells.items():
                if child is not None:
                    new_child = visit(child, f"{path}.{name}" if path else name)
                    if new_child is not child:
                        changed[name] = new_child
            new = _copy_with_children(cell, changed) if changed else cell
        memo[id(cell)] = new
        return new

    copied = visit(net, "")
    substitutions = [{"replaced": class_label(old), "with": class_label(EXPORTABLE_SUBSTITUTES[old]), "cells": cells}
                     for old, cells in replaced.items()]
    return copied, substitutions


def prepare_cell(cell: Any, features_only: bool = False, out_indices: Iterable[int] | None = None) -> PreparedCell:
    """The export plan for a user's cell (see the module docstring for what is accepted).

    A classifier is exported as it is (``features_only``: its feature wrapper,
    ``out_indices`` selecting the levels) and its levels come from the feature
    wrapper over the same cell, so from the same weights. A rewritten feature
    class (scenario 3) and a features-only wrapper are exported as features-only.
    The cell's parameter names are kept (see `parameter_names_kept`). What is exported is
    `exportable_copy` of that network; the levels and outputs that prove it are the cell's own.
    """
    if isinstance(cell, FeatureExtractWrapper):
        if out_indices is not None:
            raise GraphfeatError("the cell is already a features-only model; choose its out_indices when you build it")
        sel = list(cell.feature_info.out_indices)
        return PreparedCell(cell, cell, FeatureInfo(cell.feature_info.info), sel, list(range(len(sel))), True,
                            cell_label(cell), *exportable_copy(cell))
    entries = require_protocol(cell)
    label = cell_label(cell)
    features_only = features_only or bool(getattr(cell, "is_rewritten", False))
    if out_indices is not None and not features_only:
        raise GraphfeatError("out_indices selects the levels of a features-only export; pass features_only=True")
    with parameter_names_kept(cell):
        try:
            feature_model = FeatureExtractWrapper(cell)
            if features_only:
                net = feature_model if out_indices is None else FeatureExtractWrapper(cell, out_indices)
            else:
                net = cell
        except GraphfeatError as exc:
            raise GraphfeatError(f"{exc}; {PROTOCOL_HINT}") from None
    info = FeatureInfo(entries)
    selected = list(net.feature_info.out_indices) if features_only else list(range(len(info)))
    return PreparedCell(net, feature_model, info, selected, selected, features_only, label,
                        *exportable_copy(net, names_from=cell))


def build_from_factory(spec: str, kwargs: dict | str | None = None) -> tuple[nn.Cell, str]:
    """Import ``package.module:factory``, call it with ``kwargs`` and return ``(cell, spec)``.

    Raises GraphfeatError (one line) when the spec is malformed, the module
    does not import, the factory is missing or raises, or the result is no cell.
    """
    if isinstance(kwargs, str):
        try:
            kwargs = json.loads(kwargs) if kwargs.strip() else {}
        except json.JSONDecodeError as exc:
            raise GraphfeatError(f"--cell-kwargs is not valid JSON ({exc})") from None
    kwargs = kwargs or {}
    if not isinstance(kwargs, dict):
        raise GraphfeatError(f"--cell-kwargs must be a JSON object, got {type(kwargs).__name__}")
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise GraphfeatError(f"--cell '{spec}' must be package.module:factory (a callable that returns a nn.Cell)")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import-time error of the user's module
        raise GraphfeatError(f"cannot import '{module_name}' for --cell {spec} "
                             f"({type(exc).__name__}: {first_line(exc)}); it must be importable from the working "
                             "directory or PYTHONPATH") from None
    factory = module
    for part in attr.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise GraphfeatError(f"module '{module_name}' has no '{attr}' (for --cell {spec})")
    if not callable(factory):
        raise GraphfeatError(f"'{spec}' is not callable; --cell names a factory (or class) that returns a nn.Cell")
    try:
        cell = factory(**kwargs)
    except Exception as exc:
        raise GraphfeatError(f"the factory {spec} raised {type(exc).__name__}: {first_line(exc)}") from None
    if not isinstance(cell, nn.Cell):
        raise GraphfeatError(f"the factory {spec} returned {type(cell).__qualname__}, not a mindspore.nn.Cell")
    return cell, spec

