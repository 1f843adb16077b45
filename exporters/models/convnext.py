"""ConvNeXt (scenario 2: one sequential cell ``feature`` holding every layer), MindCV parameter names.

``feature`` alternates downsampling layers (even indices; ``feature.0`` is the
stem) and stages (odd indices); the levels are the four stage outputs
``feature.1``, ``feature.3``, ``feature.5`` and ``feature.7``.

Deviations from MindCV, both for the export:

* GELU is the tanh approximation (``layers.GELU``): exact GELU needs ``Erf``,
  which MindSpore's ONNX exporter lacks. With MindCV weights the outputs differ
  slightly from MindCV's.
* The layer scales ``gamma_`` start at 0.1-0.5 in the random-init model
  (``Block.init_extra_weights``) instead of MindCV's 1e-6, so that every block
  really contributes to the features. A checkpoint overrides them.

LayerNorm is ``nn.LayerNorm`` over the last axis, as in MindCV (channels-first
norms transpose to channels-last and back); the exporter decomposes it into
ReduceMean/Sub/Sqrt/Div arithmetic, since opset 11 has no LayerNormalization.
"""
from __future__ import annotations

import numpy as np
from mindspore import Parameter, Tensor, nn, ops

from ..helpers import build_model_with_cfg, default_cfg
from ..registry import register_model
from .layers import GELU, DropPath

__all__ = ["ConvNeXt", "ConvNextLayerNorm", "Block"]

LAYER_SCALE_INIT_RANGE = (0.1, 0.5)  # random-init layer scales; MindCV starts at 1e-6


class ConvNextLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels, for channels-last input (``norm_axis=-1``) or NCHW (``norm_axis=1``)."""

    def __init__(self, normalized_shape: tuple[int, ...], epsilon: float, norm_axis: int = -1) -> None:
        super().__init__(normalized_shape=normalized_shape, epsilon=epsilon)
        if norm_axis not in (-1, 1):
            raise ValueError(f"norm_axis must be 1 or -1, got {norm_axis}")
        self.norm_axis = norm_axis

    def construct(self, x: Tensor) -> Tensor:
        if self.norm_axis == -1:
            y, _, _ = self.layer_norm(x, self.gamma, self.beta)
            return y
        x = ops.transpose(x, (0, 2, 3, 1))
        y, _, _ = self.layer_norm(x, self.gamma, self.beta)
        return ops.transpose(y, (0, 3, 1, 2))


class Block(nn.Cell):
    """Depthwise 7x7 conv -> LayerNorm -> Dense(4x) -> GELU -> Dense -> layer scale, plus the residual."""

    def __init__(self, dim: int, drop_path: float = 0.0, layer_scale_init_value: float = 1e-6) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, group=dim, has_bias=True)
        self.norm = ConvNextLayerNorm((dim,), epsilon=1e-6)
        self.pwconv1 = nn.Dense(dim, 4 * dim)
        self.act = GELU()
        self.pwconv2 = nn.Dense(4 * dim, dim)
        if layer_scale_init_value > 0:
            self.gamma_ = Parameter(Tensor(np.full((dim,), layer_scale_init_value, dtype=np.float32)), name="gamma_")
        else:
            self.gamma_ = None
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def init_extra_weights(self, rng: np.random.Generator) -> None:
        """Random-init layer scales of 0.1-0.5, so that the block's branch is not negligible."""
        if self.gamma_ is not None:
            low, high = LAYER_SCALE_INIT_RANGE
            self.gamma_.set_data(Tensor(rng.uniform(low, high, size=self.gamma_.shape).astype(np.float32)))

    def construct(self, x: Tensor) -> Tensor:
        shortcut = x
        x = self.dwconv(x)
        x = ops.transpose(x, (0, 2, 3, 1))
        x = self.norm(x)
        x = self.pwconv1(x)
        x = self.act(x)
        x = self.pwconv2(x)
        if self.gamma_ is not None:
            x = self.gamma_ * x
        x = ops.transpose(x, (0, 3, 1, 2))
        return shortcut + self.drop_path(x)


class ConvNeXt(nn.Cell):
    """ConvNeXt; ``feature_info`` holds the four stage outputs ``feature.1/3/5/7``."""

    def __init__(self, in_channels: int, num_classes: int, depths: list[int], dims: list[int],
                 drop_path_rate: float = 0.0, layer_scale_init_value: float = 1e-6) -> None:
        super().__init__()
        self.flatten_sequential = True
        self.feature_info = []
        downsample_layers = [nn.SequentialCell(
            nn.Conv2d(in_channels, dims[0], kernel_size=4, stride=4, has_bias=True),
            ConvNextLayerNorm((dims[0],), epsilon=1e-6, norm_axis=1),
        )]
        for i in range(3):
            downsample_layers.append(nn.SequentialCell(
                ConvNextLayerNorm((dims[i],), epsilon=1e-6, norm_axis=1),
                nn.Conv2d(dims[i], dims[i + 1], kernel_size=2, stride=2, has_bias=True),
            ))
        dp_rates = np.linspace(0.0, drop_path_rate, sum(depths)).tolist()
        layers = []
        cur = 0
        for i in range(4):
            layers.append(downsample_layers[i])
            layers.append(nn.SequentialCell([
                Block(dims[i], drop_path=dp_rates[cur + j], layer_scale_init_value=layer_scale_init_value)
                for j in range(depths[i])
            ]))
            cur += depths[i]
            reduction = 4 * 2 ** i
            self.feature_info.append(dict(chs=dims[i], reduction=reduction, name=f"feature.{2 * i + 1}"))
        self.feature = nn.SequentialCell(layers)
        self.norm = ConvNextLayerNorm((dims[-1],), epsilon=1e-6)
        self.num_features = dims[-1]
        self.classifier = nn.Dense(dims[-1], num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.feature(x)
        return self.norm(ops.mean(x, (2, 3)))

    def forward_head(self, x: Tensor) -> Tensor:
        return self.classifier(x)

    def construct(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def _create_convnext(pretrained: bool = False, **kwargs) -> nn.Cell:
    return build_model_with_cfg(ConvNeXt, pretrained,
                                default_cfg=default_cfg(first_conv="feature.0.0", classifier="classifier"), **kwargs)


@register_model
def convnext_tiny(pretrained: bool = False, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> nn.Cell:
    return _create_convnext(pretrained, depths=[3, 3, 9, 3], dims=[96, 192, 384, 768], num_classes=num_classes,
                            in_channels=in_channels, **kwargs)


@register_model
def convnext_small(pretrained: bool = False, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> nn.Cell:
    return _create_convnext(pretrained, depths=[3, 3, 27, 3], dims=[96, 192, 384, 768], num_classes=num_classes,
                            in_channels=in_channels, **kwargs)
