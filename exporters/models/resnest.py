"""ResNeSt (scenario 1: one sequential cell per stage), MindCV parameter names.

Split-attention bottlenecks with a deep stem (``conv1.0`` .. ``conv1.6``),
average-pool downsampling in the shortcut and average-pool stride in the
block (``avd``), as MindCV's ``resnest50``.
"""
from __future__ import annotations

from typing import Optional, Type

from mindspore import Tensor, nn, ops

from ..helpers import build_model_with_cfg, default_cfg, make_divisible
from ..init import condition_pooled_norm, init_residual_norm
from ..registry import register_model
from .layers import GlobalAvgPooling

__all__ = ["ResNeSt", "Bottleneck", "SplitAttn", "RadixSoftmax"]


class RadixSoftmax(nn.Cell):
    """Softmax across the radix splits of each cardinal group (a sigmoid when ``radix == 1``).

    Input ``(B, card * radix * C, 1, 1)`` in ``(card, radix, C)`` channel order;
    output ``(B, radix * card * C)`` in ``(radix, card, C)`` order, as MindCV.
    """

    def __init__(self, radix: int, cardinality: int) -> None:
        super().__init__()
        self.radix = radix
        self.cardinality = cardinality
        self.softmax = ops.Softmax(axis=1)
        self.sigmoid = nn.Sigmoid()

    def construct(self, x: Tensor) -> Tensor:
        batch = x.shape[0]
        if self.radix > 1:
            x = ops.reshape(x, (batch, self.cardinality, self.radix, -1))
            x = self.softmax(ops.transpose(x, (0, 2, 1, 3)))
            return ops.reshape(x, (batch, -1))
        return ops.reshape(self.sigmoid(x), (batch, -1))


class SplitAttn(nn.Cell):
    """Split-attention convolution: ``radix`` grouped conv branches weighted by a radix softmax."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int = 0, dilation: int = 1, group: int = 1, bias: bool = False, radix: int = 2,
                 rd_ratio: float = 0.25, rd_channels: Optional[int] = None, rd_divisor: int = 8,
                 act_layer: Type[nn.Cell] = nn.ReLU, norm_layer: Optional[Type[nn.Cell]] = None) -> None:
        super().__init__()
        out_channels = out_channels or in_channels
        self.radix = radix
        mid_chs = out_channels * radix
        if rd_channels is None:
            attn_chs = make_divisible(in_channels * radix * rd_ratio, divisor=rd_divisor, min_value=32)
        else:
            attn_chs = rd_channels * radix
        padding = kernel_size // 2 if padding is None else padding
        self.conv = nn.Conv2d(in_channels, mid_chs, kernel_size, stride=stride, pad_mode="pad", padding=padding,
                              dilation=dilation, group=group * radix, has_bias=bias)
        self.bn0 = norm_layer(mid_chs) if norm_layer else nn.Identity()
        self.act0 = act_layer()
        self.fc1 = nn.Conv2d(out_channels, attn_chs, 1, group=group, has_bias=True)
        self.bn1 = norm_layer(attn_chs) if norm_layer else nn.Identity()
        self.act1 = act_layer()
        self.fc2 = nn.Conv2d(attn_chs, mid_chs, 1, group=group, has_bias=True)
        self.rsoftmax = RadixSoftmax(radix, group)
        self.pool = GlobalAvgPooling(keep_dims=True)

    def init_after_calibration(self) -> None:
        """Re-centre the attention BatchNorm, which sees globally pooled features (random weights only)."""
        condition_pooled_norm(self.bn1)

    def construct(self, x: Tensor) -> Tensor:
        x = self.act0(self.bn0(self.conv(x)))
        b, rc, h, w = x.shape
        if self.radix > 1:
            x = ops.reshape(x, (b, self.radix, rc // self.radix, h, w))
            x_gap = x.sum(axis=1)
        else:
            x_gap = x
        x_gap = self.act1(self.bn1(self.fc1(self.pool(x_gap))))
        x_attn = self.rsoftmax(self.fc2(x_gap))
        if self.radix > 1:
            out = x * ops.reshape(x_attn, (b, self.radix, rc // self.radix, 1, 1))
            return out.sum(axis=1)
        return x * ops.reshape(x_attn, (b, -1, 1, 1))


class Bottleneck(nn.Cell):
    """ResNeSt bottleneck: 1x1 -> split-attention 3x3 (-> 3x3 average pool if ``avd``) -> 1x1."""

    expansion: int = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Cell] = None,
                 radix: int = 1, cardinality: int = 1, bottleneck_width: int = 64, avd: bool = False,
                 avd_first: bool = False, dilation: int = 1, is_first: bool = False,
                 norm_layer: Optional[Type[nn.Cell]] = None) -> None:
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        group_width = int(planes * (bottleneck_width / 64.0)) * cardinality
        self.conv1 = nn.Conv2d(inplanes, group_width, 1, has_bias=False)
        self.bn1 = norm_layer(group_width)
        self.radix = radix
        self.avd = avd and (stride > 1 or is_first)
        self.avd_first = avd_first
        if self.avd:
            self.avd_layer = nn.AvgPool2d(3, stride, pad_mode="same")
            stride = 1
        if radix >= 1:
            self.conv2 = SplitAttn(group_width, group_width, kernel_size=3, stride=stride, padding=dilation,
                                   dilation=dilation, group=cardinality, bias=False, radix=radix,
                                   norm_layer=norm_layer)
        else:
            self.conv2 = nn.Conv2d(group_width, group_width, 3, stride=stride, pad_mode="pad", padding=dilation,
                                   dilation=dilation, group=cardinality, has_bias=False)
            self.bn2 = norm_layer(group_width)
        self.conv3 = nn.Conv2d(group_width, planes * self.expansion, 1, has_bias=False)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def init_extra_weights(self, rng) -> None:  # noqa: ARG002  (deterministic)
        init_residual_norm(self.bn3)

    def construct(self, x: Tensor) -> Tensor:
        residual = x
        out = self.relu(self.bn1(self.conv1(x)))
        if self.avd and self.avd_first:
            out = self.avd_layer(out)
        out = self.conv2(out)
        if self.radix == 0:
            out = self.relu(self.bn2(out))
        if self.avd and not self.avd_first:
            out = self.avd_layer(out)
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            residual = self.downsample(x)
        out = out + residual
        return self.relu(out)


class ResNeSt(nn.Cell):
    """ResNeSt; ``feature_info`` holds the stem activation and the four stages (as resnet50)."""

    def __init__(self, block: Type[Bottleneck], layers: list[int], radix: int = 1, group: int = 1,
                 bottleneck_width: int = 64, num_classes: int = 1000, in_channels: int = 3,
                 dilated: bool = False, dilation: int = 1, deep_stem: bool = False, stem_width: int = 64,
                 avg_down: bool = False, avd: bool = False, avd_first: bool = False, drop_rate: float = 0.0,
                 norm_layer: Type[nn.Cell] = nn.BatchNorm2d) -> None:
        super().__init__()
        self.cardinality = group
        self.bottleneck_width = bottleneck_width
        self.inplanes = stem_width * 2 if deep_stem else 64
        self.avg_down = avg_down
        self.radix = radix
        self.avd = avd
        self.avd_first = avd_first
        self.norm_layer = norm_layer
        if deep_stem:
            self.conv1 = nn.SequentialCell([
                nn.Conv2d(in_channels, stem_width, 3, stride=2, pad_mode="pad", padding=1, has_bias=False),
                norm_layer(stem_width),
                nn.ReLU(),
                nn.Conv2d(stem_width, stem_width, 3, stride=1, pad_mode="pad", padding=1, has_bias=False),
                norm_layer(stem_width),
                nn.ReLU(),
                nn.Conv2d(stem_width, stem_width * 2, 3, stride=1, pad_mode="pad", padding=1, has_bias=False),
            ])
        else:
            self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, pad_mode="pad", padding=3, has_bias=False)
        self.bn1 = norm_layer(self.inplanes)
        self.relu = nn.ReLU()
        self.feature_info = [dict(chs=self.inplanes, reduction=2, name="relu")]
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, pad_mode="same")

        if dilated or dilation == 4:
            strides, dilations, reductions = (1, 2, 1, 1), (1, 1, 2, 4), (4, 8, 8, 8)
        elif dilation == 2:
            strides, dilations, reductions = (1, 2, 2, 1), (1, 1, 1, 2), (4, 8, 16, 16)
        else:
            strides, dilations, reductions = (1, 2, 2, 2), (1, 1, 1, 1), (4, 8, 16, 32)
        self.layer1 = self._make_layer(block, 64, layers[0], strides[0], dilations[0], is_first=False)
        self.feature_info.append(dict(chs=64 * block.expansion, reduction=reductions[0], name="layer1"))
        self.layer2 = self._make_layer(block, 128, layers[1], strides[1], dilations[1])
        self.feature_info.append(dict(chs=128 * block.expansion, reduction=reductions[1], name="layer2"))
        self.layer3 = self._make_layer(block, 256, layers[2], strides[2], dilations[2])
        self.feature_info.append(dict(chs=256 * block.expansion, reduction=reductions[2], name="layer3"))
        self.layer4 = self._make_layer(block, 512, layers[3], strides[3], dilations[3])
        self.feature_info.append(dict(chs=512 * block.expansion, reduction=reductions[3], name="layer4"))

        self.avgpool = GlobalAvgPooling()
        self.drop = nn.Dropout(p=drop_rate) if drop_rate > 0.0 else None
        self.num_features = 512 * block.expansion
        self.fc = nn.Dense(self.num_features, num_classes)

    def _make_layer(self, block: Type[Bottleneck], planes: int, blocks: int, stride: int = 1, dilation: int = 1,
                    is_first: bool = True) -> nn.SequentialCell:
        norm_layer = self.norm_layer
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            down_layers = []
            if self.avg_down:
                # MindCV pools "valid"; "same" is identical on even sizes and keeps odd
                # sizes in step with the block's own "same" stride (ceil(H / 2)).
                pool = stride if dilation == 1 else 1
                down_layers.append(nn.AvgPool2d(kernel_size=pool, stride=pool, pad_mode="same"))
                down_layers.append(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride=1, has_bias=False))
            else:
                down_layers.append(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride=stride,
                                             has_bias=False))
            down_layers.append(norm_layer(planes * block.expansion))
            downsample = nn.SequentialCell(down_layers)

        if dilation in (1, 2):
            first_dilation = 1
        elif dilation == 4:
            first_dilation = 2
        else:
            raise ValueError(f"ResNeSt supports dilation 1, 2 or 4, got {dilation}")
        common = dict(radix=self.radix, cardinality=self.cardinality, bottleneck_width=self.bottleneck_width,
                      avd=self.avd, avd_first=self.avd_first, norm_layer=norm_layer)
        cells = [block(self.inplanes, planes, stride, downsample=downsample, dilation=first_dilation,
                       is_first=is_first, **common)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            cells.append(block(self.inplanes, planes, dilation=dilation, **common))
        return nn.SequentialCell(cells)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.maxpool(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

    def forward_head(self, x: Tensor) -> Tensor:
        x = self.avgpool(x)
        if self.drop is not None:
            x = self.drop(x)
        return self.fc(x)

    def construct(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def _create_resnest(pretrained: bool = False, **kwargs) -> nn.Cell:
    return build_model_with_cfg(ResNeSt, pretrained, default_cfg=default_cfg(first_conv="conv1.0", classifier="fc"),
                                **kwargs)


@register_model
def resnest50(pretrained: bool = False, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> nn.Cell:
    return _create_resnest(pretrained, block=Bottleneck, layers=[3, 4, 6, 3], radix=2, group=1,
                           bottleneck_width=64, num_classes=num_classes, in_channels=in_channels,
                           deep_stem=True, stem_width=32, avg_down=True, avd=True, avd_first=False, **kwargs)
