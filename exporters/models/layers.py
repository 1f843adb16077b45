"""Building blocks that several families share, written so that they export to ONNX.

MindSpore 2.10's ONNX exporter lacks ``HSwish``, ``HSigmoid``, ``Erf`` (exact
GELU), ``Mish`` and ``InplaceAddExt`` (``x += y`` in graph mode, unless
``exporters`` set ``JIT_ENABLE_AUGASSIGN_INPLACE=0`` before the first compile:
``exporters/_mindspore.py``). The cells here compute the same functions from
operators it does export; write ``x = x + y``, not ``x += y``, in a ``construct``.
"""
from __future__ import annotations

from typing import Optional, Type

from mindspore import Tensor, nn, ops

from ..helpers import make_divisible
from ..init import condition_pooled_norm, init_residual_norm


class HSigmoid(nn.Cell):
    """``relu6(x + 3) / 6``, bit-identical to ``nn.HSigmoid`` and exportable."""

    def construct(self, x: Tensor) -> Tensor:
        return ops.clamp(x + 3.0, 0.0, 6.0) / 6.0


class HSwish(nn.Cell):
    """``x * relu6(x + 3) / 6``, bit-identical to ``nn.HSwish`` and exportable."""

    def construct(self, x: Tensor) -> Tensor:
        return x * ops.clamp(x + 3.0, 0.0, 6.0) / 6.0


class Swish(nn.Cell):
    """``x * sigmoid(x)`` (SiLU)."""

    def __init__(self) -> None:
        super().__init__()
        self.sigmoid = nn.Sigmoid()

    def construct(self, x: Tensor) -> Tensor:
        return x * self.sigmoid(x)


class GELU(nn.Cell):
    """The tanh approximation of GELU (exact GELU needs ``Erf``, which does not export)."""

    def __init__(self) -> None:
        super().__init__()
        self.gelu = nn.GELU(approximate=True)

    def construct(self, x: Tensor) -> Tensor:
        return self.gelu(x)


class GlobalAvgPooling(nn.Cell):
    """Mean over H and W."""

    def __init__(self, keep_dims: bool = False) -> None:
        super().__init__()
        self.keep_dims = keep_dims

    def construct(self, x: Tensor) -> Tensor:
        return ops.mean(x, (2, 3), self.keep_dims)


class DropPath(nn.Cell):
    """Stochastic depth; the identity in eval mode, which is all that is exported."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.keep_prob = 1.0 - drop_prob
        self.dropout = nn.Dropout(p=drop_prob) if drop_prob > 0 else None

    def construct(self, x: Tensor) -> Tensor:
        if self.training and self.dropout is not None:
            mask = ops.ones((x.shape[0],) + (1,) * (x.ndim - 1), x.dtype)
            return x * self.dropout(mask)
        return x


class SqueezeExcite(nn.Cell):
    """Squeeze-and-excitation with MindCV's parameter names (``conv_reduce``, ``bn``, ``conv_expand``)."""

    def __init__(
        self,
        in_channels: int,
        rd_ratio: float = 1.0 / 16,
        rd_channels: Optional[int] = None,
        rd_divisor: int = 8,
        norm: bool = False,
        act_layer: Type[nn.Cell] = nn.ReLU,
        gate_layer: Type[nn.Cell] = nn.Sigmoid,
    ) -> None:
        super().__init__()
        self.norm = norm
        self.act = act_layer()
        self.gate = gate_layer()
        if not rd_channels:
            rd_channels = make_divisible(in_channels * rd_ratio, rd_divisor)
        self.conv_reduce = nn.Conv2d(in_channels, rd_channels, 1, has_bias=True)
        if norm:
            self.bn = nn.BatchNorm2d(rd_channels)
        self.conv_expand = nn.Conv2d(rd_channels, in_channels, 1, has_bias=True)
        self.pool = GlobalAvgPooling(keep_dims=True)

    def init_after_calibration(self) -> None:
        """The optional norm sees pooled features: condition it (random weights only)."""
        if self.norm:
            condition_pooled_norm(self.bn)

    def construct(self, x: Tensor) -> Tensor:
        x_se = self.pool(x)
        x_se = self.conv_reduce(x_se)
        if self.norm:
            x_se = self.bn(x_se)
        x_se = self.act(x_se)
        x_se = self.conv_expand(x_se)
        x_se = self.gate(x_se)
        return x * x_se


class FeaturesPoolClassifier(nn.Cell):
    """A classifier laid out as MindCV's MobileNets are: ``features``, then ``pool``, then ``classifier`` (cells
    the subclass builds); ``forward_features`` is what the feature wrapper reads."""

    def forward_features(self, x: Tensor) -> Tensor:
        return self.features(x)

    def forward_head(self, x: Tensor) -> Tensor:
        return self.classifier(self.pool(x))

    def construct(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


class ResidualLayers(nn.Cell):
    """An inverted-residual block: ``layers`` (a cell the subclass builds), added to its input when
    ``use_res_connect``; the last norm of a residual branch starts small (``init_residual_norm``)."""

    def init_extra_weights(self, rng) -> None:  # noqa: ARG002  (deterministic)
        if self.use_res_connect:
            init_residual_norm(self.layers)

    def construct(self, x: Tensor) -> Tensor:
        if self.use_res_connect:
            return x + self.layers(x)
        return self.layers(x)


class Mlp(nn.Cell):
    """``fc1`` -> GELU -> ``fc2`` (MindCV's ``layers.mlp.Mlp``, and swin's): a transformer block's MLP."""

    def __init__(self, in_features: int, hidden_features: int) -> None:
        super().__init__()
        self.fc1 = nn.Dense(in_features, hidden_features, has_bias=True)
        self.act = GELU()
        self.fc2 = nn.Dense(hidden_features, in_features, has_bias=True)

    def construct(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))
