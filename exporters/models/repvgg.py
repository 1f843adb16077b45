"""RepVGG (scenario 1: ``stage0`` block, then one sequential cell per stage), MindCV parameter names.

A training-form block sums three branches: 3x3 conv + BN (``rbr_dense``),
1x1 conv + BN (``rbr_1x1``) and, when shapes allow, a BN on the input
(``rbr_identity``). `repvgg_model_convert` re-parameterises every block
into one 3x3 convolution with bias (``rbr_reparam``), the deploy form, on a
classifier or on a ``features_only`` model alike.
"""
from __future__ import annotations

import copy
from typing import Optional

import numpy as np
from mindspore import Tensor, nn, save_checkpoint

from ..helpers import build_model_with_cfg, default_cfg
from ..registry import register_model
from .layers import GlobalAvgPooling, SqueezeExcite

__all__ = ["RepVGG", "RepVGGBlock", "repvgg_model_convert"]


def conv_bn(in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int,
            group: int = 1) -> nn.SequentialCell:
    """Convolution without bias followed by BatchNorm (``.0`` and ``.1`` in parameter names)."""
    return nn.SequentialCell([
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, pad_mode="pad", padding=padding,
                  group=group, has_bias=False),
        nn.BatchNorm2d(out_channels),
    ])


def _fuse_conv_bn(kernel: np.ndarray, bn: nn.BatchNorm2d) -> tuple[np.ndarray, np.ndarray]:
    """Kernel and bias of ``bn(conv(x))`` as one convolution (float64)."""
    gamma = bn.gamma.asnumpy().astype(np.float64)
    beta = bn.beta.asnumpy().astype(np.float64)
    mean = bn.moving_mean.asnumpy().astype(np.float64)
    std = np.sqrt(bn.moving_variance.asnumpy().astype(np.float64) + bn.eps)
    scale = gamma / std
    return kernel * scale.reshape(-1, 1, 1, 1), beta - mean * scale


class RepVGGBlock(nn.Cell):
    """A 3x3 RepVGG block: three parallel branches in training form, one conv in deploy form."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int = 1, dilation: int = 1, group: int = 1, deploy: bool = False,
                 use_se: bool = False) -> None:
        super().__init__()
        if kernel_size != 3 or padding != 1:
            raise ValueError("RepVGGBlock supports only kernel_size=3 with padding=1")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride
        self.dilation = dilation
        self.group = group
        self.deploy = deploy
        self.use_se = use_se
        self.nonlinearity = nn.ReLU()
        if use_se:
            self.se = SqueezeExcite(out_channels, rd_channels=out_channels // 16)
        if deploy:
            self.rbr_reparam = self._reparam_conv()
        else:
            self.rbr_identity = nn.BatchNorm2d(in_channels) if in_channels == out_channels and stride == 1 else None
            self.rbr_dense = conv_bn(in_channels, out_channels, 3, stride, padding, group)
            self.rbr_1x1 = conv_bn(in_channels, out_channels, 1, stride, padding - 1, group)

    def _reparam_conv(self) -> nn.Conv2d:
        return nn.Conv2d(self.in_channels, self.out_channels, 3, stride=self.stride, pad_mode="pad", padding=1,
                         dilation=self.dilation, group=self.group, has_bias=True)

    def construct(self, x: Tensor) -> Tensor:
        if self.deploy:
            out = self.rbr_reparam(x)
        else:
            out = self.rbr_dense(x) + self.rbr_1x1(x)
            if self.rbr_identity is not None:
                out = out + self.rbr_identity(x)
        if self.use_se:
            out = self.se(out)
        return self.nonlinearity(out)

    def get_equivalent_kernel_bias(self) -> tuple[np.ndarray, np.ndarray]:
        """The 3x3 kernel and bias (float64 numpy) equal to the sum of the three branches."""
        kernel, bias = _fuse_conv_bn(self.rbr_dense[0].weight.asnumpy().astype(np.float64), self.rbr_dense[1])
        k1, b1 = _fuse_conv_bn(self.rbr_1x1[0].weight.asnumpy().astype(np.float64), self.rbr_1x1[1])
        kernel = kernel + np.pad(k1, ((0, 0), (0, 0), (1, 1), (1, 1)))
        bias = bias + b1
        if self.rbr_identity is not None:
            input_dim = self.in_channels // self.group
            k_id = np.zeros((self.in_channels, input_dim, 3, 3), dtype=np.float64)
            for i in range(self.in_channels):
                k_id[i, i % input_dim, 1, 1] = 1.0
            k_id, b_id = _fuse_conv_bn(k_id, self.rbr_identity)
            kernel = kernel + k_id
            bias = bias + b_id
        return kernel, bias

    def switch_to_deploy(self) -> None:
        """Replace the three branches by ``rbr_reparam`` in place (no-op if already deployed).

        The new parameters get the block's full names (``stage1.0.rbr_reparam.weight``).
        A cell that was already called must be recompiled: see `repvgg_model_convert`.
        """
        if self.deploy:
            return
        prefix = self.rbr_dense[0].weight.name[: -len("rbr_dense.0.weight")]
        kernel, bias = self.get_equivalent_kernel_bias()
        conv = self._reparam_conv()
        conv.weight.set_data(Tensor(kernel.astype(np.float32)))
        conv.bias.set_data(Tensor(bias.astype(np.float32)))
        del self.rbr_dense
        del self.rbr_1x1
        del self.rbr_identity
        self.rbr_reparam = conv
        conv.weight.name = prefix + "rbr_reparam.weight"
        conv.bias.name = prefix + "rbr_reparam.bias"
        self.deploy = True


class RepVGG(nn.Cell):
    """RepVGG; ``feature_info`` holds ``stage0`` (a single block) and the four stages."""

    def __init__(self, num_blocks: list[int], num_classes: int = 1000, in_channels: int = 3,
                 width_multiplier: Optional[list[float]] = None, override_group_map: Optional[dict] = None,
                 deploy: bool = False, use_se: bool = False) -> None:
        super().__init__()
        if width_multiplier is None or len(width_multiplier) != 4:
            raise ValueError("RepVGG needs four width multipliers")
        self.deploy = deploy
        self.override_group_map = override_group_map or {}
        if 0 in self.override_group_map:
            raise ValueError("stage0 cannot be grouped (override_group_map must not contain 0)")
        self.use_se = use_se
        self.in_planes = min(64, int(64 * width_multiplier[0]))
        self.stage0 = RepVGGBlock(in_channels, self.in_planes, 3, stride=2, padding=1, deploy=deploy, use_se=use_se)
        self.feature_info = [dict(chs=self.in_planes, reduction=2, name="stage0")]
        self.cur_layer_idx = 1
        widths = [int(64 * width_multiplier[0]), int(128 * width_multiplier[1]),
                  int(256 * width_multiplier[2]), int(512 * width_multiplier[3])]
        self.stage1 = self._make_stage(widths[0], num_blocks[0], stride=2)
        self.feature_info.append(dict(chs=widths[0], reduction=4, name="stage1"))
        self.stage2 = self._make_stage(widths[1], num_blocks[1], stride=2)
        self.feature_info.append(dict(chs=widths[1], reduction=8, name="stage2"))
        self.stage3 = self._make_stage(widths[2], num_blocks[2], stride=2)
        self.feature_info.append(dict(chs=widths[2], reduction=16, name="stage3"))
        self.stage4 = self._make_stage(widths[3], num_blocks[3], stride=2)
        self.feature_info.append(dict(chs=widths[3], reduction=32, name="stage4"))
        self.gap = GlobalAvgPooling()
        self.num_features = widths[3]
        self.linear = nn.Dense(widths[3], num_classes)

    def _make_stage(self, planes: int, num_blocks: int, stride: int) -> nn.SequentialCell:
        blocks = []
        for s in [stride] + [1] * (num_blocks - 1):
            group = self.override_group_map.get(self.cur_layer_idx, 1)
            blocks.append(RepVGGBlock(self.in_planes, planes, 3, stride=s, padding=1, group=group,
                                      deploy=self.deploy, use_se=self.use_se))
            self.in_planes = planes
            self.cur_layer_idx += 1
        return nn.SequentialCell(blocks)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.stage0(x)
        x = self.stage1(x)
        x = self.stage2(x)
        x = self.stage3(x)
        return self.stage4(x)

    def forward_head(self, x: Tensor) -> Tensor:
        return self.linear(self.gap(x))

    def construct(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def _forget_compiled_graphs(model: nn.Cell) -> None:
    """Make every cell of ``model`` compile afresh on its next call.

    Graph mode caches a compiled graph per cell instance and input signature;
    after ``switch_to_deploy`` changed the structure, a cached graph would go on
    running the old branches.
    """
    for _, cell in model.cells_and_names():
        cell.compile_cache.clear()


def repvgg_model_convert(model: nn.Cell, save_path: Optional[str] = None, do_copy: bool = True) -> nn.Cell:
    """Re-parameterise every RepVGG block of ``model`` into its deploy form and return the model.

    Works on the classifier and on a ``features_only`` model. With ``do_copy``
    (MindCV's default) ``model`` is left untouched and a converted copy is
    returned; otherwise ``model`` itself is converted, and its compiled graphs
    are dropped so the next call runs the fused convolutions. Outputs equal the
    training form up to float rounding. ``save_path`` writes a deploy checkpoint.
    Convert the cell you call: an outer cell that holds ``model`` and was
    already called keeps its old graph.
    """
    if do_copy:
        model = copy.deepcopy(model)
    for _, cell in model.cells_and_names():
        if isinstance(cell, RepVGGBlock):
            cell.switch_to_deploy()
    _forget_compiled_graphs(model)
    if save_path is not None:
        save_checkpoint(model, save_path)
    return model


def _create_repvgg(pretrained: bool = False, **kwargs) -> nn.Cell:
    return build_model_with_cfg(RepVGG, pretrained,
                                default_cfg=default_cfg(first_conv="stage0.rbr_dense.0", classifier="linear"),
                                **kwargs)


@register_model
def repvgg_a0(pretrained: bool = False, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> nn.Cell:
    return _create_repvgg(pretrained, num_blocks=[2, 4, 14, 1], num_classes=num_classes, in_channels=in_channels,
                          width_multiplier=[0.75, 0.75, 0.75, 2.5], **kwargs)


@register_model
def repvgg_a1(pretrained: bool = False, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> nn.Cell:
    return _create_repvgg(pretrained, num_blocks=[2, 4, 14, 1], num_classes=num_classes, in_channels=in_channels,
                          width_multiplier=[1.0, 1.0, 1.0, 2.5], **kwargs)


@register_model
def repvgg_b0(pretrained: bool = False, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> nn.Cell:
    return _create_repvgg(pretrained, num_blocks=[4, 6, 16, 1], num_classes=num_classes, in_channels=in_channels,
                          width_multiplier=[1.0, 1.0, 1.0, 2.5], **kwargs)
