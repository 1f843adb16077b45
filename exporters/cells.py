"""Bring your own network: export any MindSpore cell that follows the feature protocol.

The feature protocol (docs/adding-a-backbone.md, sections 1-4): the cell carries
``feature_info``, a list of ``dict(chs=, reduction=, name=)`` entries shallow to
deep, and holds its levels in one of three ways: one top-level cell per level
(scenario 1), one ``SequentialCell`` marked ``flatten_sequential = True``
(scenario 2), or a rewritten feature class marked ``is_rewritten = True`` whose
``construct`` returns one tensor per entry (scenario 3). MindCV's classifiers
follow it. A features-only cell made by ``create_model(..., features_only=True)``
(a :class:`~exporters.features.FeatureExtractWrapper`) is accepted as it is.

:func:`prepare_cell` turns such a cell into what the export needs: the network
to export, the all-levels feature model that gives the expected levels, and
which levels the file records. :func:`build_from_factory` imports and calls a
``package.module:factory`` for ``graphfeat export --cell``.
"""
from __future__ import annotations

import importlib
import json
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from mindspore import nn

from graphfeat.errors import GraphfeatError, first_line
from graphfeat.levels import FeatureInfo

from .features import FeatureExtractWrapper

PROTOCOL_HINT = ("a cell must follow the feature protocol: self.feature_info = [dict(chs=, reduction=, name=), ...] "
                 "shallow to deep, its levels held as top-level cells (scenario 1), one SequentialCell with "
                 "flatten_sequential = True (scenario 2) or a rewritten feature class with is_rewritten = True "
                 "(scenario 3); see docs/adding-a-backbone.md")


def cell_label(cell: nn.Cell) -> str:
    """``module:QualName`` of the cell's class, the ``model`` field of a cell's export record.

    A features-only wrapper is labelled by the class of the network it wraps.
    """
    cls = getattr(cell, "source_class", None) or type(cell)
    return f"{cls.__module__}:{cls.__qualname__}"


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
    """What :func:`prepare_cell` gives the export."""

    net: nn.Cell              # what is exported: the classifier, or a features-only cell
    feature_model: nn.Cell    # returns a tuple of levels
    info: FeatureInfo         # every level of the cell (all selected)
    selected: list[int]       # the levels the file records, as positions in ``info``
    positions: list[int]      # where each recorded level is in feature_model's output
    features_only: bool       # the export has no classifier output
    label: str                # ``module:QualName``


def prepare_cell(cell: Any, features_only: bool = False, out_indices: Iterable[int] | None = None) -> PreparedCell:
    """The export plan for a user's cell (see the module docstring for what is accepted).

    A classifier is exported as it is (``features_only``: its feature wrapper,
    ``out_indices`` selecting the levels) and its levels come from the feature
    wrapper over the same cell, so from the same weights. A rewritten feature
    class (scenario 3) and a features-only wrapper are exported as features-only.
    The cell's parameter names are kept (see :func:`parameter_names_kept`).
    """
    if isinstance(cell, FeatureExtractWrapper):
        if out_indices is not None:
            raise GraphfeatError("the cell is already a features-only model; choose its out_indices when you build it")
        sel = list(cell.feature_info.out_indices)
        return PreparedCell(cell, cell, FeatureInfo(cell.feature_info.info), sel, list(range(len(sel))), True,
                            cell_label(cell))
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
    return PreparedCell(net, feature_model, info, selected, selected, features_only, label)


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

