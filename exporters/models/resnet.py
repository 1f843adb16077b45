"""ResNet (scenario 1: one sequential cell per stage), MindCV parameter names."""
from __future__ import annotations

from typing import Optional, Type, Union

from mindspore import Tensor, nn

from ..helpers import build_model_with_cfg, default_cfg
from ..init import init_residual_norm
from ..registry import register_model
from .layers import GlobalAvgPooling

__all__ = ["ResNet", "BasicBlock", "Bottleneck"]


class BasicBlock(nn.Cell):
    """Two 3x3 convolutions with a residual connection."""

    expansion: int = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1, groups: int = 1, base_width: int = 64,
                 norm: Optional[Type[nn.Cell]] = None, down_sample: Optional[nn.Cell] = None) -> None:
        super().__init__()
        norm = norm or nn.BatchNorm2d
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock supports only groups=1 and base_width=64")
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, pad_mode="pad")
        self.bn1 = norm(channels)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=1, padding=1, pad_mode="pad")
        self.bn2 = norm(channels)
        self.down_sample = down_sample

    def init_extra_weights(self, rng) -> None:  # noqa: ARG002  (deterministic)
        init_residual_norm(self.bn2)

    def construct(self, x: Tensor) -> Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.down_sample is not None:
            identity = self.down_sample(x)
        out = out + identity
        return self.relu(out)


class Bottleneck(nn.Cell):
    """1x1 -> 3x3 (strided, as torchvision) -> 1x1 with a residual connection."""

    expansion: int = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1, groups: int = 1, base_width: int = 64,
                 norm: Optional[Type[nn.Cell]] = None, down_sample: Optional[nn.Cell] = None) -> None:
        super().__init__()
        norm = norm or nn.BatchNorm2d
        width = int(channels * (base_width / 64.0)) * groups
        self.conv1 = nn.Conv2d(in_channels, width, 1, stride=1)
        self.bn1 = norm(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, pad_mode="pad", group=groups)
        self.bn2 = norm(width)
        self.conv3 = nn.Conv2d(width, channels * self.expansion, 1, stride=1)
        self.bn3 = norm(channels * self.expansion)
        self.relu = nn.ReLU()
        self.down_sample = down_sample

    def init_extra_weights(self, rng) -> None:  # noqa: ARG002  (deterministic)
        init_residual_norm(self.bn3)

    def construct(self, x: Tensor) -> Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.down_sample is not None:
            identity = self.down_sample(x)
        out = out + identity
        return self.relu(out)


class ResNet(nn.Cell):
    """ResNet; ``feature_info`` holds the stem activation and the four stages."""

    def __init__(self, block: Type[Union[BasicBlock, Bottleneck]], layers: list[int], num_classes: int = 1000,
                 in_channels: int = 3, groups: int = 1, base_width: int = 64,
                 norm: Optional[Type[nn.Cell]] = None) -> None:
        super().__init__()
        self.norm = norm or nn.BatchNorm2d
        self.input_channels = 64
        self.groups = groups
        self.base_width = base_width
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, pad_mode="pad", padding=3)
        self.bn1 = self.norm(64)
        self.relu = nn.ReLU()
        self.feature_info = [dict(chs=64, reduction=2, name="relu")]
        self.max_pool = nn.MaxPool2d(kernel_size=3, stride=2, pad_mode="same")
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.feature_info.append(dict(chs=64 * block.expansion, reduction=4, name="layer1"))
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.feature_info.append(dict(chs=128 * block.expansion, reduction=8, name="layer2"))
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.feature_info.append(dict(chs=256 * block.expansion, reduction=16, name="layer3"))
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.feature_info.append(dict(chs=512 * block.expansion, reduction=32, name="layer4"))
        self.pool = GlobalAvgPooling()
        self.num_features = 512 * block.expansion
        self.classifier = nn.Dense(self.num_features, num_classes)

    def _make_layer(self, block, channels: int, block_nums: int, stride: int = 1) -> nn.SequentialCell:
        down_sample = None
        if stride != 1 or self.input_channels != channels * block.expansion:
            down_sample = nn.SequentialCell([
                nn.Conv2d(self.input_channels, channels * block.expansion, 1, stride=stride),
                self.norm(channels * block.expansion),
            ])
        blocks = [block(self.input_channels, channels, stride=stride, down_sample=down_sample,
                        groups=self.groups, base_width=self.base_width, norm=self.norm)]
        self.input_channels = channels * block.expansion
        for _ in range(1, block_nums):
            blocks.append(block(self.input_channels, channels, groups=self.groups,
                                base_width=self.base_width, norm=self.norm))
        return nn.SequentialCell(blocks)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.max_pool(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

    def forward_head(self, x: Tensor) -> Tensor:
        return self.classifier(self.pool(x))

    def construct(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def _create_resnet(pretrained: bool = False, **kwargs) -> nn.Cell:
    return build_model_with_cfg(ResNet, pretrained, default_cfg=default_cfg(first_conv="conv1", classifier="classifier"),
                                **kwargs)


@register_model
def resnet18(pretrained: bool = False, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> nn.Cell:
    return _create_resnet(pretrained, block=BasicBlock, layers=[2, 2, 2, 2], num_classes=num_classes,
                          in_channels=in_channels, **kwargs)


@register_model
def resnet34(pretrained: bool = False, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> nn.Cell:
    return _create_resnet(pretrained, block=BasicBlock, layers=[3, 4, 6, 3], num_classes=num_classes,
                          in_channels=in_channels, **kwargs)


@register_model
def resnet50(pretrained: bool = False, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> nn.Cell:
    return _create_resnet(pretrained, block=Bottleneck, layers=[3, 4, 6, 3], num_classes=num_classes,
                          in_channels=in_channels, **kwargs)


@register_model
def resnet101(pretrained: bool = False, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> nn.Cell:
    return _create_resnet(pretrained, block=Bottleneck, layers=[3, 4, 23, 3], num_classes=num_classes,
                          in_channels=in_channels, **kwargs)


@register_model
def resnet152(pretrained: bool = False, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> nn.Cell:
    return _create_resnet(pretrained, block=Bottleneck, layers=[3, 8, 36, 3], num_classes=num_classes,
                          in_channels=in_channels, **kwargs)
