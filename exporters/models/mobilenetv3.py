"""MobileNetV3 (scenario 2: every layer in one ``features`` sequential cell), MindCV parameter names.

``features`` holds the stem (conv, bn, act as three cells), one ``Bottleneck``
per row of the setting table, then the last 1x1 conv, bn and act, so the
feature levels are ``features.<index>`` of the stem activation, of every
bottleneck and of the last activation.
"""
from __future__ import annotations

from mindspore import Tensor, nn

from ..helpers import build_model_with_cfg, default_cfg, make_divisible
from ..registry import register_model
from .layers import FeaturesPoolClassifier, GlobalAvgPooling, HSigmoid, HSwish, ResidualLayers, SqueezeExcite

__all__ = ["MobileNetV3", "Bottleneck"]

# One row per bottleneck: kernel, expansion channels, out channels, squeeze-excite, activation, stride.
_LARGE = [
    (3, 16, 16, False, "relu", 1),
    (3, 64, 24, False, "relu", 2),
    (3, 72, 24, False, "relu", 1),
    (5, 72, 40, True, "relu", 2),
    (5, 120, 40, True, "relu", 1),
    (5, 120, 40, True, "relu", 1),
    (3, 240, 80, False, "hswish", 2),
    (3, 200, 80, False, "hswish", 1),
    (3, 184, 80, False, "hswish", 1),
    (3, 184, 80, False, "hswish", 1),
    (3, 480, 112, True, "hswish", 1),
    (3, 672, 112, True, "hswish", 1),
    (5, 672, 160, True, "hswish", 2),
    (5, 960, 160, True, "hswish", 1),
    (5, 960, 160, True, "hswish", 1),
]
_SMALL = [
    (3, 16, 16, True, "relu", 2),
    (3, 72, 24, False, "relu", 2),
    (3, 88, 24, False, "relu", 1),
    (5, 96, 40, True, "hswish", 2),
    (5, 240, 40, True, "hswish", 1),
    (5, 240, 40, True, "hswish", 1),
    (5, 120, 48, True, "hswish", 1),
    (5, 144, 48, True, "hswish", 1),
    (5, 288, 96, True, "hswish", 2),
    (5, 576, 96, True, "hswish", 1),
    (5, 576, 96, True, "hswish", 1),
]
_ARCHS = {"large": (_LARGE, 1280), "small": (_SMALL, 1024)}
_ACTIVATIONS = {"relu": nn.ReLU, "hswish": HSwish}


class Bottleneck(ResidualLayers):
    """Inverted residual: optional 1x1 expand, depthwise conv, optional squeeze-excite, 1x1 project."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, kernel_size: int,
                 stride: int = 1, activation: str = "relu", use_se: bool = False) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        act = _ACTIVATIONS[activation]
        self.use_res_connect = stride == 1 and in_channels == out_channels
        layers = []
        if in_channels != mid_channels:
            layers += [
                nn.Conv2d(in_channels, mid_channels, 1, 1, pad_mode="pad", padding=0, has_bias=False),
                nn.BatchNorm2d(mid_channels),
                act(),
            ]
        layers += [
            nn.Conv2d(mid_channels, mid_channels, kernel_size, stride, pad_mode="same", group=mid_channels,
                      has_bias=False),
            nn.BatchNorm2d(mid_channels),
            act(),
        ]
        if use_se:
            layers.append(SqueezeExcite(mid_channels, 1.0 / 4, act_layer=nn.ReLU, gate_layer=HSigmoid))
        layers += [
            nn.Conv2d(mid_channels, out_channels, 1, 1, pad_mode="pad", padding=0, has_bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.layers = nn.SequentialCell(layers)


class MobileNetV3(FeaturesPoolClassifier):
    """MobileNetV3 ``small`` or ``large``; ``feature_info`` holds the stem, every bottleneck and the last conv."""

    def __init__(self, arch: str, alpha: float = 1.0, round_nearest: int = 8, in_channels: int = 3,
                 num_classes: int = 1000) -> None:
        super().__init__()
        if arch not in _ARCHS:
            raise ValueError(f"arch must be one of {sorted(_ARCHS)}, got {arch!r}")
        setting, last_channels = _ARCHS[arch]
        last_channels = make_divisible(alpha * last_channels, round_nearest)
        channels = make_divisible(16 * alpha, round_nearest)
        features = [
            nn.Conv2d(in_channels, channels, 3, 2, pad_mode="pad", padding=1, has_bias=False),
            nn.BatchNorm2d(channels),
            HSwish(),
        ]
        reduction = 2
        self.feature_info = [dict(chs=channels, reduction=reduction, name=f"features.{len(features) - 1}")]
        for k, e, c, se, nl, s in setting:
            out_channels = make_divisible(alpha * c, round_nearest)
            features.append(Bottleneck(channels, make_divisible(alpha * e, round_nearest), out_channels,
                                       kernel_size=k, stride=s, activation=nl, use_se=se))
            channels = out_channels
            reduction *= s
            self.feature_info.append(dict(chs=channels, reduction=reduction, name=f"features.{len(features) - 1}"))
        head_channels = channels * 6
        features += [
            nn.Conv2d(channels, head_channels, 1, 1, pad_mode="pad", padding=0, has_bias=False),
            nn.BatchNorm2d(head_channels),
            HSwish(),
        ]
        self.feature_info.append(dict(chs=head_channels, reduction=reduction, name=f"features.{len(features) - 1}"))
        self.flatten_sequential = True
        self.features = nn.SequentialCell(features)
        self.pool = GlobalAvgPooling()
        self.num_features = head_channels
        self.classifier = nn.SequentialCell([
            nn.Dense(head_channels, last_channels),
            HSwish(),
            nn.Dropout(p=0.2),
            nn.Dense(last_channels, num_classes),
        ])


def _create_mobilenet_v3(pretrained: bool = False, **kwargs) -> nn.Cell:
    return build_model_with_cfg(MobileNetV3, pretrained,
                                default_cfg=default_cfg(first_conv="features.0", classifier="classifier.3"), **kwargs)


@register_model
def mobilenet_v3_small_100(pretrained: bool = False, num_classes: int = 1000, in_channels: int = 3,
                           **kwargs) -> nn.Cell:
    return _create_mobilenet_v3(pretrained, arch="small", alpha=1.0, num_classes=num_classes,
                                in_channels=in_channels, **kwargs)


@register_model
def mobilenet_v3_large_100(pretrained: bool = False, num_classes: int = 1000, in_channels: int = 3,
                           **kwargs) -> nn.Cell:
    return _create_mobilenet_v3(pretrained, arch="large", alpha=1.0, num_classes=num_classes,
                                in_channels=in_channels, **kwargs)
