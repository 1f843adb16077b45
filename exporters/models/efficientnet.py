"""EfficientNet B0/B1 (scenario 2: every layer in one ``features`` sequential cell), MindCV parameter names.

``features`` holds the stem (conv, bn, Swish as three cells), one sequential
cell of ``MBConv`` blocks per stage, then the head 1x1 conv, bn and Swish; the
feature levels are the stem activation, every stage and the head activation.
"""
from __future__ import annotations

import copy
import math
from functools import partial
from typing import Callable, Optional

from mindspore import Tensor, nn

from ..helpers import build_model_with_cfg, default_cfg, make_divisible
from ..init import init_residual_norm
from ..registry import register_model
from .layers import DropPath, GlobalAvgPooling, SqueezeExcite, Swish

__all__ = ["EfficientNet", "MBConv", "MBConvConfig"]


class MBConvConfig:
    """One stage of MBConv blocks, with width and depth multipliers applied."""

    def __init__(self, expand_ratio: float, kernel_size: int, stride: int, in_chs: int, out_chs: int,
                 num_layers: int, width_cnf: float = 1.0, depth_cnf: float = 1.0) -> None:
        self.expand_ratio = expand_ratio
        self.kernel_size = kernel_size
        self.stride = stride
        self.input_channels = self.adjust_channels(in_chs, width_cnf)
        self.out_channels = self.adjust_channels(out_chs, width_cnf)
        self.num_layers = int(math.ceil(num_layers * depth_cnf))

    @staticmethod
    def adjust_channels(channels: int, width_cnf: float, min_value: Optional[int] = None) -> int:
        return make_divisible(channels * width_cnf, 8, min_value)


class MBConv(nn.Cell):
    """Inverted residual with squeeze-excite; the residual branch goes through drop-path (identity in eval)."""

    def __init__(self, cnf: MBConvConfig, drop_path_prob: float = 0.2, norm: Callable[[int], nn.Cell] = nn.BatchNorm2d,
                 se_layer: Callable[..., nn.Cell] = SqueezeExcite) -> None:
        super().__init__()
        self.shortcut = cnf.stride == 1 and cnf.input_channels == cnf.out_channels
        expanded = cnf.adjust_channels(cnf.input_channels, cnf.expand_ratio)
        layers = []
        if expanded != cnf.input_channels:
            layers += [nn.Conv2d(cnf.input_channels, expanded, kernel_size=1), norm(expanded), Swish()]
        layers += [
            nn.Conv2d(expanded, expanded, kernel_size=cnf.kernel_size, stride=cnf.stride, group=expanded),
            norm(expanded),
            Swish(),
            se_layer(in_channels=expanded, rd_channels=max(1, cnf.input_channels // 4), act_layer=Swish),
            nn.Conv2d(expanded, cnf.out_channels, kernel_size=1),
            norm(cnf.out_channels),
        ]
        self.block = nn.SequentialCell(layers)
        self.dropout = DropPath(drop_path_prob)
        self.out_channels = cnf.out_channels

    def init_extra_weights(self, rng) -> None:  # noqa: ARG002  (deterministic)
        if self.shortcut:
            init_residual_norm(self.block)

    def construct(self, x: Tensor) -> Tensor:
        result = self.block(x)
        if self.shortcut:
            result = self.dropout(result)
            result = result + x
        return result


# expand ratio, kernel, stride, in channels, out channels, blocks (before depth scaling)
_B_STAGES = [
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
]


class EfficientNet(nn.Cell):
    """EfficientNet-B*; ``feature_info`` holds the stem activation, every stage and the head activation."""

    def __init__(self, arch: str, dropout_rate: float, width_mult: float = 1.0, depth_mult: float = 1.0,
                 in_channels: int = 3, num_classes: int = 1000, drop_path_prob: float = 0.2) -> None:
        super().__init__()
        if not arch.startswith("efficientnet_b"):
            raise ValueError(f"only the efficientnet_b* architectures are implemented, got {arch!r}")
        bn_args = dict(eps=0.001, momentum=0.99) if width_mult >= 1.6 else {}
        norm_layer = partial(nn.BatchNorm2d, **bn_args)
        settings = [MBConvConfig(*row, width_cnf=width_mult, depth_cnf=depth_mult) for row in _B_STAGES]

        stem_channels = settings[0].input_channels
        layers = [nn.Conv2d(in_channels, stem_channels, kernel_size=3, stride=2), norm_layer(stem_channels), Swish()]
        reduction = 2
        self.feature_info = [dict(chs=stem_channels, reduction=reduction, name=f"features.{len(layers) - 1}")]

        total_blocks = sum(cnf.num_layers for cnf in settings)
        block_id = 0
        for cnf in settings:
            stage = []
            for _ in range(cnf.num_layers):
                block_cnf = copy.copy(cnf)
                if stage:  # only the first block of a stage changes width or resolution
                    block_cnf.input_channels = block_cnf.out_channels
                    block_cnf.stride = 1
                reduction *= block_cnf.stride
                stage.append(MBConv(block_cnf, drop_path_prob * block_id / total_blocks, norm_layer))
                block_id += 1
            layers.append(nn.SequentialCell(stage))
            self.feature_info.append(dict(chs=cnf.out_channels, reduction=reduction,
                                          name=f"features.{len(layers) - 1}"))

        head_in = settings[-1].out_channels
        head_channels = 4 * head_in
        layers += [nn.Conv2d(head_in, head_channels, kernel_size=1), norm_layer(head_channels), Swish()]
        self.feature_info.append(dict(chs=head_channels, reduction=reduction, name=f"features.{len(layers) - 1}"))
        self.flatten_sequential = True

        self.features = nn.SequentialCell(layers)
        self.avgpool = GlobalAvgPooling()
        self.dropout = nn.Dropout(p=dropout_rate)
        self.num_features = head_channels
        self.mlp_head = nn.Dense(head_channels, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        return self.dropout(x)

    def forward_head(self, x: Tensor) -> Tensor:
        return self.mlp_head(x)

    def construct(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def _create_efficientnet(arch: str, width_mult: float, depth_mult: float, dropout: float, pretrained: bool = False,
                         **kwargs) -> nn.Cell:
    return build_model_with_cfg(EfficientNet, pretrained, default_cfg=default_cfg(first_conv="features.0",
                                                                                  classifier="mlp_head"),
                                arch=arch, dropout_rate=dropout, width_mult=width_mult, depth_mult=depth_mult,
                                **kwargs)


@register_model
def efficientnet_b0(pretrained: bool = False, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> nn.Cell:
    return _create_efficientnet("efficientnet_b0", 1.0, 1.0, 0.2, pretrained, num_classes=num_classes,
                                in_channels=in_channels, **kwargs)


@register_model
def efficientnet_b1(pretrained: bool = False, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> nn.Cell:
    return _create_efficientnet("efficientnet_b1", 1.0, 1.1, 0.2, pretrained, num_classes=num_classes,
                                in_channels=in_channels, **kwargs)
