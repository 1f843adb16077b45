"""Swin Transformer (scenario 3: a rewritten feature class), MindCV parameter names.

The classifier is MindCV's ``SwinTransformer`` (patch embedding with a norm,
four stages of shifted-window blocks, patch merging at the end of each stage
but the last, a final norm, mean pooling and ``classifier``) with the same
cells in the same order, so a MindCV checkpoint loads by exact names. The
stages are appended to an empty ``nn.CellList`` as MindCV does, and MindSpore
names the parameters of a cell appended that way after the list's first entry
(``0.blocks.1.attn.q.weight`` is stage 0, ``0.blocks.1.blocks.0.attn.q.weight``
stage 1): MindCV's checkpoints carry exactly these names, so the same build
keeps them. The cells themselves are ``layers.0`` .. ``layers.3``.

``features_only`` builds `SwinTransformerFeatures`, whose ``construct``
returns each stage's output before the next stage's patch merging (the
detection convention), named after the stage (``layers.<i>``), at strides 4,
8, 16 and 32, as NCHW maps ``(B, C, H, W)``; no extra norm. The stride-32
level is the last stage's output before the classifier's final norm.

Deviations from MindCV, all for the export; none changes a value beyond float
rounding:

* The batch never enters a shape: every reshape is per sample or per window
  (``-1`` first), where MindCV writes ``b`` or ``b * nW``.
* Each window attention takes and returns its windows as ``(B, nW * N, C)``,
  not ``(B * nW, N, C)``: ``nn.Dense`` on a 3-D input restores its leading
  dimension from a constant, which the exporter bakes, and only a leading
  batch of 1 is freed afterwards.
* The cyclic shift (``Roll``) is two slices and a concat per axis, not
  ``mindspore.numpy.roll``: the same values, from operators that export with
  constant bounds.
* GELU is ``layers.GELU``, the tanh approximation, which is also what MindCV's
  ``nn.GELU()`` computes (its default ``approximate=True``).
* Dropouts are left out (rate 0, and the identity in eval mode); drop path is
  ``layers.DropPath`` (the identity in eval mode). No cell of either has a
  parameter.
* After each stage's blocks the classifier lays its tokens out as the NCHW
  level and back (``to_map``, ``from_map``), so that every level is a tensor
  of the exported classifier, where the export proves it and ``cut`` finds
  it. The way back goes through NHWC: a reshape or transpose next to its
  inverse would be folded away by the graph compiler, and the level with it.
* MindCV's absolute position embedding (``ape=True``) is not offered: MindCV
  cannot build it, and ``swin_tiny`` does not use it.

The windows, the shifted-window masks (``attn_mask``) and the patch merging
are fixed to the resolution of ``image_size``, so the model runs at that size
only, and ``export --dynamic-size`` is refused (``DYNAMIC_SIZE_REFUSAL``).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
from mindspore import Parameter, Tensor, nn, ops

from ..features import HeadlessFeatures, levels_view
from ..helpers import build_model_with_cfg, default_cfg
from ..registry import register_model
from .layers import DropPath, Mlp

__all__ = ["SwinTransformer", "SwinTransformerFeatures", "SwinTransformerBlock", "WindowAttention",
           "RelativeBias", "PatchEmbed", "PatchMerging", "BasicLayer", "Roll", "DYNAMIC_SIZE_REFUSAL"]

#: why ``export --dynamic-size`` refuses this family (``exporters.onnx_export`` reads it from the model)
DYNAMIC_SIZE_REFUSAL = ("Swin's attention windows, shifted-window masks and patch merging are built for the "
                        "model's image size, and another size would need them rebuilt; export without "
                        "--dynamic-size, with --input-size equal to the image size")
#: standard deviation of the seeded relative position bias tables (MindCV's own init draws standard normals)
BIAS_TABLE_STD = 1.0


def _relative_position_index(window: int) -> np.ndarray:
    """For each pair of tokens of a ``window x window`` window, the row of their offset in the bias table."""
    coords = np.stack(np.meshgrid(np.arange(window), np.arange(window), indexing="ij")).reshape(2, -1)
    rel = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0) + (window - 1)
    return (rel[:, :, 0] * (2 * window - 1) + rel[:, :, 1]).reshape(-1)


def _shifted_window_mask(resolution: Sequence[int], window: int, shift: int) -> np.ndarray:
    """MindCV's ``attn_mask``: 0 within a region of the shifted image, -100 across, ``(1, nW, 1, N, N)``."""
    h, w = resolution
    regions = np.zeros((h, w), np.float32)
    cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    for i, (hs, ws) in enumerate((a, b) for a in cuts for b in cuts):
        regions[hs, ws] = i
    windows = regions.reshape(h // window, window, w // window, window).transpose(0, 2, 1, 3)
    windows = windows.reshape(-1, window * window)
    diff = windows[:, None, :] - windows[:, :, None]
    return np.where(diff == 0, 0.0, -100.0).astype(np.float32)[None, :, None]


class WindowPartition(nn.Cell):
    """``(B, H, W, C)`` -> windows ``(B * nW, ws, ws, C)``, per sample."""

    def __init__(self, window_size: int) -> None:
        super().__init__()
        self.window_size = window_size

    def construct(self, x: Tensor) -> Tensor:
        _, h, w, c = x.shape
        ws = self.window_size
        x = ops.reshape(x, (-1, h // ws, ws, w // ws, ws, c))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return ops.reshape(x, (-1, ws, ws, c))


class WindowReverse(nn.Cell):
    """Windows ``(B * nW, ws, ws, C)`` -> ``(B, H, W, C)``, per sample."""

    def construct(self, windows: Tensor, window_size: int, h: int, w: int) -> Tensor:
        c = windows.shape[-1]
        x = ops.reshape(windows, (-1, h // window_size, w // window_size, window_size, window_size, c))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return ops.reshape(x, (-1, h, w, c))


class Roll(nn.Cell):
    """``numpy.roll(x, (shift, shift), (1, 2))`` on ``(B, H, W, C)``, as two slices and a concat per axis."""

    def __init__(self, shift_size: int, resolution: Sequence[int]) -> None:
        super().__init__()
        self.shift_size = shift_size
        # out[i] = x[(i - shift) mod n]: the output starts at index (-shift) mod n of the input
        self.start_h = (-shift_size) % resolution[0]
        self.start_w = (-shift_size) % resolution[1]

    def construct(self, x: Tensor) -> Tensor:
        x = ops.concat((x[:, self.start_h:], x[:, :self.start_h]), 1)
        return ops.concat((x[:, :, self.start_w:], x[:, :, :self.start_w]), 2)


class RelativeBias(nn.Cell):
    """The relative position bias ``(1, heads, N, N)`` of a window: the table's rows picked by a one-hot matmul
    (MindCV's ``index`` is a non-trainable parameter, so it is in MindCV's checkpoints and kept here)."""

    def __init__(self, window_size: Sequence[int], num_heads: int) -> None:
        super().__init__()
        self.window_size = window_size
        rows = (2 * window_size[0] - 1) * (2 * window_size[1] - 1)
        self.relative_position_index = _relative_position_index(window_size[0])
        self.relative_position_bias_table = Parameter(Tensor(np.zeros((rows, num_heads), np.float32)))
        one_hot = np.eye(rows, dtype=np.float32)[self.relative_position_index]
        self.index = Parameter(Tensor(one_hot), requires_grad=False)

    def construct(self) -> Tensor:
        n = self.window_size[0] * self.window_size[1]
        out = ops.matmul(self.index, self.relative_position_bias_table)
        out = ops.transpose(ops.reshape(out, (n, n, -1)), (2, 0, 1))
        return ops.expand_dims(out, 0)


class WindowAttention(nn.Cell):
    """Window multi-head self-attention with MindCV's names (``relative_bias``, ``q``, ``k``, ``v``, ``proj``).

    Takes and returns a sample's windows one after the other, ``(B, nW * N, C)``.
    """

    def __init__(self, dim: int, window_size: Sequence[int], num_heads: int, qkv_bias: bool = True,
                 qk_scale: Optional[float] = None) -> None:
        super().__init__()
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = Tensor(qk_scale or self.head_dim ** -0.5)
        self.relative_bias = RelativeBias(window_size, num_heads)
        self.q = nn.Dense(dim, dim, has_bias=qkv_bias)
        self.k = nn.Dense(dim, dim, has_bias=qkv_bias)
        self.v = nn.Dense(dim, dim, has_bias=qkv_bias)
        self.proj = nn.Dense(dim, dim, has_bias=True)
        self.softmax = nn.Softmax(axis=-1)
        self.batch_matmul = ops.BatchMatMul()

    def _heads(self, x: Tensor, n: int, order: tuple) -> Tensor:
        return ops.transpose(ops.reshape(x, (-1, n, self.num_heads, self.head_dim)), order)

    def construct(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        _, length, c = x.shape
        n = self.window_size[0] * self.window_size[1]
        q = ops.transpose(ops.reshape(self.q(x), (-1, n, self.num_heads, self.head_dim)) * self.scale,
                          (0, 2, 1, 3))
        k = self._heads(self.k(x), n, (0, 2, 3, 1))
        v = self._heads(self.v(x), n, (0, 2, 1, 3))
        attn = self.batch_matmul(q, k) + self.relative_bias()
        if mask is not None:
            attn = ops.reshape(attn, (-1, mask.shape[1], self.num_heads, n, n)) + mask
            attn = ops.reshape(attn, (-1, self.num_heads, n, n))
        attn = self.softmax(attn)
        out = ops.transpose(self.batch_matmul(attn, v), (0, 2, 1, 3))
        return self.proj(ops.reshape(out, (-1, length, c)))


class SwinTransformerBlock(nn.Cell):
    """A (shifted-)window block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``; MindCV's names."""

    def __init__(self, dim: int, input_resolution: Sequence[int], num_heads: int, window_size: int = 7,
                 shift_size: int = 0, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 qk_scale: Optional[float] = None, drop_path: float = 0.0) -> None:
        super().__init__()
        self.dim = dim
        self.input_resolution = tuple(input_resolution)
        self.window_size = window_size
        self.shift_size = shift_size
        if min(self.input_resolution) <= self.window_size:  # one window covers the map: no shift (MindCV's rule)
            self.shift_size = 0
            self.window_size = min(self.input_resolution)
        self.norm1 = nn.LayerNorm((dim,), epsilon=1e-5)
        self.attn = WindowAttention(dim, (self.window_size, self.window_size), num_heads, qkv_bias, qk_scale)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm((dim,), epsilon=1e-5)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        if self.shift_size > 0:
            mask = _shifted_window_mask(self.input_resolution, self.window_size, self.shift_size)
            self.attn_mask = Parameter(Tensor(mask), requires_grad=False)
            self.roll_pos = Roll(self.shift_size, self.input_resolution)
            self.roll_neg = Roll(-self.shift_size, self.input_resolution)
        else:
            self.attn_mask = None
        self.window_partition = WindowPartition(self.window_size)
        self.window_reverse = WindowReverse()

    def construct(self, x: Tensor) -> Tensor:
        h, w = self.input_resolution
        c = self.dim
        ws = self.window_size
        shortcut = x
        x = ops.reshape(self.norm1(x), (-1, h, w, c))
        if self.shift_size > 0:
            x = self.roll_neg(x)
        windows = ops.reshape(self.window_partition(x), (-1, h * w, c))  # (B, nW * N, C)
        windows = self.attn(windows, mask=self.attn_mask)
        x = self.window_reverse(ops.reshape(windows, (-1, ws, ws, c)), ws, h, w)
        if self.shift_size > 0:
            x = self.roll_pos(x)
        x = shortcut + self.drop_path(ops.reshape(x, (-1, h * w, c)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Cell):
    """2x2 neighbours to channels (MindCV's order), ``norm`` over ``4C``, then ``reduction`` to ``2C``."""

    def __init__(self, input_resolution: Sequence[int], dim: int) -> None:
        super().__init__()
        self.input_resolution = tuple(input_resolution)
        self.dim = dim
        self.reduction = nn.Dense(4 * dim, 2 * dim, has_bias=False)
        self.norm = nn.LayerNorm((dim * 4,))  # MindSpore's default epsilon (1e-7), as in MindCV
        self.h_2, self.w_2 = self.input_resolution[0] // 2, self.input_resolution[1] // 2

    def construct(self, x: Tensor) -> Tensor:
        x = ops.reshape(x, (-1, self.h_2, 2, self.w_2, 2, self.dim))
        x = ops.transpose(x, (0, 1, 3, 4, 2, 5))
        x = ops.reshape(x, (-1, self.h_2 * self.w_2, 4 * self.dim))
        return self.reduction(self.norm(x))


class BasicLayer(nn.Cell):
    """One stage: ``blocks``, then ``downsample`` (patch merging; None in the last stage)."""

    def __init__(self, dim: int, input_resolution: Sequence[int], depth: int, num_heads: int, window_size: int,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, qk_scale: Optional[float] = None,
                 drop_path: Sequence[float] = (), downsample: bool = False) -> None:
        super().__init__()
        self.dim = dim
        self.input_resolution = tuple(input_resolution)
        self.depth = depth
        rates = list(drop_path) or [0.0] * depth
        self.blocks = nn.CellList([
            SwinTransformerBlock(dim, input_resolution, num_heads, window_size=window_size,
                                 shift_size=0 if i % 2 == 0 else window_size // 2, mlp_ratio=mlp_ratio,
                                 qkv_bias=qkv_bias, qk_scale=qk_scale, drop_path=rates[i])
            for i in range(depth)])
        self.downsample = PatchMerging(input_resolution, dim) if downsample else None

    def forward_blocks(self, x: Tensor) -> Tensor:
        """The stage's blocks: its level, as tokens ``(B, H * W, C)``."""
        for blk in self.blocks:
            x = blk(x)
        return x

    def forward_downsample(self, x: Tensor) -> Tensor:
        """The patch merging that ends the stage (the identity in the last stage)."""
        if self.downsample is not None:
            x = self.downsample(x)
        return x

    def to_map(self, x: Tensor) -> Tensor:
        """Tokens ``(B, H * W, C)`` -> NCHW ``(B, C, H, W)``."""
        h, w = self.input_resolution
        return ops.reshape(ops.transpose(x, (0, 2, 1)), (-1, self.dim, h, w))

    def from_map(self, level: Tensor) -> Tensor:
        """NCHW ``(B, C, H, W)`` -> tokens, through NHWC (no reshape or transpose next to its inverse)."""
        h, w = self.input_resolution
        return ops.reshape(ops.transpose(level, (0, 2, 3, 1)), (-1, h * w, self.dim))

    def construct(self, x: Tensor) -> Tensor:
        return self.forward_downsample(self.forward_blocks(x))


class PatchEmbed(nn.Cell):
    """Patchify with a strided conv (``proj``), flatten to tokens ``(B, N, C)``, then ``norm``; the size is fixed."""

    def __init__(self, image_size: int = 224, patch_size: int = 4, in_chans: int = 3, embed_dim: int = 96) -> None:
        super().__init__()
        self.image_size = (image_size, image_size)
        self.patch_size = (patch_size, patch_size)
        self.patches_resolution = [image_size // patch_size, image_size // patch_size]
        self.num_patches = self.patches_resolution[0] * self.patches_resolution[1]
        self.in_chans = in_chans
        self.embed_dim = embed_dim
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size, pad_mode="pad",
                              has_bias=True)
        self.norm = nn.LayerNorm((embed_dim,), epsilon=1e-5)

    def construct(self, x: Tensor) -> Tensor:
        # a ValueError: a compiled graph may raise only Python's built-in exception types
        _, _, h, w = x.shape
        if (h, w) != self.image_size:
            raise ValueError(f"input size {h}x{w} does not match the Swin Transformer's image size "
                             f"{self.image_size[0]}x{self.image_size[1]} (its windows and masks are built for "
                             "it); export with --input-size equal to it")
        x = ops.reshape(self.proj(x), (-1, self.embed_dim, self.num_patches))
        return self.norm(ops.transpose(x, (0, 2, 1)))


class SwinTransformer(nn.Cell):
    """MindCV's Swin Transformer classifier; see `SwinTransformerFeatures` for the levels."""

    #: ``export --dynamic-size`` refuses a model that carries this reason
    dynamic_size_refusal = DYNAMIC_SIZE_REFUSAL

    def __init__(self, image_size: int = 224, patch_size: int = 4, in_channels: int = 3, num_classes: int = 1000,
                 embed_dim: int = 96, depths: Sequence[int] = (2, 2, 6, 2), num_heads: Sequence[int] = (3, 6, 12, 24),
                 window_size: int = 7, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 qk_scale: Optional[float] = None, drop_path_rate: float = 0.1) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.num_layers = len(depths)
        self.embed_dim = embed_dim
        self.patch_size = patch_size
        self.num_features = int(embed_dim * 2 ** (self.num_layers - 1))
        self.patch_embed = PatchEmbed(image_size, patch_size, in_channels, embed_dim)
        resolution = self.patch_embed.patches_resolution
        dpr = np.linspace(0.0, drop_path_rate, sum(depths)).tolist()
        self.layers = nn.CellList()  # then appended, as MindCV does: MindSpore names the parameters the same way
        for i, depth in enumerate(depths):
            self.layers.append(BasicLayer(
                int(embed_dim * 2 ** i), (resolution[0] // 2 ** i, resolution[1] // 2 ** i), depth, num_heads[i],
                window_size, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, qk_scale=qk_scale,
                drop_path=dpr[sum(depths[:i]):sum(depths[:i + 1])], downsample=i < self.num_layers - 1))
        self._make_head(num_classes)

    def _make_head(self, num_classes: int) -> None:
        self.norm = nn.LayerNorm((self.num_features,), epsilon=1e-5)
        self.classifier = nn.Dense(self.num_features, num_classes, has_bias=True) if num_classes > 0 \
            else nn.Identity()

    def init_extra_weights(self, rng: np.random.Generator) -> None:
        """Seeded relative position bias tables (MindCV's ``index`` and ``attn_mask`` are constants: kept)."""
        for _, cell in self.cells_and_names():
            if isinstance(cell, RelativeBias):
                table = cell.relative_position_bias_table
                table.set_data(Tensor(rng.normal(0.0, BIAS_TABLE_STD, size=table.shape).astype(np.float32)))

    def forward_features(self, x: Tensor) -> Tensor:
        """Image -> the final norm's tokens, mean-pooled ``(B, C)``."""
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer.forward_blocks(x)
            x = layer.from_map(layer.to_map(x))  # the level is a tensor of the classifier's graph
            x = layer.forward_downsample(x)
        x = self.norm(x)
        return ops.mean(ops.transpose(x, (0, 2, 1)), 2)

    def forward_head(self, x: Tensor) -> Tensor:
        """Pooled features -> logits."""
        return self.classifier(x)

    def construct(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def feature_view(self) -> nn.Cell:
        """The levels of `SwinTransformerFeatures` computed by this classifier's own cells (its head
        unused): the export's reference runs use it instead of building the network twice."""
        return levels_view(self, _feature_info(self.num_layers, self.embed_dim, self.patch_size))

    def forward_levels(self, x: Tensor) -> tuple:
        """Each stage's output before the next stage's patch merging, as an NCHW map."""
        x = self.patch_embed(x)
        out = ()
        for layer in self.layers:
            x = layer.forward_blocks(x)
            out = out + (layer.to_map(x),)
            x = layer.forward_downsample(x)
        return out


class SwinTransformerFeatures(HeadlessFeatures, SwinTransformer):
    """Swin as a feature pyramid: each stage's output (before patch merging) as NCHW; no final norm, no head."""

    init_like = SwinTransformer  # same seeded weights as the classifier: reuse its cached init

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.head_weight_size = self.num_features * max(int(kwargs.get("num_classes", 1000)), 0)
        self.feature_info = _feature_info(self.num_layers, self.embed_dim, self.patch_size)


def _feature_info(num_layers: int, embed_dim: int, patch_size: int) -> list[dict]:
    return [dict(chs=embed_dim * 2 ** i, reduction=patch_size * 2 ** i, name=f"layers.{i}")
            for i in range(num_layers)]


def _create_swin(pretrained: bool = False, **kwargs) -> nn.Cell:
    model_cls = SwinTransformerFeatures if kwargs.get("features_only", False) else SwinTransformer
    size = kwargs.get("image_size", 224)
    cfg = default_cfg(first_conv="patch_embed.proj", classifier="classifier",
                      input_size=(kwargs.get("in_channels", 3), size, size))
    return build_model_with_cfg(model_cls, pretrained, default_cfg=cfg, **kwargs)


@register_model
def swin_tiny(pretrained: bool = False, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> nn.Cell:
    kwargs = {"image_size": 224, "patch_size": 4, "embed_dim": 96, "depths": (2, 2, 6, 2),
              "num_heads": (3, 6, 12, 24), "window_size": 7, "drop_path_rate": 0.2, **kwargs}
    return _create_swin(pretrained, num_classes=num_classes, in_channels=in_channels, **kwargs)
