"""MobileNetV2 (scenario 2: every layer in one ``features`` sequential cell), MindCV parameter names.

``features`` holds the stem (conv, bn, ReLU6 as three cells), one
``InvertedResidual`` per block, then the last 1x1 conv, bn and ReLU6. The
feature levels are the last block of each stride, 2 to 32: ``features.3``
(16 channels at width 1.0), ``features.5`` (24), ``features.8`` (32),
``features.15`` (96) and ``features.19`` (320).
"""
from __future__ import annotations

from mindspore import Tensor, nn

from ..helpers import build_model_with_cfg, default_cfg, make_divisible
from ..registry import register_model
from .layers import FeaturesPoolClassifier, GlobalAvgPooling, ResidualLayers

__all__ = ["MobileNetV2", "InvertedResidual"]

# expansion t, out channels c, blocks n, stride s of the first block
_SETTING = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


class InvertedResidual(ResidualLayers):
    """Optional 1x1 expand, 3x3 depthwise, 1x1 linear projection; residual when the shape allows."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        hidden = round(in_channels * expand_ratio)
        self.use_res_connect = stride == 1 and in_channels == out_channels
        layers: list[nn.Cell] = []
        if expand_ratio != 1:
            layers += [
                nn.Conv2d(in_channels, hidden, 1, 1, pad_mode="pad", padding=0, has_bias=False),
                nn.BatchNorm2d(hidden),
                nn.ReLU6(),
            ]
        layers += [
            nn.Conv2d(hidden, hidden, 3, stride, pad_mode="pad", padding=1, group=hidden, has_bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(),
            nn.Conv2d(hidden, out_channels, 1, 1, pad_mode="pad", padding=0, has_bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.layers = nn.SequentialCell(layers)


class MobileNetV2(FeaturesPoolClassifier):
    """MobileNetV2 of width ``alpha``; ``feature_info`` holds the last block of each stride."""

    def __init__(self, alpha: float = 1.0, round_nearest: int = 8, in_channels: int = 3,
                 num_classes: int = 1000) -> None:
        super().__init__()
        channels = make_divisible(32 * alpha, round_nearest)
        last_channels = make_divisible(1280 * max(1.0, alpha), round_nearest)
        features: list[nn.Cell] = [
            nn.Conv2d(in_channels, channels, 3, 2, pad_mode="pad", padding=1, has_bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU6(),
        ]
        self.feature_info: list[dict] = []
        reduction = 2
        for k, (t, c, n, s) in enumerate(_SETTING):
            out_channels = make_divisible(c * alpha, round_nearest)
            for i in range(n):
                stride = s if i == 0 else 1
                features.append(InvertedResidual(channels, out_channels, stride, expand_ratio=t))
                channels = out_channels
                reduction *= stride
            # a stage ends where the next stage strides, or at the last block
            if k + 1 == len(_SETTING) or _SETTING[k + 1][3] != 1:
                self.feature_info.append(dict(chs=channels, reduction=reduction, name=f"features.{len(features) - 1}"))
        features += [
            nn.Conv2d(channels, last_channels, 1, 1, pad_mode="pad", padding=0, has_bias=False),
            nn.BatchNorm2d(last_channels),
            nn.ReLU6(),
        ]
        self.flatten_sequential = True
        self.features = nn.SequentialCell(features)
        self.pool = GlobalAvgPooling()
        self.num_features = last_channels
        self.classifier = nn.SequentialCell([
            nn.Dropout(p=0.2),
            nn.Dense(last_channels, num_classes),
        ])


def _create_mobilenet_v2(pretrained: bool = False, **kwargs) -> nn.Cell:
    return build_model_with_cfg(MobileNetV2, pretrained,
                                default_cfg=default_cfg(first_conv="features.0", classifier="classifier.1"), **kwargs)


@register_model
def mobilenet_v2_100(pretrained: bool = False, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> nn.Cell:
    return _create_mobilenet_v2(pretrained, alpha=1.0, num_classes=num_classes, in_channels=in_channels, **kwargs)
