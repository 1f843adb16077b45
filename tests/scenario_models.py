"""The three scenario dummies of the how-to, as small real MindSpore models.

1. ``DummyS1``: one sequential cell per layer (``stem``, ``layer1``, ``layer2``).
2. ``DummyS2``: one sequential ``features`` holding all layers, ``flatten_sequential = True``.
3. ``DummyS3``: two parallel branches fused; a rewritten feature class
   (``is_rewritten = True``) returns both levels.
"""
from __future__ import annotations

from mindspore import Tensor, nn, ops


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.SequentialCell:
    return nn.SequentialCell([
        nn.Conv2d(cin, cout, 3, stride=stride, pad_mode="pad", padding=1),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
    ])


class DummyS1(nn.Cell):
    def __init__(self, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = conv_bn_relu(in_channels, 8, 2)
        self.feature_info = [dict(chs=8, reduction=2, name="stem")]
        self.layer1 = nn.SequentialCell([conv_bn_relu(8, 16, 2), conv_bn_relu(16, 16)])
        self.feature_info.append(dict(chs=16, reduction=4, name="layer1"))
        self.layer2 = nn.SequentialCell([conv_bn_relu(16, 32, 2)])
        self.feature_info.append(dict(chs=32, reduction=8, name="layer2"))
        self.pool = ops.ReduceMean(keep_dims=False)
        self.classifier = nn.Dense(32, num_classes)

    def construct(self, x: Tensor) -> Tensor:
        x = self.layer2(self.layer1(self.stem(x)))
        return self.classifier(self.pool(x, (2, 3)))


class DummyS2(nn.Cell):
    def __init__(self, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.flatten_sequential = True
        layers = [conv_bn_relu(in_channels, 8, 2)]
        self.feature_info = [dict(chs=8, reduction=2, name="features.0")]
        layers.append(conv_bn_relu(8, 16, 2))
        layers.append(conv_bn_relu(16, 16))
        self.feature_info.append(dict(chs=16, reduction=4, name="features.2"))
        layers.append(conv_bn_relu(16, 32, 2))
        self.feature_info.append(dict(chs=32, reduction=8, name="features.3"))
        self.features = nn.SequentialCell(layers)
        self.pool = ops.ReduceMean(keep_dims=False)
        self.classifier = nn.Dense(32, num_classes)

    def construct(self, x: Tensor) -> Tensor:
        return self.classifier(self.pool(self.features(x), (2, 3)))


class DummyS3(nn.Cell):
    """Two branches at strides 2 and 4; the deeper level fuses both."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = conv_bn_relu(in_channels, 8, 2)
        self.branch_a = conv_bn_relu(8, 8)
        self.branch_b = conv_bn_relu(8, 16, 2)
        self.fuse = conv_bn_relu(8, 16, 2)
        self.pool = ops.ReduceMean(keep_dims=False)
        self.classifier = nn.Dense(16, num_classes)

    def forward_levels(self, x: Tensor) -> tuple:
        x = self.stem(x)
        a = self.branch_a(x)
        b = self.branch_b(x) + self.fuse(a)
        return a, b

    def construct(self, x: Tensor) -> Tensor:
        _, b = self.forward_levels(x)
        return self.classifier(self.pool(b, (2, 3)))


class DummyS3Features(DummyS3):
    """The rewritten feature class: returns every level in feature_info order."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.is_rewritten = True
        self.feature_info = [dict(chs=8, reduction=2, name="branch_a"), dict(chs=16, reduction=4, name="fused")]

    def construct(self, x: Tensor) -> tuple:
        return self.forward_levels(x)
