"""MobileViT (scenario 1: one sequential cell per stage), MindCV parameter names.

The classifier is MindCV's ``MobileViT``: ``conv_1`` (stride 2), ``layer_1`` ..
``layer_5`` (MobileNetV2 blocks, then a strided block and a ``MobileViTBlock``
per stage), ``conv_1x1_exp`` and ``classifier``, all top-level cells called in
that order. The feature levels are the outputs of ``layer_1`` .. ``layer_5``, at
strides 2, 4, 8, 16 and 32. A MobileViT block unfolds its map into 2x2 patches,
runs transformer layers across the patches, and folds them back; a map whose
side is not a multiple of the patch is resized (bilinear, aligned corners) to
the next multiple and back, as in MindCV (at 224 px: ``layer_5``'s 7x7 map).

Deviations from MindCV, all for the export; none changes a value beyond float
rounding:

* The batch never enters a shape: every reshape of the attention and of the
  unfold/fold is per sample (``-1`` first), where MindCV writes ``B * C * n_h``,
  and the patch tokens are ``(B, P, N, C)``, not MindCV's ``(B * P, N, C)``
  (``nn.Dense`` on the latter would bake ``B * P`` at the export's batch 1).
* The bilinear resize is two matrix products with constant interpolation
  matrices (``bilinear_resize``), because ``ResizeBilinearV2`` does not export.
* A dropout of rate 0 is ``nn.Identity`` (MindCV: its ``Dropout(p=0.0)``), kept at
  MindCV's position so that every index in a name is kept; both are the
  identity in eval mode, the only mode that is exported.
* ``in_channels`` sets ``conv_1``'s input channels (MindCV fixes 3).

The resize matrices and the patch grid are fixed by the input size when the
graph is built, so ``export --dynamic-size`` is refused (``DYNAMIC_SIZE_REFUSAL``).
"""
from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
from mindspore import Tensor, constexpr, nn, ops

from ..helpers import build_model_with_cfg, default_cfg, make_divisible
from ..init import init_residual_norm
from ..registry import register_model
from .layers import GlobalAvgPooling

__all__ = ["MobileViT", "MobileViTBlock", "InvertedResidual", "TransformerEncoder", "MultiHeadAttention",
           "ConvLayer", "bilinear_resize", "get_config", "DYNAMIC_SIZE_REFUSAL"]

#: why ``export --dynamic-size`` refuses this family (``exporters.onnx_export`` reads it from the model)
DYNAMIC_SIZE_REFUSAL = ("a MobileViT block resizes a map whose side is no multiple of its patch to the next multiple "
                        "and folds patches on a grid fixed by the input size, so the graph holds that size; export "
                        "without --dynamic-size, with a fixed --input-size")


def _interp_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` weights of 1-D linear interpolation with aligned corners."""
    m = np.zeros((n_out, n_in), np.float32)
    if n_in == 1 or n_out == 1:
        m[:, 0] = 1.0
        return m
    src = np.arange(n_out, dtype=np.float64) * (n_in - 1) / (n_out - 1)
    lo = np.minimum(np.floor(src).astype(np.int64), n_in - 2)
    frac = src - lo
    rows = np.arange(n_out)
    m[rows, lo] = 1.0 - frac
    m[rows, lo + 1] += frac
    return m


@constexpr
def _resize_matrices(h: int, w: int, out_h: int, out_w: int) -> tuple:
    """The constant left ``(out_h, h)`` and right ``(w, out_w)`` factors of a bilinear resize."""
    return Tensor(_interp_matrix(h, out_h)), Tensor(np.ascontiguousarray(_interp_matrix(w, out_w).T))


def bilinear_resize(x: Tensor, size: tuple) -> Tensor:
    """Bilinear resize of an NCHW map to ``size`` with aligned corners (MindCV's ``Interpolate(mode="bilinear",
    align_corners=True)``), as ``A_h @ x @ A_w``: MatMuls with constant matrices, which export."""
    _, _, h, w = x.shape
    left, right = _resize_matrices(h, w, size[0], size[1])
    return ops.matmul(ops.matmul(left, x), right)


class ConvLayer(nn.Cell):
    """Conv2d, optional BatchNorm, optional activation in ``features`` (MindCV's ``ConvLayer``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: Optional[int] = None, groups: int = 1, norm: bool = True, activation: bool = True,
                 has_bias: bool = False) -> None:
        super().__init__()
        if padding is None:
            padding = ((stride - 1) + (kernel_size - 1)) // 2
        layers: list[nn.Cell] = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, pad_mode="pad",
                                           padding=padding, group=groups, has_bias=has_bias)]
        if norm:
            layers.append(nn.BatchNorm2d(out_channels, momentum=0.9))
        if activation:
            layers.append(nn.SiLU())
        self.features = nn.SequentialCell(layers)

    def construct(self, x: Tensor) -> Tensor:
        return self.features(x)


class InvertedResidual(nn.Cell):
    """MobileNetV2 block in ``block``: optional 1x1 expand, 3x3 depthwise, 1x1 linear projection, residual."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: float) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        hidden = make_divisible(int(round(in_channels * expand_ratio)), 8)
        block: list[nn.Cell] = []
        if expand_ratio != 1:
            block.append(ConvLayer(in_channels, hidden, kernel_size=1))
        block.append(ConvLayer(hidden, hidden, kernel_size=3, stride=stride, groups=hidden))
        block.append(ConvLayer(hidden, out_channels, kernel_size=1, activation=False))
        self.block = nn.SequentialCell(block)
        self.use_res_connect = stride == 1 and in_channels == out_channels

    def init_extra_weights(self, rng: np.random.Generator) -> None:  # noqa: ARG002  (deterministic)
        if self.use_res_connect:
            init_residual_norm(self.block)

    def construct(self, x: Tensor) -> Tensor:
        if self.use_res_connect:
            return x + self.block(x)
        return self.block(x)


class MultiHeadAttention(nn.Cell):
    """Multi-head self-attention with MindCV's names (``qkv_proj``, ``out_proj``); shapes per sample."""

    def __init__(self, embed_dim: int, num_heads: int, attn_dropout: float = 0.0) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.qkv_proj = nn.Dense(embed_dim, embed_dim * 3, has_bias=True)
        self.attn_dropout = _dropout(attn_dropout)
        self.out_proj = nn.Dense(embed_dim, embed_dim, has_bias=True)
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.scaling = self.head_dim ** -0.5
        self.embed_dim = embed_dim
        self.q_matmul_k = ops.BatchMatMul(transpose_b=True)
        self.attn_matmul_v = ops.BatchMatMul()

    def construct(self, x: Tensor) -> Tensor:
        """``(B, P, N, C)`` -> the same shape: attention across the N patches, per pixel P of a patch."""
        _, p, n, c = x.shape
        qkv = ops.reshape(self.qkv_proj(x), (-1, n, 3, self.num_heads, self.head_dim))  # (B * P, N, 3, h, d)
        qkv = ops.transpose(qkv, (2, 0, 3, 1, 4))
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ops.softmax(self.q_matmul_k(q, k) * self.scaling, axis=-1)
        attn = self.attn_dropout(attn)
        out = ops.transpose(self.attn_matmul_v(attn, v), (0, 2, 1, 3))
        return self.out_proj(ops.reshape(out, (-1, p, n, c)))


class TransformerEncoder(nn.Cell):
    """Pre-norm transformer layer: ``x + mha(norm(x))``, then ``x + ffn(norm(x))`` (SiLU FFN)."""

    def __init__(self, embed_dim: int, ffn_latent_dim: int, num_heads: int = 8, attn_dropout: float = 0.0,
                 dropout: float = 0.0, ffn_dropout: float = 0.0) -> None:
        super().__init__()
        self.pre_norm_mha = nn.SequentialCell([
            nn.LayerNorm((embed_dim,)),
            MultiHeadAttention(embed_dim, num_heads, attn_dropout=attn_dropout),
            _dropout(dropout),
        ])
        self.pre_norm_ffn = nn.SequentialCell([
            nn.LayerNorm((embed_dim,)),
            nn.Dense(embed_dim, ffn_latent_dim, has_bias=True),
            nn.SiLU(),
            _dropout(ffn_dropout),
            nn.Dense(ffn_latent_dim, embed_dim, has_bias=True),
            _dropout(dropout),
        ])

    def construct(self, x: Tensor) -> Tensor:
        x = x + self.pre_norm_mha(x)
        return x + self.pre_norm_ffn(x)


class MobileViTBlock(nn.Cell):
    """Local 3x3 + 1x1 convs, transformer layers across 2x2 patches (unfold, fold), 1x1 projection, and the
    3x3 fusion of the input with the result (MindCV's ``MobileViTBlock``)."""

    def __init__(self, in_channels: int, out_channels: int, transformer_dim: int, ffn_dim: int,
                 n_transformer_blocks: int = 2, head_dim: int = 32, attn_dropout: float = 0.0, dropout: float = 0.0,
                 ffn_dropout: float = 0.0, patch_h: int = 8, patch_w: int = 8, conv_ksize: int = 3) -> None:
        super().__init__()
        if transformer_dim % head_dim:
            raise ValueError(f"transformer_dim {transformer_dim} is not divisible by head_dim {head_dim}")
        self.local_rep = nn.SequentialCell([
            ConvLayer(in_channels, in_channels, kernel_size=conv_ksize),
            ConvLayer(in_channels, transformer_dim, kernel_size=1),
        ])
        layers: list[nn.Cell] = [
            TransformerEncoder(transformer_dim, ffn_dim, num_heads=transformer_dim // head_dim,
                               attn_dropout=attn_dropout, dropout=dropout, ffn_dropout=ffn_dropout)
            for _ in range(n_transformer_blocks)
        ]
        layers.append(nn.LayerNorm((transformer_dim,)))
        self.global_rep = nn.CellList(layers)
        self.conv_proj = ConvLayer(transformer_dim, in_channels, kernel_size=1)
        self.fusion = ConvLayer(2 * in_channels, out_channels, kernel_size=conv_ksize, padding=1)
        self.patch_h = patch_h
        self.patch_w = patch_w
        self.patch_area = patch_h * patch_w

    def unfolding(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` -> ``(B, P, N, C)``: P pixels per patch, N patches; the map is resized first
        when a side is no multiple of the patch."""
        _, c, h, w = x.shape
        new_h = int(math.ceil(h / self.patch_h) * self.patch_h)
        new_w = int(math.ceil(w / self.patch_w) * self.patch_w)
        if new_h != h or new_w != w:
            x = bilinear_resize(x, (new_h, new_w))
        n_h, n_w = new_h // self.patch_h, new_w // self.patch_w
        x = ops.reshape(x, (-1, self.patch_h, n_w, self.patch_w))  # (B * C * n_h, p_h, n_w, p_w)
        x = ops.transpose(x, (0, 2, 1, 3))
        x = ops.reshape(x, (-1, c, n_h * n_w, self.patch_area))  # (B, C, N, P)
        return ops.transpose(x, (0, 3, 2, 1))

    def folding(self, x: Tensor, size: tuple) -> Tensor:
        """``(B, P, N, C)`` -> ``(B, C, H, W)`` for the map of ``size`` (H, W) that `unfolding` took."""
        c = x.shape[3]
        h, w = size
        new_h = int(math.ceil(h / self.patch_h) * self.patch_h)
        new_w = int(math.ceil(w / self.patch_w) * self.patch_w)
        n_h, n_w = new_h // self.patch_h, new_w // self.patch_w
        x = ops.transpose(x, (0, 3, 2, 1))  # (B, C, N, P)
        x = ops.reshape(x, (-1, n_w, self.patch_h, self.patch_w))  # (B * C * n_h, n_w, p_h, p_w)
        x = ops.transpose(x, (0, 2, 1, 3))
        x = ops.reshape(x, (-1, c, new_h, new_w))
        if new_h != h or new_w != w:
            x = bilinear_resize(x, (h, w))
        return x

    def construct(self, x: Tensor) -> Tensor:
        res = x
        fm = self.local_rep(x)
        size = fm.shape[2:]
        patches = self.unfolding(fm)
        for layer in self.global_rep:
            patches = layer(patches)
        fm = self.conv_proj(self.folding(patches, size))
        return self.fusion(ops.concat((res, fm), 1))


class MobileViT(nn.Cell):
    """MindCV's MobileViT classifier; ``feature_info`` holds ``layer_1`` .. ``layer_5`` (strides 2 to 32)."""

    #: ``export --dynamic-size`` refuses a model that carries this reason
    dynamic_size_refusal = DYNAMIC_SIZE_REFUSAL

    def __init__(self, model_cfg: dict, num_classes: int = 1000, in_channels: int = 3) -> None:
        super().__init__()
        channels = 16
        self.conv_1 = ConvLayer(in_channels, channels, kernel_size=3, stride=2)
        self.feature_info: list[dict] = []
        reduction = 2
        for i in range(1, 6):
            cfg = model_cfg[f"layer{i}"]
            layer, channels = _make_layer(channels, cfg)
            setattr(self, f"layer_{i}", layer)
            reduction *= cfg.get("stride", 1)
            self.feature_info.append(dict(chs=channels, reduction=reduction, name=f"layer_{i}"))
        exp_channels = min(model_cfg["last_layer_exp_factor"] * channels, 960)
        self.conv_1x1_exp = ConvLayer(channels, exp_channels, kernel_size=1)
        head: list[nn.Cell] = [GlobalAvgPooling(), nn.Flatten()]
        if 0.0 < model_cfg["cls_dropout"] < 1.0:
            head.append(nn.Dropout(p=model_cfg["cls_dropout"]))
        head.append(nn.Dense(exp_channels, num_classes))
        self.classifier = nn.SequentialCell(head)

    def construct(self, x: Tensor) -> Tensor:
        x = self.conv_1(x)
        x = self.layer_1(x)
        x = self.layer_2(x)
        x = self.layer_3(x)
        x = self.layer_4(x)
        x = self.layer_5(x)
        x = self.conv_1x1_exp(x)
        return self.classifier(x)


def _dropout(p: float) -> nn.Cell:
    """MindCV's dropout at rate ``p``: the identity in eval mode either way."""
    return nn.Dropout(p=p) if p > 0.0 else nn.Identity()


def _make_layer(channels: int, cfg: dict) -> tuple[nn.SequentialCell, int]:
    """One stage: MobileNetV2 blocks (``block_type`` "mv2"), or an optional strided block and a MobileViT block."""
    out_channels = cfg["out_channels"]
    if cfg.get("block_type", "mobilevit").lower() != "mobilevit":
        blocks = []
        for i in range(cfg.get("num_blocks", 2)):
            stride = cfg.get("stride", 1) if i == 0 else 1
            blocks.append(InvertedResidual(channels, out_channels, stride, cfg.get("expand_ratio", 4)))
            channels = out_channels
        return nn.SequentialCell(blocks), channels
    blocks = []
    if cfg.get("stride", 1) == 2:
        blocks.append(InvertedResidual(channels, out_channels, 2, cfg.get("mv_expand_ratio", 4)))
        channels = out_channels
    transformer_dim = cfg["transformer_channels"]
    blocks.append(MobileViTBlock(
        channels, out_channels, transformer_dim, cfg["ffn_dim"],
        n_transformer_blocks=cfg.get("transformer_blocks", 1), head_dim=transformer_dim // cfg.get("num_heads", 4),
        attn_dropout=cfg.get("attn_dropout", 0.1), dropout=cfg.get("dropout", 0.1),
        ffn_dropout=cfg.get("ffn_dropout", 0.0), patch_h=cfg.get("patch_h", 2), patch_w=cfg.get("patch_w", 2)))
    return nn.SequentialCell(blocks), channels


#: per variant: MobileNetV2 expansion, then (out channels, transformer dim, ffn dim) of layer 1..5 (layers 1-2
#: have no transformer)
_VARIANTS = {
    "xx_small": (2, [(16, None, None), (24, None, None), (48, 64, 128), (64, 80, 160), (80, 96, 192)]),
    "x_small": (4, [(32, None, None), (48, None, None), (64, 96, 192), (80, 120, 240), (96, 144, 288)]),
    "small": (4, [(32, None, None), (64, None, None), (96, 144, 288), (128, 192, 384), (160, 240, 480)]),
}
_TRANSFORMER_BLOCKS = {3: 2, 4: 4, 5: 3}


def get_config(mode: str) -> dict[str, Any]:
    """MindCV's ``get_config(mode)`` for "xx_small", "x_small" or "small"."""
    if mode not in _VARIANTS:
        raise ValueError(f"unknown MobileViT variant {mode!r}; one of {sorted(_VARIANTS)}")
    expand, stages = _VARIANTS[mode]
    config: dict[str, Any] = {}
    for i, (out_channels, dim, ffn) in enumerate(stages, start=1):
        common = dict(out_channels=out_channels, stride=1 if i == 1 else 2, dropout=0.1, ffn_dropout=0.0,
                      attn_dropout=0.0)
        if dim is None:
            config[f"layer{i}"] = dict(common, expand_ratio=expand, num_blocks=1 if i == 1 else 3, block_type="mv2")
        else:
            config[f"layer{i}"] = dict(common, transformer_channels=dim, ffn_dim=ffn,
                                       transformer_blocks=_TRANSFORMER_BLOCKS[i], patch_h=2, patch_w=2,
                                       mv_expand_ratio=expand, num_heads=4, block_type="mobilevit")
    config.update(last_layer_exp_factor=4, cls_dropout=0.1)
    return config


def _create_mobilevit(pretrained: bool, mode: str, **kwargs) -> nn.Cell:
    cfg = default_cfg(first_conv="conv_1.features.0", classifier="classifier.3",
                      input_size=(kwargs.get("in_channels", 3), 224, 224))
    return build_model_with_cfg(MobileViT, pretrained, default_cfg=cfg, model_cfg=get_config(mode), **kwargs)


@register_model
def mobilevit_xx_small(pretrained: bool = False, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> nn.Cell:
    return _create_mobilevit(pretrained, "xx_small", num_classes=num_classes, in_channels=in_channels, **kwargs)


@register_model
def mobilevit_x_small(pretrained: bool = False, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> nn.Cell:
    return _create_mobilevit(pretrained, "x_small", num_classes=num_classes, in_channels=in_channels, **kwargs)


@register_model
def mobilevit_small(pretrained: bool = False, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> nn.Cell:
    return _create_mobilevit(pretrained, "small", num_classes=num_classes, in_channels=in_channels, **kwargs)
