"""VGG (scenario 2: every layer in one ``features`` sequential cell), MindCV parameter names.

``features`` is MindCV's flat list: ``Conv2d`` (no bias), optionally
``BatchNorm2d``, ``ReLU`` per number of the configuration, and ``MaxPool2d`` per
``"M"``. The feature levels are the five max-pools, at strides 2 to 32 (the
activation before each pool would give strides 1 to 16).

MindCV's head flattens ``features`` into ``Dense(512 * 7 * 7, 4096)``, so it
accepts only 224x224 inputs. Here a parameter-free `AdaptiveAvgPool7`
comes first (as in torchvision): the identity on a 7x7 map, so MindCV
checkpoints give MindCV's logits at 224x224, and any other size works too.
"""
from __future__ import annotations

from typing import Union

from mindspore import Tensor, nn, ops

from ..helpers import build_model_with_cfg, default_cfg
from ..registry import register_model

__all__ = ["VGG", "AdaptiveAvgPool7"]

_CFGS: dict[str, list[Union[int, str]]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def _window(i: int, size: int, out: int) -> tuple[int, int]:
    """Rows ``[start, end)`` averaged into output row ``i`` of an adaptive pool from ``size`` to ``out``."""
    return (i * size) // out, -((-(i + 1) * size) // out)


class AdaptiveAvgPool7(nn.Cell):
    """Adaptive average pooling to 7x7, from slices and means (``AdaptiveAvgPool2D`` does not export).

    The windows are computed from the static input shape, so an export is valid
    for the input size it was made at (any batch).
    """

    def __init__(self) -> None:
        super().__init__()
        self.out = 7

    def _pool(self, x: Tensor, axis: int) -> Tensor:
        size = x.shape[axis]
        if size == self.out:
            return x
        rows = ()
        for i in range(self.out):
            start, end = _window(i, size, self.out)
            if axis == 2:
                part = x[:, :, start:end, :]
            else:
                part = x[:, :, :, start:end]
            rows = rows + (ops.mean(part, axis, True),)
        return ops.concat(rows, axis)

    def construct(self, x: Tensor) -> Tensor:
        return self._pool(self._pool(x, 2), 3)


def _make_layers(cfg: list[Union[int, str]], batch_norm: bool, in_channels: int,
                 feature_info: list[dict]) -> nn.SequentialCell:
    """MindCV's ``features`` list; appends one feature_info entry per max-pool."""
    layers: list[nn.Cell] = []
    channels, reduction = in_channels, 1
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            reduction *= 2
            feature_info.append(dict(chs=channels, reduction=reduction, name=f"features.{len(layers) - 1}"))
            continue
        layers.append(nn.Conv2d(channels, v, kernel_size=3, pad_mode="pad", padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU())
        channels = v
    return nn.SequentialCell(layers)


class VGG(nn.Cell):
    """VGG-11/13/16/19, with or without BatchNorm; ``feature_info`` holds the five max-pools."""

    def __init__(self, model_name: str, batch_norm: bool = False, num_classes: int = 1000, in_channels: int = 3,
                 drop_rate: float = 0.5) -> None:
        super().__init__()
        if model_name not in _CFGS:
            raise ValueError(f"model_name must be one of {sorted(_CFGS)}, got {model_name!r}")
        self.feature_info: list[dict] = []
        self.flatten_sequential = True
        self.features = _make_layers(_CFGS[model_name], batch_norm, in_channels, self.feature_info)
        self.pool = AdaptiveAvgPool7()
        self.flatten = nn.Flatten()
        self.num_features = 512 * 7 * 7
        self.classifier = nn.SequentialCell([
            nn.Dense(self.num_features, 4096),
            nn.ReLU(),
            nn.Dropout(p=drop_rate),
            nn.Dense(4096, 4096),
            nn.ReLU(),
            nn.Dropout(p=drop_rate),
            nn.Dense(4096, num_classes),
        ])

    def forward_features(self, x: Tensor) -> Tensor:
        return self.features(x)

    def forward_head(self, x: Tensor) -> Tensor:
        return self.classifier(self.flatten(self.pool(x)))

    def construct(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def _create_vgg(pretrained: bool = False, **kwargs) -> nn.Cell:
    return build_model_with_cfg(VGG, pretrained,
                                default_cfg=default_cfg(first_conv="features.0", classifier="classifier.6"), **kwargs)


@register_model
def vgg11(pretrained: bool = False, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> nn.Cell:
    return _create_vgg(pretrained, model_name="vgg11", num_classes=num_classes, in_channels=in_channels, **kwargs)


@register_model
def vgg16(pretrained: bool = False, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> nn.Cell:
    return _create_vgg(pretrained, model_name="vgg16", num_classes=num_classes, in_channels=in_channels, **kwargs)


@register_model
def vgg11_bn(pretrained: bool = False, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> nn.Cell:
    return _create_vgg(pretrained, model_name="vgg11", batch_norm=True, num_classes=num_classes,
                       in_channels=in_channels, **kwargs)


@register_model
def vgg16_bn(pretrained: bool = False, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> nn.Cell:
    return _create_vgg(pretrained, model_name="vgg16", batch_norm=True, num_classes=num_classes,
                       in_channels=in_channels, **kwargs)
