"""Helpers that model files share: ``build_model_with_cfg`` and small utilities."""
from __future__ import annotations

from typing import Any, Callable, Iterable

from mindspore import nn

from graphfeat.errors import GraphfeatError

from .features import FeatureExtractWrapper
from .init import deferred_parameters, seeded_weights


def default_cfg(url: str = "", **kwargs: Any) -> dict[str, Any]:
    """A model's default configuration (MindCV's ``_cfg``)."""
    return {
        "url": url,
        "num_classes": 1000,
        "input_size": (3, 224, 224),
        "first_conv": "",
        "classifier": "",
        **kwargs,
    }


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """The nearest multiple of ``divisor`` to ``v`` that is not more than 10% below it."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def build_model_with_cfg(
    model_cls: Callable[..., nn.Cell],
    pretrained: bool,
    default_cfg: dict[str, Any] | None = None,
    features_only: bool = False,
    out_indices: Iterable[int] | None = None,
    seed: int | None = None,
    init: bool = True,
    **kwargs: Any,
) -> nn.Cell:
    """Build ``model_cls(**kwargs)`` with seeded weights, wrapped for features if asked.

    Weights are initialised on the full model before wrapping, so a
    ``features_only`` model returns exactly the intermediate tensors of the
    classifier built with the same seed. ``init=False`` skips the seeded weights
    and the BatchNorm calibration (MindSpore's default weights remain): a cheap
    way to read a model's structure and ``feature_info``, or to build a model
    whose every weight then comes from a checkpoint (cheaper still inside
    `init.deferred_parameters`, which draws a parameter's default values
    only when it is read). With ``init`` the model is always built deferred:
    the seeded weights replace every draw.
    """
    if pretrained:
        raise GraphfeatError(
            "pretrained=True needs a download, and graphfeat downloads nothing; "
            "pass checkpoint_path='path/to/model.ckpt' instead"
        )
    with deferred_parameters(init):
        model = model_cls(**kwargs)
    model.default_cfg = dict(default_cfg or {})
    if init:
        # a rewritten feature class names the class it shares seeded weights with (``init_like``)
        like = getattr(model_cls, "init_like", model_cls)
        config = (like.__module__, like.__qualname__, repr(sorted(kwargs.items())))
        seeded_weights(model, config, seed, in_channels=kwargs.get("in_channels", 3))
    if features_only:
        if out_indices is None:  # a family's own default selection (ViT's BEiT levels), else every level
            out_indices = getattr(model, "default_out_indices", None)
        model = FeatureExtractWrapper(model, out_indices=out_indices)
    model.set_train(False)
    return model
