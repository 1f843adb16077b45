"""Load a MindSpore ``.ckpt`` into a model, strictly and with a clear report."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import mindspore as ms
from mindspore import nn

from graphfeat.errors import CheckpointNotFoundError, GraphfeatError, first_line

from .features import flat_name

logger = logging.getLogger(__name__)


@dataclass
class LoadReport:
    """What a checkpoint load did: which names were mapped and which were not used."""

    loaded: list[str] = field(default_factory=list)
    mapped: dict[str, str] = field(default_factory=dict)  # model name <- checkpoint name
    unused: list[str] = field(default_factory=list)  # checkpoint names the model has no use for


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The parameters of a MindSpore checkpoint file, or a clear error."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointNotFoundError(f"checkpoint '{path}' does not exist; check checkpoint_path")
    try:
        params = ms.load_checkpoint(path)
    except Exception as exc:  # MindSpore raises ValueError/RuntimeError for non-checkpoints
        raise GraphfeatError(
            f"'{path}' is not a readable MindSpore checkpoint ({first_line(exc)}); "
            "pass a .ckpt written by mindspore.save_checkpoint"
        ) from None
    if not params:
        raise GraphfeatError(f"checkpoint '{path}' holds no parameters")
    return params


def load_checkpoint_into(model: nn.Cell, path: str | os.PathLike, auto_mapping: bool = False) -> LoadReport:
    """Load ``path`` into ``model``.

    With ``auto_mapping`` a checkpoint name ``a.b.rest`` that the model lacks is
    mapped to ``a_b.rest`` (the flatten rule of scenario 2) when the model has
    that name. Every model parameter must be found with the right shape, or a
    ``GraphfeatError`` lists the names; checkpoint entries the model does not use
    (a classifier head, optimizer state) are reported, not an error.
    """
    ckpt = read_checkpoint(path)
    model_params = {p.name: p for p in model.get_parameters()}
    report = LoadReport()
    to_load: dict = {}
    for name, value in ckpt.items():
        target = name
        if target not in model_params and auto_mapping and flat_name(name) in model_params:
            target = flat_name(name)
            report.mapped[target] = name
        if target in model_params:
            to_load[target] = value
        else:
            report.unused.append(name)
    missing = sorted(set(model_params) - set(to_load))
    if missing:
        hint = "" if auto_mapping else " (for a flattened features_only model, pass auto_mapping=True)"
        raise GraphfeatError(
            f"checkpoint '{path}' lacks {len(missing)} parameter(s) of the model{hint}: "
            + ", ".join(missing[:20]) + (" ..." if len(missing) > 20 else "")
        )
    bad = [
        f"{n}: model {tuple(model_params[n].shape)} vs checkpoint {tuple(v.shape)}"
        for n, v in to_load.items()
        if tuple(model_params[n].shape) != tuple(v.shape)
    ]
    if bad:
        raise GraphfeatError(f"checkpoint '{path}' has shape mismatches: " + "; ".join(bad[:20]))
    for target, value in to_load.items():
        model_params[target].set_data(value.data if hasattr(value, "data") else value)
    report.loaded = sorted(to_load)
    if report.unused:
        logger.info("checkpoint %s: %d entries not used by the model: %s", path, len(report.unused),
                    ", ".join(report.unused[:10]))
    return report
