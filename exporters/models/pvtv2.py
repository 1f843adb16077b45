"""PVTv2 (scenario 3: a rewritten feature class), MindCV parameter names.

The classifier is MindCV's ``PyramidVisionTransformerV2`` (``pvt_v2_b0``,
``pvt_v2_b1``, ``pvt_v2_b2``): four stages, each an overlapping patch
embedding (``patch_embed_list.<i>``), blocks of spatial-reduction attention
and a depthwise-conv MLP (``block_list.<i>.<j>``) and a LayerNorm
(``norm_list.<i>``); the head averages the last stage's tokens. The cells and
parameter names are MindCV's, so a MindCV checkpoint loads by exact names.

``features_only`` builds `PyramidVisionTransformerV2Features`, whose
``construct`` returns each stage's output after its norm (``norm_list.0`` ..
``norm_list.3``, strides 4, 8, 16, 32) as an NCHW map ``(B, C, H, W)``.

Deviations from MindCV, all for the export; none changes a value beyond float rounding:

* A stage keeps its tokens as an NHWC map ``(B, H, W, C)``, not as ``(B, H * W, C)``: no reshape ever splits
  a token axis into height and width, which would bake the probe's size into the graph (``--dynamic-size``)
  and, through MindCV's ``(B, ...)`` reshape targets, its batch.
* Attention keeps the queries on that map (``(B, heads, H, W, head_dim)``) and multiplies them with
  ``ops.matmul``, which broadcasts the keys and values over the rows (``BatchMatMul`` does not broadcast on
  CPU), so its output is a map again without a split. Keys and values are split by heads in one reshape
  (constant sizes only), laid out by heads, then their rows and columns merged with ``-1`` in another.
* GELU is ``layers.GELU``, the tanh approximation, which is also what MindCV's ``nn.GELU()`` computes.
* A stage norm (``StageNorm``) scales and shifts after laying its output out as NCHW, not before, so that
  the level is what the norm cell returns in the exported graph too (``cut`` by structure finds it there).
* The head averages the last level, the NCHW map flattened to ``(B, C, H * W)`` (MindCV: its tokens over the
  token axis), so that every level is a tensor of the exported classifier, where the export proves it and
  ``cut`` finds it, and ONNX Runtime cannot fold the level's transpose into the mean, which would round the
  logits differently once the level is an output too.
* Dropout cells (rate 0 in every MindCV configuration) are left out; they hold no parameter.

Seeded random weights start the stage norms at a spread of scales and shifts (``StageNorm.init_extra_weights``):
at the identity the map before them would equal the level, and the export would record that tensor instead.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from mindspore import Tensor, nn, ops

from ..features import HeadlessFeatures, levels_view
from ..helpers import build_model_with_cfg, default_cfg
from ..registry import register_model
from .layers import GELU, DropPath

__all__ = ["PyramidVisionTransformerV2", "PyramidVisionTransformerV2Features", "Block", "Attention",
           "OverlapPatchEmbed", "Mlp", "DWConv", "StageNorm"]

#: MindCV's epsilon of the block and stage norms (its ``norm_layer``); the patch-embedding and attention norms
#: keep ``nn.LayerNorm``'s default
NORM_EPS = 1e-6


def _nchw(x: Tensor) -> Tensor:
    return ops.transpose(x, (0, 3, 1, 2))


def _nhwc(x: Tensor) -> Tensor:
    return ops.transpose(x, (0, 2, 3, 1))


class DWConv(nn.Cell):
    """3x3 depthwise conv (``dwconv``) on an NHWC map."""

    def __init__(self, dim: int = 768) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, has_bias=True, group=dim)  # MindCV's pad_mode "same"

    def construct(self, x: Tensor) -> Tensor:
        return _nhwc(self.dwconv(_nchw(x)))


class Mlp(nn.Cell):
    """``fc1`` -> depthwise conv -> GELU -> ``fc2`` on an NHWC map (MindCV's ``Mlp``, ``linear=False``)."""

    def __init__(self, in_features: int, hidden_features: int) -> None:
        super().__init__()
        self.fc1 = nn.Dense(in_features, hidden_features)
        self.dwconv = DWConv(hidden_features)
        self.act = GELU()
        self.fc2 = nn.Dense(hidden_features, in_features)

    def construct(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.dwconv(self.fc1(x))))


class Attention(nn.Cell):
    """Spatial-reduction attention with MindCV's names (``q``, ``kv``, ``proj``, ``sr``, ``norm``) on an NHWC map."""

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = False, sr_ratio: int = 1) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.q = nn.Dense(dim, dim, has_bias=qkv_bias)
        self.kv = nn.Dense(dim, dim * 2, has_bias=qkv_bias)
        self.proj = nn.Dense(dim, dim)
        self.softmax = nn.Softmax(axis=-1)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, kernel_size=sr_ratio, stride=sr_ratio, has_bias=True)
            self.norm = nn.LayerNorm([dim])

    def _keys_values(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Keys ``(B, heads, 1, head_dim, M)`` and values ``(B, heads, 1, M, head_dim)`` from the (reduced) map,
        broadcast over the query rows."""
        if self.sr_ratio > 1:
            x = self.norm(_nhwc(self.sr(_nchw(x))))
        kv = self.kv(x)  # (B, h, w, 2C)
        _, h, w, _ = kv.shape
        kv = ops.transpose(ops.reshape(kv, (-1, h, w, 2, self.num_heads, self.head_dim)), (0, 4, 3, 1, 2, 5))
        kv = ops.reshape(kv, (-1, self.num_heads, 2, h * w, self.head_dim))  # merges h, w: their product is -1
        k, v = ops.split(kv, 1, axis=2)  # each (B, heads, 1, M, head_dim)
        return ops.transpose(k, (0, 1, 2, 4, 3)), v

    def construct(self, x: Tensor) -> Tensor:
        _, h, w, c = x.shape
        q = ops.reshape(self.q(x), (-1, h, w, self.num_heads, self.head_dim))
        q = ops.transpose(q, (0, 3, 1, 2, 4))  # (B, heads, H, W, head_dim)
        k, v = self._keys_values(x)
        attn = self.softmax(ops.matmul(q, k) * self.scale)  # (B, heads, H, W, M)
        out = ops.transpose(ops.matmul(attn, v), (0, 2, 3, 1, 4))  # (B, H, W, heads, head_dim)
        return self.proj(ops.reshape(out, (-1, h, w, c)))


class Block(nn.Cell):
    """``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``, on an NHWC map."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = False,
                 drop_path: float = 0.0, sr_ratio: int = 1) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm([dim], epsilon=NORM_EPS)
        self.attn = Attention(dim, num_heads=num_heads, qkv_bias=qkv_bias, sr_ratio=sr_ratio)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm([dim], epsilon=NORM_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def construct(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class OverlapPatchEmbed(nn.Cell):
    """Overlapping patches: a strided conv (``proj``, MindCV's pad_mode "same"), then ``norm``, as an NHWC map."""

    def __init__(self, patch_size: int = 7, stride: int = 4, in_chans: int = 3, embed_dim: int = 768) -> None:
        super().__init__()
        if patch_size <= stride:
            raise ValueError(f"patch_size {patch_size} must be larger than stride {stride}")
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=stride, has_bias=True)
        self.norm = nn.LayerNorm([embed_dim])

    def construct(self, x: Tensor) -> Tensor:
        return self.norm(_nhwc(self.proj(x)))


class StageNorm(nn.LayerNorm):
    """MindCV's stage norm (``nn.LayerNorm`` over the channels of an NHWC map, the same parameters) returning the
    NCHW map: it normalises, lays the map out as NCHW, then scales and shifts, so that the level is the output
    of the cell's last parameterised op (where the parameter-ownership resolver of ``cut`` looks for it)."""

    def __init__(self, dim: int, epsilon: float = NORM_EPS) -> None:
        super().__init__([dim], epsilon=epsilon)
        self.unit = Tensor(np.ones(dim, np.float32))
        self.zero = Tensor(np.zeros(dim, np.float32))

    def init_extra_weights(self, rng: np.random.Generator) -> None:  # noqa: ARG002  (deterministic)
        """Seeded weights: a spread of scales and shifts, not the identity, under which the normalised map before
        them would hold the level's values as well (and the export would record that tensor as the level)."""
        dim = self.gamma.shape[0]
        self.gamma.set_data(Tensor(np.linspace(0.5, 1.5, dim, dtype=np.float32)))
        self.beta.set_data(Tensor(np.linspace(-0.2, 0.2, dim, dtype=np.float32)))

    def construct(self, x: Tensor) -> Tensor:
        y, _, _ = self.layer_norm(x, self.unit, self.zero)
        return _nchw(y) * ops.reshape(self.gamma, (-1, 1, 1)) + ops.reshape(self.beta, (-1, 1, 1))


class PyramidVisionTransformerV2(nn.Cell):
    """MindCV's PVTv2 classifier; see `PyramidVisionTransformerV2Features` for the levels."""

    def __init__(self, in_channels: int = 3, num_classes: int = 1000, embed_dims: Sequence[int] = (64, 128, 256, 512),
                 num_heads: Sequence[int] = (1, 2, 4, 8), mlp_ratios: Sequence[float] = (4, 4, 4, 4),
                 qkv_bias: bool = False, drop_path_rate: float = 0.0, depths: Sequence[int] = (3, 4, 6, 3),
                 sr_ratios: Sequence[int] = (8, 4, 2, 1)) -> None:
        super().__init__()
        self.num_stages = len(depths)
        self.embed_dims = tuple(embed_dims)
        dpr = np.linspace(0.0, drop_path_rate, sum(depths)).tolist()
        embeds, stages, norms = [], [], []
        for i, depth in enumerate(depths):
            embeds.append(OverlapPatchEmbed(patch_size=7 if i == 0 else 3, stride=4 if i == 0 else 2,
                                            in_chans=in_channels if i == 0 else embed_dims[i - 1],
                                            embed_dim=embed_dims[i]))
            first = sum(depths[:i])
            stages.append(nn.CellList([
                Block(embed_dims[i], num_heads[i], mlp_ratio=mlp_ratios[i], qkv_bias=qkv_bias,
                      drop_path=dpr[first + j], sr_ratio=sr_ratios[i]) for j in range(depth)]))
            norms.append(StageNorm(embed_dims[i]))
        self.patch_embed_list = nn.CellList(embeds)
        self.block_list = nn.CellList(stages)
        self.norm_list = nn.CellList(norms)
        self._make_head(num_classes)

    def _make_head(self, num_classes: int) -> None:
        self.head = nn.Dense(self.embed_dims[-1], num_classes) if num_classes > 0 else nn.Identity()

    def forward_levels(self, x: Tensor) -> tuple:
        """Every stage's output after its norm, as an NCHW map."""
        out = ()
        for i in range(self.num_stages):
            x = self.patch_embed_list[i](x)
            for blk in self.block_list[i]:
                x = blk(x)
            x = self.norm_list[i](x)
            out = out + (x,)
        return out

    def forward_features(self, x: Tensor) -> Tensor:
        """The last level averaged over H and W, ``(B, C)``."""
        level = self.forward_levels(x)[-1]
        _, c, h, w = level.shape
        # flat, not over axes (2, 3): ONNX Runtime would fold the level's transpose into such a mean, and rounds
        # the logits differently when the level is also an output (cut --keep-outputs)
        return ops.mean(ops.reshape(level, (-1, c, h * w)), 2)

    def forward_head(self, x: Tensor) -> Tensor:
        """The classifier on the pooled ``(B, C)`` features."""
        return self.head(x)

    def construct(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def feature_view(self) -> nn.Cell:
        """The levels of `PyramidVisionTransformerV2Features` computed by this classifier's own cells (its
        head unused): the export's reference runs use it instead of building the network twice."""
        return levels_view(self, _feature_info(self.embed_dims))


class PyramidVisionTransformerV2Features(HeadlessFeatures, PyramidVisionTransformerV2):
    """PVTv2 as a feature pyramid: each stage's normed output as an NCHW map; no head."""

    init_like = PyramidVisionTransformerV2  # same seeded weights as the classifier: reuse its cached init

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.feature_info = _feature_info(self.embed_dims)


def _feature_info(embed_dims: Sequence[int]) -> list[dict]:
    return [dict(chs=c, reduction=4 * 2 ** i, name=f"norm_list.{i}") for i, c in enumerate(embed_dims)]


def _create_pvtv2(pretrained: bool = False, **kwargs) -> nn.Cell:
    model_cls = PyramidVisionTransformerV2Features if kwargs.get("features_only", False) \
        else PyramidVisionTransformerV2
    cfg = default_cfg(first_conv="patch_embed_list.0.proj", classifier="head")
    return build_model_with_cfg(model_cls, pretrained, default_cfg=cfg, **kwargs)


#: what MindCV's pvt_v2_b0 .. b2 share: heads, MLP ratios, spatial-reduction ratios, biased q and kv
_B0_B2 = dict(num_heads=(1, 2, 5, 8), mlp_ratios=(8, 8, 4, 4), qkv_bias=True, sr_ratios=(8, 4, 2, 1))


@register_model
def pvt_v2_b0(pretrained: bool = False, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> nn.Cell:
    """MindCV's ``pvt_v2_b0``: widths 32-256, two blocks a stage."""
    kwargs = {**_B0_B2, "embed_dims": (32, 64, 160, 256), "depths": (2, 2, 2, 2), **kwargs}
    return _create_pvtv2(pretrained, num_classes=num_classes, in_channels=in_channels, **kwargs)


@register_model
def pvt_v2_b1(pretrained: bool = False, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> nn.Cell:
    """MindCV's ``pvt_v2_b1``: widths 64-512, two blocks a stage."""
    kwargs = {**_B0_B2, "embed_dims": (64, 128, 320, 512), "depths": (2, 2, 2, 2), **kwargs}
    return _create_pvtv2(pretrained, num_classes=num_classes, in_channels=in_channels, **kwargs)


@register_model
def pvt_v2_b2(pretrained: bool = False, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> nn.Cell:
    """MindCV's ``pvt_v2_b2``: widths 64-512, 3, 4, 6, 3 blocks."""
    kwargs = {**_B0_B2, "embed_dims": (64, 128, 320, 512), "depths": (3, 4, 6, 3), **kwargs}
    return _create_pvtv2(pretrained, num_classes=num_classes, in_channels=in_channels, **kwargs)
