"""HRNet (scenario 3: a rewritten feature class), MindCV parameter names.

``features_only`` builds `HRNetFeatures`, whose ``construct`` returns
the stem activation (``stem``, 64 channels at stride 2) and the outputs of the
four incremental modules (``stage1``..``stage4``: 128, 256, 512 and 1024
channels at strides 4 to 32), whatever the width. The names are MindCV's level
names, not cell names: ``stage2``..``stage4`` are also the classifier's
HRModule stages, whose outputs precede the incremental modules.

``HRNetFeatures`` has the classifier's parameters up to ``incre_modules`` and
none of its head, so a classifier checkpoint loads with the head reported
unused. Its random weights equal the classifier's for the same seed: the
head is created last, so the weights before it draw the same numbers, and the
BatchNorm calibration batch comes from its own random stream.

Unlike MindCV, every computation stays float32 (no float16 upsampling branch),
and ``HRModule`` passes tuples, not lists, between stages.
"""
from __future__ import annotations

from typing import Any, Type, Union

from mindspore import Tensor, nn, ops

from ..features import HeadlessFeatures, levels_view
from ..helpers import build_model_with_cfg, default_cfg
from ..registry import register_model
from .layers import GlobalAvgPooling
from .resnet import BasicBlock, Bottleneck

__all__ = ["HRNet", "HRNetFeatures", "HRModule"]

HEAD_CHANNELS = (32, 64, 128, 256)  # incremental-module widths; times Bottleneck.expansion: 128..1024
HEAD_FEATURES = 2048

Block = Type[Union[BasicBlock, Bottleneck]]


def _conv_bn(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
             relu: bool = False) -> nn.SequentialCell:
    """Conv (MindCV's padding: 1 for 3x3, none for 1x1) -> BatchNorm [-> ReLU]."""
    padding = kernel_size // 2
    cells = [
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                  pad_mode="pad" if padding else "same"),
        nn.BatchNorm2d(out_channels),
    ]
    if relu:
        cells.append(nn.ReLU())
    return nn.SequentialCell(cells)


def _make_layer(block: Block, in_channels: int, channels: int, blocks: int, stride: int = 1) -> nn.SequentialCell:
    down_sample = None
    if stride != 1 or in_channels != channels * block.expansion:
        down_sample = _conv_bn(in_channels, channels * block.expansion, 1, stride=stride)
    layers = [block(in_channels, channels, stride, down_sample=down_sample)]
    for _ in range(1, blocks):
        layers.append(block(channels * block.expansion, channels))
    return nn.SequentialCell(layers)


def _make_classifier_head(num_classes: int) -> tuple[nn.CellList, nn.SequentialCell, nn.Dense]:
    """The classifier's ``downsample_modules``, ``final_layer`` and ``classifier``."""
    widths = [c * Bottleneck.expansion for c in HEAD_CHANNELS]
    downsample_modules = nn.CellList([
        _conv_bn(widths[i], widths[i + 1], 3, stride=2, relu=True) for i in range(len(widths) - 1)
    ])
    final_layer = _conv_bn(widths[-1], HEAD_FEATURES, 1, relu=True)
    return downsample_modules, final_layer, nn.Dense(HEAD_FEATURES, num_classes)


class HRModule(nn.Cell):
    """Parallel branches of blocks, then every output fuses every branch (tuple in, tuple out)."""

    def __init__(self, num_branches: int, block: Block, num_blocks: list[int], num_inchannels: list[int],
                 num_channels: list[int], multi_scale_output: bool = True) -> None:
        super().__init__()
        if not num_branches == len(num_blocks) == len(num_inchannels) == len(num_channels):
            raise ValueError(f"HRModule: {num_branches} branches but num_blocks={num_blocks}, "
                             f"num_inchannels={num_inchannels}, num_channels={num_channels}")
        self.num_branches = num_branches
        self.num_inchannels = list(num_inchannels)
        branches = []
        for i in range(num_branches):
            branches.append(_make_layer(block, self.num_inchannels[i], num_channels[i], num_blocks[i]))
            self.num_inchannels[i] = num_channels[i] * block.expansion
        self.branches = nn.CellList(branches)
        self.num_outputs = num_branches if multi_scale_output else 1
        self.fuse_layers = self._make_fuse_layers() if num_branches > 1 else None
        self.relu = nn.ReLU()

    def _make_fuse_layers(self) -> nn.CellList:
        chs = self.num_inchannels
        fuse_layers = []
        for i in range(self.num_outputs):
            fuse_layer = []
            for j in range(self.num_branches):
                if j > i:  # deeper branch: 1x1 conv to this width, upsampled in construct
                    fuse_layer.append(_conv_bn(chs[j], chs[i], 1))
                elif j == i:
                    fuse_layer.append(nn.Identity())
                else:  # shallower branch: i - j strided 3x3 convs, the last one without ReLU
                    steps = [_conv_bn(chs[j], chs[j], 3, stride=2, relu=True) for _ in range(i - j - 1)]
                    steps.append(_conv_bn(chs[j], chs[i], 3, stride=2))
                    fuse_layer.append(nn.SequentialCell(steps))
            fuse_layers.append(nn.CellList(fuse_layer))
        return nn.CellList(fuse_layers)

    def construct(self, x: tuple) -> tuple:
        if self.num_branches == 1:
            return (self.branches[0](x[0]),)
        xs = ()
        for i in range(self.num_branches):
            xs = xs + (self.branches[i](x[i]),)
        out = ()
        for i in range(self.num_outputs):
            y = xs[0] if i == 0 else self.fuse_layers[i][0](xs[0])
            for j in range(1, self.num_branches):
                if i == j:
                    y = y + xs[j]
                elif j > i:
                    _, _, height, width = xs[i].shape
                    t = self.fuse_layers[i][j](xs[j])
                    y = y + ops.ResizeNearestNeighbor((height, width))(t)
                else:
                    y = y + self.fuse_layers[i][j](xs[j])
            out = out + (self.relu(y),)
        return out


class HRNet(nn.Cell):
    """HRNet classifier. ``stage_cfg`` holds ``stage1``..``stage4`` dicts
    (``num_modules``, ``num_branches``, ``block``, ``num_blocks``, ``num_channels``)."""

    blocks_dict = {"BASIC": BasicBlock, "BOTTLENECK": Bottleneck}

    def __init__(self, stage_cfg: dict[str, dict[str, Any]], num_classes: int = 1000, in_channels: int = 3) -> None:
        super().__init__()
        self.stage_cfg = stage_cfg
        self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=2, padding=1, pad_mode="pad")
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, 3, stride=2, padding=1, pad_mode="pad")
        self.bn2 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()

        cfg = stage_cfg["stage1"]
        block = self.blocks_dict[cfg["block"]]
        self.layer1 = _make_layer(block, 64, cfg["num_channels"][0], cfg["num_blocks"][0])
        pre_stage_channels = [cfg["num_channels"][0] * block.expansion]

        self.transition1, self.transition1_flags = self._make_transition_layer(pre_stage_channels, "stage2")
        self.stage2, pre_stage_channels = self._make_stage("stage2")
        self.transition2, self.transition2_flags = self._make_transition_layer(pre_stage_channels, "stage3")
        self.stage3, pre_stage_channels = self._make_stage("stage3")
        self.transition3, self.transition3_flags = self._make_transition_layer(pre_stage_channels, "stage4")
        self.stage4, pre_stage_channels = self._make_stage("stage4")
        self.num_branches = (stage_cfg["stage2"]["num_branches"], stage_cfg["stage3"]["num_branches"],
                             stage_cfg["stage4"]["num_branches"])

        self.pool = GlobalAvgPooling()
        self.incre_modules = nn.CellList([
            _make_layer(Bottleneck, chs, HEAD_CHANNELS[i], 1) for i, chs in enumerate(pre_stage_channels)
        ])
        self._make_head(num_classes)

    def _make_head(self, num_classes: int) -> None:
        self.downsample_modules, self.final_layer, self.classifier = _make_classifier_head(num_classes)
        self.num_features = HEAD_FEATURES

    def _stage_channels(self, stage: str) -> list[int]:
        cfg = self.stage_cfg[stage]
        return [c * self.blocks_dict[cfg["block"]].expansion for c in cfg["num_channels"]]

    def _make_transition_layer(self, pre: list[int], stage: str) -> tuple[nn.CellList, tuple[bool, ...]]:
        cur = self._stage_channels(stage)
        layers, flags = [], []
        for i, chs in enumerate(cur):
            if i < len(pre):
                if chs != pre[i]:
                    layers.append(_conv_bn(pre[i], chs, 3, relu=True))
                    flags.append(True)
                else:
                    layers.append(nn.Identity())
                    flags.append(False)
            else:  # a new, coarser branch from the coarsest existing one
                steps = [_conv_bn(pre[-1], chs if k == i - len(pre) else pre[-1], 3, stride=2, relu=True)
                         for k in range(i + 1 - len(pre))]
                layers.append(nn.SequentialCell(steps))
                flags.append(True)
        return nn.CellList(layers), tuple(flags)

    def _make_stage(self, stage: str) -> tuple[nn.SequentialCell, list[int]]:
        cfg = self.stage_cfg[stage]
        block = self.blocks_dict[cfg["block"]]
        num_inchannels = self._stage_channels(stage)
        modules = []
        for _ in range(cfg["num_modules"]):
            modules.append(HRModule(cfg["num_branches"], block, cfg["num_blocks"], num_inchannels,
                                    cfg["num_channels"]))
            num_inchannels = modules[-1].num_inchannels
        return nn.SequentialCell(modules), num_inchannels

    def _transition(self, transition: nn.CellList, flags: tuple, num_branches: int, ys: tuple) -> tuple:
        xs = ()
        for i in range(num_branches):
            if i < len(ys):
                xs = xs + ((transition[i](ys[i]) if flags[i] else ys[i]),)
            else:
                xs = xs + (transition[i](ys[-1]),)
        return xs

    def forward_stem(self, x: Tensor) -> Tensor:
        """The stem activation at stride 2 (the ``stem`` level)."""
        return self.relu(self.bn1(self.conv1(x)))

    def forward_stages(self, x: Tensor) -> tuple:
        """Stem activation -> the tuple of stage-4 branch outputs, strides 4 to 32."""
        x = self.relu(self.bn2(self.conv2(x)))
        ys = (self.layer1(x),)
        ys = self.stage2(self._transition(self.transition1, self.transition1_flags, self.num_branches[0], ys))
        ys = self.stage3(self._transition(self.transition2, self.transition2_flags, self.num_branches[1], ys))
        return self.stage4(self._transition(self.transition3, self.transition3_flags, self.num_branches[2], ys))

    def forward_features(self, x: Tensor) -> tuple:
        return self.forward_stages(self.forward_stem(x))

    def forward_head(self, ys: tuple) -> Tensor:
        y = self.incre_modules[0](ys[0])
        for i in range(len(self.downsample_modules)):
            y = self.incre_modules[i + 1](ys[i + 1]) + self.downsample_modules[i](y)
        y = self.final_layer(y)
        return self.classifier(self.pool(y))

    def construct(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def feature_view(self) -> nn.Cell:
        """The levels of `HRNetFeatures`, computed by this classifier's own cells (its head unused):
        what ``create_model(..., features_only=True)`` returns for the same weights, without building the
        network a second time. The export's reference runs use it."""
        return levels_view(self, _feature_info())

    def forward_levels(self, x: Tensor) -> tuple:
        """The stem activation and the four incremental-module outputs."""
        stem = self.forward_stem(x)
        ys = self.forward_stages(stem)
        out = (stem,)
        for i in range(len(self.incre_modules)):
            out = out + (self.incre_modules[i](ys[i]),)
        return out


class HRNetFeatures(HeadlessFeatures, HRNet):
    """HRNet as a feature pyramid: the stem activation and the four incremental-module outputs."""

    init_like = HRNet  # same seeded weights as the classifier: reuse its cached init

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.feature_info = _feature_info()


def _feature_info() -> list[dict]:
    info = [dict(chs=64, reduction=2, name="stem")]
    for i, chs in enumerate(HEAD_CHANNELS):
        info.append(dict(chs=chs * Bottleneck.expansion, reduction=4 * 2 ** i, name=f"stage{i + 1}"))
    return info


def _stage_cfg(width: int) -> dict[str, dict[str, Any]]:
    """MindCV's (and the paper's) stage configuration of HRNet-W``width``."""
    widths = [width * 2 ** i for i in range(4)]
    return dict(
        stage1=dict(num_modules=1, num_branches=1, block="BOTTLENECK", num_blocks=[4], num_channels=[64]),
        stage2=dict(num_modules=1, num_branches=2, block="BASIC", num_blocks=[4] * 2, num_channels=widths[:2]),
        stage3=dict(num_modules=4, num_branches=3, block="BASIC", num_blocks=[4] * 3, num_channels=widths[:3]),
        stage4=dict(num_modules=3, num_branches=4, block="BASIC", num_blocks=[4] * 4, num_channels=widths),
    )


def _create_hrnet(pretrained: bool = False, **kwargs) -> nn.Cell:
    model_cls = HRNetFeatures if kwargs.get("features_only", False) else HRNet
    return build_model_with_cfg(model_cls, pretrained, default_cfg=default_cfg(first_conv="conv1",
                                                                                classifier="classifier"), **kwargs)


@register_model
def hrnet_w18(pretrained: bool = False, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> nn.Cell:
    return _create_hrnet(pretrained, stage_cfg=_stage_cfg(18), num_classes=num_classes, in_channels=in_channels,
                         **kwargs)


@register_model
def hrnet_w32(pretrained: bool = False, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> nn.Cell:
    return _create_hrnet(pretrained, stage_cfg=_stage_cfg(32), num_classes=num_classes, in_channels=in_channels,
                         **kwargs)
