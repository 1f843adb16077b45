"""ViT: MindCV's names and values, the NCHW block levels, the export and its cut, the --dynamic-size refusal.

A reduced configuration (4 blocks, width 192, 3 heads, 64x64 input: 4x4 patch tokens) built through the same
class keeps the default run cheap; the full ``vit_b_16_224`` runs under ``--runslow``.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mindspore")

import mindspore as ms  # noqa: E402
from mindspore import Tensor  # noqa: E402

import exporters  # noqa: E402
import graphfeat  # noqa: E402
from exporters.helpers import build_model_with_cfg  # noqa: E402
from exporters.models import vit  # noqa: E402
from graphfeat.errors import GraphfeatError  # noqa: E402

from conftest import assert_close_rel, rand_images  # noqa: E402
from ms_helpers import (check_cut_everywhere, levels, register_for_test,  # noqa: E402
                        seeded_like_the_classifier)

SMALL = dict(image_size=64, patch_size=16, embed_dim=192, depth=4, num_heads=3, num_classes=10)
SIZE = (64, 64)


def _small_registered(monkeypatch) -> str:
    """The reduced configuration, registered for one test."""
    return register_for_test(monkeypatch, "vit_small_test", "vit", lambda pretrained=False, **kwargs: vit._create_vit(
        pretrained, **{**SMALL, **kwargs}))


def _mindcv_levels(net, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """MindCV's logits and every block's output (forward hooks, PYNATIVE), reshaped as the zoo's levels."""
    blocks: dict[int, np.ndarray] = {}
    handles = [blk.register_forward_hook(lambda cell, inp, out, i=i: blocks.__setitem__(i, out.asnumpy()))
               for i, blk in enumerate(net.blocks)]
    try:
        logits = net(Tensor(x)).asnumpy()
    finally:
        for h in handles:
            h.remove()
    gh, gw = net.patch_embed.patches_resolution
    maps = [blocks[i][:, 1:, :].transpose(0, 2, 1).reshape(x.shape[0], -1, gh, gw) for i in range(len(blocks))]
    return logits, maps


def _mindcv_checkpoint(path, **kwargs) -> "ms.nn.Cell":
    """MindCV's own ViT with seeded weights, LayerNorm scales and shifts, biases and tokens re-randomised
    (its init leaves them at 1, 0 or tiny, which would hide a swapped or skipped norm), saved to ``path``."""
    from mindcv.models.vit import VisionTransformer as MindCVViT

    ms.set_seed(0)
    net = MindCVViT(**kwargs)
    net.set_train(False)
    rng = np.random.default_rng(5)
    for p in net.get_parameters():
        if p.name.endswith(".gamma"):
            p.set_data(Tensor(rng.uniform(0.5, 1.5, p.shape).astype(np.float32)))
        elif p.name.endswith((".beta", ".bias")) or p.name in ("cls_token", "pos_embed"):
            p.set_data(Tensor(rng.normal(0.0, 0.1, p.shape).astype(np.float32)))
    ms.save_checkpoint(net, str(path))
    return net


def _compare_with_mindcv(tmp_path, h: int, **kwargs) -> None:
    net = _mindcv_checkpoint(tmp_path / "mindcv_vit.ckpt", **kwargs)
    x = rand_images(2, h, h, seed=4)
    ref_logits, ref_maps = _mindcv_levels(net, x)
    ours = exporters.create_model("vit_b_16_224", checkpoint_path=str(tmp_path / "mindcv_vit.ckpt"), **kwargs)
    assert ours.load_report.unused == [] and ours.load_report.mapped == {}
    assert [p.name for p in ours.get_parameters()] == [p.name for p in net.get_parameters()]
    assert_close_rel(ours(Tensor(x)).asnumpy(), ref_logits, 1e-4, "logits")
    feats = exporters.create_model("vit_b_16_224", checkpoint_path=str(tmp_path / "mindcv_vit.ckpt"),
                                   features_only=True, **kwargs)
    assert sorted(feats.load_report.unused) == ["head.bias", "head.weight", "norm.beta", "norm.gamma"]
    for i, (got, want) in enumerate(zip(levels(feats, x), ref_maps)):
        assert_close_rel(got, want, 1e-4, f"blocks.{i}")


def test_parameter_names_and_shapes_equal_mindcv_vit_b_16_224():
    from mindcv.models.vit import VisionTransformer as MindCVViT

    from exporters.init import deferred_parameters

    with deferred_parameters():
        theirs = MindCVViT(weight_init=False)
        ours = exporters.create_model("vit_b_16_224", init=False)
    assert [(p.name, p.shape) for p in ours.get_parameters()] == [(p.name, p.shape) for p in theirs.get_parameters()]
    assert len(list(ours.get_parameters())) == 152


def test_feature_info_every_block_at_the_patch_stride_and_beit_levels_by_default():
    from exporters.init import deferred_parameters

    with deferred_parameters():  # the structure only
        _check_feature_info()


def _check_feature_info() -> None:
    every = exporters.create_model("vit_b_16_224", features_only=True, init=False, out_indices=range(12))
    assert every.feature_info.module_name() == [f"blocks.{i}" for i in range(12)]
    assert set(every.feature_info.reduction()) == {16} and set(every.feature_info.channels()) == {768}
    default = exporters.create_model("vit_b_16_224", features_only=True, init=False)
    assert default.feature_info.module_name() == ["blocks.3", "blocks.5", "blocks.7", "blocks.11"]
    assert len(default.feature_info.info) == 12
    vitdet = exporters.create_model("vit_b_16_224", features_only=True, init=False, out_indices=[-1])
    assert vitdet.feature_info.module_name() == ["blocks.11"]
    reduced = build_model_with_cfg(vit.VisionTransformerFeatures, False, features_only=True, init=False, **SMALL)
    assert reduced.feature_info.module_name() == [f"blocks.{i}" for i in range(4)]  # other depths: every block


def test_small_vit_logits_and_levels_equal_mindcv(tmp_path):
    _compare_with_mindcv(tmp_path, 64, **{k: v for k, v in SMALL.items()})


def test_small_vit_levels_are_nchw_patch_tokens_and_seeded_like_the_classifier():
    got = seeded_like_the_classifier(vit.VisionTransformerFeatures, vit.VisionTransformer, SMALL,
                                     rand_images(2, *SIZE, seed=1))
    assert [g.shape for g in got] == [(2, 192, 4, 4)] * 4


def test_gelu_is_mindcv_gelu():
    """MindCV's ``nn.GELU()`` is the tanh approximation by default: the exportable ``layers.GELU`` is the same."""
    from mindspore import nn

    from exporters.models.layers import GELU

    x = Tensor(np.linspace(-6, 6, 241, dtype=np.float32))
    np.testing.assert_array_equal(GELU()(x).asnumpy(), nn.GELU()(x).asnumpy())


def test_small_vit_export_proves_every_level_and_the_cut_equals_mindspore(tmp_path, monkeypatch):
    name = _small_registered(monkeypatch)
    path = tmp_path / "vit_small.onnx"
    ref = tmp_path / "vit_small.npz"
    report = exporters.export_model(name, path, input_size=SIZE, seed=0, reference=ref)
    assert [lv["name"] for lv in report.levels] == [f"blocks.{i}" for i in range(4)]
    assert report.worst_level_max_rel < 1e-4 and report.output_max_rel < 1e-4
    check_cut_everywhere(path, ref, name, ["blocks.1", "blocks.3"], [1, 3], tmp_path, SIZE)


def test_a_12_block_features_only_export_records_the_default_levels(tmp_path, monkeypatch):
    """The default selection reaches the file: a features-only export of a 12-block ViT (narrow, 32 px) has the
    BEiT levels as its outputs, each proven against MindSpore."""
    narrow = dict(SMALL, image_size=32, embed_dim=48, depth=12, num_heads=2)
    register_for_test(monkeypatch, "vit_12_test", "vit",
                      lambda pretrained=False, **kw: vit._create_vit(pretrained, **{**narrow, **kw}))
    report = exporters.export_model("vit_12_test", tmp_path / "v12.onnx", input_size=(32, 32), seed=0,
                                    features_only=True)
    assert [lv["name"] for lv in report.levels] == ["blocks.3", "blocks.5", "blocks.7", "blocks.11"]
    assert report.worst_level_max_rel < 1e-4
    assert graphfeat.feature_info(str(tmp_path / "v12.onnx")).module_name() == [lv["name"] for lv in report.levels]


def test_dynamic_size_is_refused_with_the_reason(tmp_path):
    feats = build_model_with_cfg(vit.VisionTransformerFeatures, False, seed=0, **SMALL)
    with pytest.raises(GraphfeatError, match="position embedding") as err:
        exporters.export_model(feats, tmp_path / "v.onnx", input_size=SIZE, dynamic_size=True)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "v.onnx").exists()


@pytest.mark.slow
def test_vit_b_16_224_logits_and_levels_equal_mindcv(tmp_path):
    _compare_with_mindcv(tmp_path, 224, image_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12)
