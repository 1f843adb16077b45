"""Vision Transformer (scenario 3: a rewritten feature class), MindCV parameter names.

The classifier is MindCV's ``VisionTransformer`` (class token, learned
position embedding, pre-norm blocks, ``head`` on the class token) with the
same cells and parameter names, so a MindCV checkpoint loads by exact names.

``features_only`` builds `VisionTransformerFeatures`, whose ``construct``
returns every block's output (``blocks.0`` .. ``blocks.<depth-1>``, all at the
patch stride) with the class token dropped and the patch tokens laid out as
NCHW ``(B, C, H/patch, W/patch)``. A 12-block model's default selection
(``out_indices=None``) is ``DEFAULT_OUT_INDICES`` (3, 5, 7, 11), the BEiT/mmseg
multi-level setting; ``out_indices=[11]`` is ViTDet's single level; other depths
keep every block. The classifier's export records every block, so a cut may
take any of them.

Deviations from MindCV, all for the export; none changes a value:

* The batch never enters a shape: reshapes are per sample (``-1`` first), and
  the class token is added to a zero slice of the patch tokens instead of
  ``broadcast_to((B, 1, C))``, which the exporter would bake at batch 1.
* ``q, k, v`` are taken by indexing, not ``ops.Unstack``.
* GELU is ``layers.GELU``, the tanh approximation, which is also what MindCV's
  ``nn.GELU()`` computes (its default ``approximate=True``).
* After each block the classifier lays its patch tokens out as the NCHW level
  and back (``to_map``, ``from_map``), so that every level is a tensor of the
  exported classifier, where the export proves it and ``cut`` finds it. The
  way back goes through NHWC: a reshape or transpose next to its inverse would
  be folded away by the graph compiler, and the level with it.

The position embedding has one entry per patch of ``image_size``, so the
model runs at that size only, and ``export --dynamic-size`` is refused
(``DYNAMIC_SIZE_REFUSAL``): another size would need the embedding resampled
inside the graph.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from mindspore import Parameter, Tensor, nn, ops

from ..features import HeadlessFeatures, levels_view
from ..helpers import build_model_with_cfg, default_cfg
from ..registry import register_model
from .layers import DropPath, Mlp

__all__ = ["VisionTransformer", "VisionTransformerFeatures", "Block", "Attention", "PatchEmbed",
           "DEFAULT_OUT_INDICES", "DYNAMIC_SIZE_REFUSAL"]

#: the BEiT/mmseg multi-level selection of a 12-block ViT
DEFAULT_OUT_INDICES = (3, 5, 7, 11)
#: why ``export --dynamic-size`` refuses this family (``exporters.onnx_export`` reads it from the model)
DYNAMIC_SIZE_REFUSAL = ("the ViT position embedding has one entry per patch of the model's image size, and another "
                        "size would need it resampled inside the graph; export without --dynamic-size, with "
                        "--input-size equal to the image size")
#: standard deviation of the random-init class token and position embedding (MindCV's TruncatedNormal(0.02))
TOKEN_INIT_STD = 0.02


class PatchEmbed(nn.Cell):
    """Patchify with a strided conv (``proj``), then flatten to tokens ``(B, N, C)``; the size is fixed."""

    def __init__(self, image_size: int = 224, patch_size: int = 16, in_chans: int = 3, embed_dim: int = 768) -> None:
        super().__init__()
        self.image_size = (image_size, image_size)
        self.patch_size = (patch_size, patch_size)
        self.grid_size = (image_size // patch_size, image_size // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.embed_dim = embed_dim
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size, pad_mode="pad",
                              has_bias=True)

    def construct(self, x: Tensor) -> Tensor:
        # a ValueError: a compiled graph may raise only Python's built-in exception types
        _, _, h, w = x.shape
        if (h, w) != self.image_size:
            raise ValueError(f"input size {h}x{w} does not match the ViT's image size {self.image_size[0]}x"
                             f"{self.image_size[1]} (its position embedding has one entry per patch); "
                             "export with --input-size equal to it")
        x = self.proj(x)
        x = ops.reshape(x, (-1, self.embed_dim, self.num_patches))
        return ops.transpose(x, (0, 2, 1))


class Attention(nn.Cell):
    """Multi-head self-attention with MindCV's names (``qkv``, ``proj``)."""

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = Tensor(self.head_dim ** -0.5)
        self.qkv = nn.Dense(dim, dim * 3, has_bias=qkv_bias)
        self.q_norm = nn.Identity()
        self.k_norm = nn.Identity()
        self.proj = nn.Dense(dim, dim)
        self.attn_matmul_v = ops.BatchMatMul()
        self.q_matmul_k = ops.BatchMatMul(transpose_b=True)

    def construct(self, x: Tensor) -> Tensor:
        _, n, c = x.shape
        qkv = self.qkv(x)
        qkv = ops.reshape(qkv, (-1, n, 3, self.num_heads, self.head_dim))
        qkv = ops.transpose(qkv, (2, 0, 3, 1, 4))
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = self.q_matmul_k(q, k) * self.scale
        attn = ops.softmax(attn, axis=-1)
        out = self.attn_matmul_v(attn, v)
        out = ops.transpose(out, (0, 2, 1, 3))
        out = ops.reshape(out, (-1, n, c))
        return self.proj(out)


class Block(nn.Cell):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm((dim,))
        self.attn = Attention(dim, num_heads=num_heads, qkv_bias=qkv_bias)
        self.ls1 = nn.Identity()
        self.drop_path1 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm((dim,))
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = nn.Identity()
        self.drop_path2 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def construct(self, x: Tensor) -> Tensor:
        x = x + self.drop_path1(self.ls1(self.attn(self.norm1(x))))
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))


class VisionTransformer(nn.Cell):
    """MindCV's ViT classifier (class-token pooling); see `VisionTransformerFeatures` for the levels."""

    #: ``export --dynamic-size`` refuses a model that carries this reason
    dynamic_size_refusal = DYNAMIC_SIZE_REFUSAL

    def __init__(self, image_size: int = 224, patch_size: int = 16, in_channels: int = 3, embed_dim: int = 768,
                 depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path_rate: float = 0.0, num_classes: int = 1000) -> None:
        super().__init__()
        self.num_prefix_tokens = 1
        self.embed_dim = embed_dim
        self.patch_embed = PatchEmbed(image_size, patch_size, in_channels, embed_dim)
        self.grid_size = self.patch_embed.grid_size
        self.patch_size = patch_size
        self.cls_token = Parameter(Tensor(np.zeros((1, 1, embed_dim), np.float32)), name="cls_token")
        self.pos_embed = Parameter(Tensor(np.zeros((1, self.patch_embed.num_patches + 1, embed_dim), np.float32)),
                                   name="pos_embed")
        self.norm_pre = nn.Identity()
        dpr = np.linspace(0.0, drop_path_rate, depth).tolist()
        self.blocks = nn.CellList([
            Block(embed_dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop_path=dpr[i])
            for i in range(depth)
        ])
        self.depth = depth
        self._make_head(num_classes)

    def _make_head(self, num_classes: int) -> None:
        self.norm = nn.LayerNorm((self.embed_dim,))
        self.fc_norm = nn.Identity()
        self.head = nn.Dense(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()

    def init_extra_weights(self, rng: np.random.Generator) -> None:
        """Seeded class token and position embedding (not conv, dense or norm weights)."""
        for p in (self.cls_token, self.pos_embed):
            p.set_data(Tensor(rng.normal(0.0, TOKEN_INIT_STD, size=p.shape).astype(np.float32)))

    def _pos_embed(self, x: Tensor) -> Tensor:
        cls_tokens = x[:, :1, :] * 0.0 + self.cls_token  # (B, 1, C) without the batch in a shape
        return ops.concat((cls_tokens, x), axis=1) + self.pos_embed

    def forward_tokens(self, x: Tensor) -> Tensor:
        """Image -> the tokens ``(B, 1 + N, C)`` that enter the first block."""
        return self.norm_pre(self._pos_embed(self.patch_embed(x)))

    def to_map(self, x: Tensor) -> Tensor:
        """Tokens ``(B, 1 + N, C)`` -> the patch tokens as NCHW ``(B, C, H/patch, W/patch)``."""
        x = ops.transpose(x[:, self.num_prefix_tokens:, :], (0, 2, 1))
        return ops.reshape(x, (-1, self.embed_dim, self.grid_size[0], self.grid_size[1]))

    def from_map(self, level: Tensor, x: Tensor) -> Tensor:
        """The tokens ``x`` with their patch tokens taken from ``level`` (the same values, laid out again)."""
        # NHWC, then tokens: no reshape or transpose next to its inverse, which the graph compiler would fold away
        patches = ops.reshape(ops.transpose(level, (0, 2, 3, 1)),
                              (-1, self.grid_size[0] * self.grid_size[1], self.embed_dim))
        return ops.concat((x[:, :self.num_prefix_tokens, :], patches), axis=1)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.forward_tokens(x)
        for blk in self.blocks:
            x = blk(x)
            x = self.from_map(self.to_map(x), x)  # the level is a tensor of the classifier's graph
        return self.norm(x)

    def forward_head(self, x: Tensor) -> Tensor:
        return self.head(self.fc_norm(x[:, 0]))

    def construct(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def feature_view(self) -> nn.Cell:
        """The levels of `VisionTransformerFeatures` computed by this classifier's own cells (its head
        unused): the export's reference runs use it instead of building the network twice."""
        return levels_view(self, _feature_info(self.depth, self.embed_dim, self.patch_size))

    def forward_levels(self, x: Tensor) -> tuple:
        """Every block's patch tokens as an NCHW map."""
        x = self.forward_tokens(x)
        out = ()
        for blk in self.blocks:
            x = blk(x)
            out = out + (self.to_map(x),)
        return out


class VisionTransformerFeatures(HeadlessFeatures, VisionTransformer):
    """ViT as a feature pyramid: every block's patch tokens as NCHW maps; no final norm, no head."""

    init_like = VisionTransformer  # same seeded weights as the classifier: reuse its cached init

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.head_weight_size = self.embed_dim * max(int(kwargs.get("num_classes", 1000)), 0)
        self.feature_info = _feature_info(self.depth, self.embed_dim, self.patch_size)
        self.default_out_indices = DEFAULT_OUT_INDICES if self.depth == 12 else None


def _feature_info(depth: int, embed_dim: int, patch_size: int) -> list[dict]:
    return [dict(chs=embed_dim, reduction=patch_size, name=f"blocks.{i}") for i in range(depth)]


def _create_vit(pretrained: bool = False, **kwargs) -> nn.Cell:
    model_cls = VisionTransformerFeatures if kwargs.get("features_only", False) else VisionTransformer
    cfg = default_cfg(first_conv="patch_embed.proj", classifier="head",
                      input_size=(kwargs.get("in_channels", 3), kwargs.get("image_size", 224),
                                  kwargs.get("image_size", 224)))
    return build_model_with_cfg(model_cls, pretrained, default_cfg=cfg, **kwargs)


@register_model
def vit_b_16_224(pretrained: bool = False, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> nn.Cell:
    kwargs = {"image_size": 224, "patch_size": 16, "embed_dim": 768, "depth": 12, "num_heads": 12, **kwargs}
    return _create_vit(pretrained, num_classes=num_classes, in_channels=in_channels, **kwargs)
