"""ReXNet (scenario 2: a ``stem`` cell, then every block in one ``features`` sequential cell), MindCV names.

The feature levels are the outputs of the last block before each stride-2
block, and of the last block (``features.15`` for ReXNet-1.0); the final 1x1
conv and the pooling that follow it in ``features`` are not levels.
"""
from __future__ import annotations

from math import ceil
from typing import Optional, Type

from mindspore import Tensor, nn, ops

from ..helpers import build_model_with_cfg, default_cfg, make_divisible
from ..init import init_residual_norm
from ..registry import register_model
from .layers import DropPath, GlobalAvgPooling, SqueezeExcite, Swish

__all__ = ["ReXNetV1", "LinearBottleneck", "Conv2dNormActivation"]


class Conv2dNormActivation(nn.Cell):
    """Conv, optional BatchNorm and optional activation, held in ``features`` (MindCV's layer of that name)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: Optional[int] = None, groups: int = 1, norm: bool = True,
                 activation: Optional[Type[nn.Cell]] = nn.ReLU) -> None:
        super().__init__()
        if padding is None:
            padding = ((stride - 1) + (kernel_size - 1)) // 2
        layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, pad_mode="pad", padding=padding,
                            group=groups, has_bias=not norm)]
        if norm:
            layers.append(nn.BatchNorm2d(out_channels))
        if activation is not None:
            layers.append(activation())
        self.features = nn.SequentialCell(layers)

    def construct(self, x: Tensor) -> Tensor:
        return self.features(x)


class LinearBottleneck(nn.Cell):
    """Expand (1x1, Swish), depthwise 3x3, squeeze-excite, ReLU6, project (1x1, linear).

    The shortcut is added to the first ``in_channels`` output channels only
    (ReXNet's partial residual), written as slice + add + concat so it exports.
    """

    def __init__(self, in_channels: int, out_channels: int, exp_ratio: int, stride: int, use_se: bool = True,
                 se_ratio: float = 1 / 12, ch_div: int = 1, act_layer: Type[nn.Cell] = Swish,
                 dw_act_layer: Type[nn.Cell] = nn.ReLU6, drop_path: Optional[nn.Cell] = None) -> None:
        super().__init__()
        self.use_shortcut = stride == 1 and in_channels <= out_channels
        self.in_channels = in_channels
        self.out_channels = out_channels
        if exp_ratio != 1:
            dw_channels = in_channels * exp_ratio
            self.conv_exp = Conv2dNormActivation(in_channels, dw_channels, 1, activation=act_layer)
        else:
            dw_channels = in_channels
            self.conv_exp = None
        self.conv_dw = Conv2dNormActivation(dw_channels, dw_channels, 3, stride, padding=1, groups=dw_channels,
                                            activation=None)
        if use_se:
            self.se = SqueezeExcite(dw_channels, rd_channels=make_divisible(int(dw_channels * se_ratio), ch_div),
                                    norm=True)
        else:
            self.se = None
        self.act_dw = dw_act_layer()
        self.conv_pwl = Conv2dNormActivation(dw_channels, out_channels, 1, padding=0, activation=None)
        self.drop_path = drop_path

    def init_extra_weights(self, rng) -> None:  # noqa: ARG002  (deterministic)
        if self.use_shortcut:
            init_residual_norm(self.conv_pwl)

    def construct(self, x: Tensor) -> Tensor:
        shortcut = x
        if self.conv_exp is not None:
            x = self.conv_exp(x)
        x = self.conv_dw(x)
        if self.se is not None:
            x = self.se(x)
        x = self.act_dw(x)
        x = self.conv_pwl(x)
        if self.use_shortcut:
            if self.drop_path is not None:
                x = self.drop_path(x)
            if self.in_channels == self.out_channels:
                x = x + shortcut
            else:
                head = x[:, 0:self.in_channels] + shortcut
                x = ops.concat((head, x[:, self.in_channels:]), 1)
        return x


class ReXNetV1(nn.Cell):
    """ReXNet-1.x; ``feature_info`` holds the input of every stride-2 block and the last block."""

    def __init__(self, in_channels: int = 3, fi_channels: int = 180, initial_channels: int = 16,
                 width_mult: float = 1.0, depth_mult: float = 1.0, num_classes: int = 1000, use_se: bool = True,
                 se_ratio: float = 1 / 12, drop_rate: float = 0.2, drop_path_rate: float = 0.0, ch_div: int = 1,
                 act_layer: Type[nn.Cell] = Swish, dw_act_layer: Type[nn.Cell] = nn.ReLU6) -> None:
        super().__init__()
        layers = [ceil(n * depth_mult) for n in (1, 2, 2, 3, 3, 5)]
        strides = sum([[s] + [1] * (n - 1) for s, n in zip((1, 2, 2, 2, 1, 2), layers)], [])
        use_ses = sum([[se and use_se] * n for se, n in zip((False, False, True, True, True, True), layers)], [])
        exp_ratios = [1] * layers[0] + [6] * sum(layers[1:])
        num_blocks = sum(layers)

        stem_channel = 32 / width_mult if width_mult < 1.0 else 32
        inplanes = initial_channels / width_mult if width_mult < 1.0 else initial_channels
        in_channels_group, out_channels_group = [], []
        for i in range(num_blocks):
            if i == 0:
                in_channels_group.append(int(round(stem_channel * width_mult)))
                out_channels_group.append(int(round(inplanes * width_mult)))
            else:
                in_channels_group.append(int(round(inplanes * width_mult)))
                inplanes += fi_channels / num_blocks
                out_channels_group.append(int(round(inplanes * width_mult)))

        stem_chs = make_divisible(round(stem_channel * width_mult), divisor=ch_div)
        self.stem = Conv2dNormActivation(in_channels, stem_chs, stride=2, padding=1, activation=act_layer)

        self.feature_info = []
        feat_chs = [stem_chs]
        reduction = 2
        features = []
        for block_idx, (in_c, out_c, exp_ratio, stride, se) in enumerate(
                zip(in_channels_group, out_channels_group, exp_ratios, strides, use_ses)):
            if stride > 1:
                name = "stem" if block_idx == 0 else f"features.{block_idx - 1}"
                self.feature_info.append(dict(chs=feat_chs[-1], reduction=reduction, name=name))
            block_dpr = drop_path_rate * block_idx / (num_blocks - 1)
            features.append(LinearBottleneck(in_c, out_c, exp_ratio, stride, use_se=se, se_ratio=se_ratio,
                                             act_layer=act_layer, dw_act_layer=dw_act_layer,
                                             drop_path=DropPath(block_dpr) if block_dpr > 0 else None))
            reduction *= stride
            feat_chs.append(out_c)
        self.feature_info.append(dict(chs=feat_chs[-1], reduction=reduction, name=f"features.{len(features) - 1}"))
        self.flatten_sequential = True

        pen_channels = make_divisible(int(1280 * width_mult), divisor=ch_div)
        features.append(Conv2dNormActivation(out_channels_group[-1], pen_channels, kernel_size=1,
                                             activation=act_layer))
        features.append(GlobalAvgPooling(keep_dims=True))
        self.features = nn.SequentialCell(features)
        self.num_features = pen_channels
        self.cls = nn.SequentialCell([nn.Dropout(p=drop_rate), nn.Dense(pen_channels, num_classes)])

    def forward_features(self, x: Tensor) -> Tensor:
        return self.features(self.stem(x))

    def forward_head(self, x: Tensor) -> Tensor:
        return self.cls(x.reshape((x.shape[0], -1)))

    def construct(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def _create_rexnet(width_mult: float, pretrained: bool = False, **kwargs) -> nn.Cell:
    return build_model_with_cfg(ReXNetV1, pretrained, default_cfg=default_cfg(first_conv="stem.features.0",
                                                                              classifier="cls.1"),
                                width_mult=width_mult, **kwargs)


@register_model
def rexnet_10(pretrained: bool = False, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> nn.Cell:
    return _create_rexnet(1.0, pretrained, num_classes=num_classes, in_channels=in_channels, **kwargs)


@register_model
def rexnet_13(pretrained: bool = False, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> nn.Cell:
    return _create_rexnet(1.3, pretrained, num_classes=num_classes, in_channels=in_channels, **kwargs)
