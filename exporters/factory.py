"""``create_model``: build a registered backbone, optionally as a feature pyramid."""
from __future__ import annotations

from typing import Any, Iterable

from mindspore import nn

from .checkpoint import load_checkpoint_into
from .init import deferred_parameters
from .registry import model_entrypoint


def create_model(
    model_name: str,
    num_classes: int = 1000,
    pretrained: bool = False,
    in_channels: int = 3,
    checkpoint_path: str = "",
    auto_mapping: bool = False,
    features_only: bool = False,
    out_indices: Iterable[int] | None = None,
    seed: int | None = None,
    **kwargs: Any,
) -> nn.Cell:
    """Create a registered model (MindCV's ``create_model``), in eval mode.

    ``features_only=True`` returns the feature wrapper, whose ``construct``
    returns a tuple of the levels in ``out_indices`` (``None``: all levels;
    negative: from the end). ``seed`` fixes the random weights;
    ``checkpoint_path`` then overrides them from a ``.ckpt`` (``auto_mapping``
    maps classifier names onto the flattened names of scenario 2). The load
    report is kept as ``model.load_report``. The checkpoint must hold every
    parameter, so MindSpore's own initialisers are then skipped (deferred).
    """
    create_fn = model_entrypoint(model_name)
    with deferred_parameters(bool(checkpoint_path)):
        model = create_fn(
            pretrained=pretrained,
            num_classes=num_classes,
            in_channels=in_channels,
            features_only=features_only,
            out_indices=out_indices,
            seed=seed,
            **kwargs,
        )
    if checkpoint_path:
        model.load_report = load_checkpoint_into(model, checkpoint_path, auto_mapping=auto_mapping)
    model.set_train(False)
    return model
