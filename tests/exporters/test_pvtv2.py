"""PVTv2: MindCV's names and values, the NCHW stage levels, the export and its cut, any input size.

A reduced configuration (widths 16-64, one or two blocks a stage, 64x64 input) built through the same classes
keeps the default run cheap; ``pvt_v2_b0`` at full size is compared with a MindCV-saved checkpoint in the
default run too, ``pvt_v2_b1`` and ``pvt_v2_b2`` under ``--runslow``.
"""
from __future__ import annotations

from functools import partial

import numpy as np
import onnx
import pytest

pytest.importorskip("mindspore")

import mindspore as ms  # noqa: E402
from mindspore import Tensor, nn  # noqa: E402

import exporters  # noqa: E402
from exporters.models import pvtv2  # noqa: E402
from exporters.onnx_export import INPUT_NAME  # noqa: E402
from graphfeat.runtime import run_onnxruntime  # noqa: E402

from conftest import assert_close_rel, rand_images  # noqa: E402
from ms_helpers import (check_cut_everywhere, levels, register_for_test,  # noqa: E402
                        seeded_like_the_classifier)

SMALL = dict(embed_dims=(16, 32, 48, 64), num_heads=(1, 2, 3, 4), mlp_ratios=(2, 2, 2, 2), depths=(2, 1, 1, 1),
             sr_ratios=(8, 4, 2, 1), qkv_bias=True, num_classes=10)
SIZE = (64, 64)
NAMES = [f"norm_list.{i}" for i in range(4)]
#: MindCV's configurations of the registered variants (its creation functions fix them)
VARIANTS = {
    "pvt_v2_b0": dict(embed_dims=(32, 64, 160, 256), depths=(2, 2, 2, 2)),
    "pvt_v2_b1": dict(embed_dims=(64, 128, 320, 512), depths=(2, 2, 2, 2)),
    "pvt_v2_b2": dict(embed_dims=(64, 128, 320, 512), depths=(3, 4, 6, 3)),
}
_SHARED = dict(num_heads=(1, 2, 5, 8), mlp_ratios=(8, 8, 4, 4), sr_ratios=(8, 4, 2, 1), qkv_bias=True)


def _small_registered(monkeypatch) -> str:
    """The reduced configuration, registered for one test."""
    return register_for_test(monkeypatch, "pvt_v2_small_test", "pvtv2",
                             lambda pretrained=False, **kwargs: pvtv2._create_pvtv2(pretrained, **{**SMALL, **kwargs}))


def _mindcv(**kwargs) -> "ms.nn.Cell":
    """MindCV's own PVTv2 with the norm layer its creation functions pass."""
    from mindcv.models.pvtv2 import PyramidVisionTransformerV2 as MindCVPVTv2

    kwargs = {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}
    return MindCVPVTv2(patch_size=4, norm_layer=partial(nn.LayerNorm, epsilon=1e-6), **kwargs)


def _mindcv_levels(net, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """MindCV's logits and every stage norm's output (forward hooks, PYNATIVE), laid out as the zoo's levels."""
    stages: dict[int, np.ndarray] = {}
    handles = [norm.register_forward_hook(lambda cell, inp, out, i=i: stages.__setitem__(i, out.asnumpy()))
               for i, norm in enumerate(net.norm_list)]
    try:
        logits = net(Tensor(x)).asnumpy()
    finally:
        for h in handles:
            h.remove()
    maps, h, w = [], x.shape[2], x.shape[3]
    for i in range(len(stages)):
        stride = 4 if i == 0 else 2
        h, w = -(-h // stride), -(-w // stride)  # pad_mode "same"
        tokens = stages[i]
        maps.append(tokens.reshape(x.shape[0], h, w, tokens.shape[-1]).transpose(0, 3, 1, 2))
    return logits, maps


def _mindcv_checkpoint(path, **kwargs) -> "ms.nn.Cell":
    """MindCV's own PVTv2 with seeded weights, LayerNorm scales and shifts and biases re-randomised (its init
    leaves them at 1 or 0, which would hide a swapped or skipped norm), saved to ``path``."""
    ms.set_seed(0)
    net = _mindcv(**kwargs)
    net.set_train(False)
    rng = np.random.default_rng(5)
    for p in net.get_parameters():
        if p.name.endswith(".gamma"):
            p.set_data(Tensor(rng.uniform(0.5, 1.5, p.shape).astype(np.float32)))
        elif p.name.endswith((".beta", ".bias")):
            p.set_data(Tensor(rng.normal(0.0, 0.1, p.shape).astype(np.float32)))
    ms.save_checkpoint(net, str(path))
    return net


def _compare_with_mindcv(tmp_path, name: str, h: int, w: int, **kwargs) -> None:
    """A MindCV-saved checkpoint loads by exact names; logits and every level equal MindCV's."""
    ckpt = str(tmp_path / "mindcv_pvtv2.ckpt")
    net = _mindcv_checkpoint(ckpt, **kwargs)
    x = rand_images(2, h, w, seed=4)
    ref_logits, ref_maps = _mindcv_levels(net, x)  # the tests run in PYNATIVE mode (tests/conftest.py)
    ours = exporters.create_model(name, checkpoint_path=ckpt, **kwargs)
    assert ours.load_report.unused == [] and ours.load_report.mapped == {}
    assert [p.name for p in ours.get_parameters()] == [p.name for p in net.get_parameters()]
    assert_close_rel(ours(Tensor(x)).asnumpy(), ref_logits, 1e-4, "logits")
    feats = exporters.create_model(name, checkpoint_path=ckpt, features_only=True, **kwargs)
    assert sorted(feats.load_report.unused) == ["head.bias", "head.weight"]
    for level, got, want in zip(NAMES, levels(feats, x), ref_maps):
        assert float(want.std()) > 1e-2, level
        assert_close_rel(got, want, 1e-4, level)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_parameter_names_and_shapes_equal_mindcv(name):
    from exporters.init import deferred_parameters

    with deferred_parameters():
        theirs = _mindcv(**VARIANTS[name], **_SHARED)
        ours = exporters.create_model(name, init=False)
    assert [(p.name, p.shape) for p in ours.get_parameters()] == [(p.name, p.shape) for p in theirs.get_parameters()]


def test_feature_info_one_level_per_stage_norm():
    for name, chs in (("pvt_v2_b0", [32, 64, 160, 256]), ("pvt_v2_b1", [64, 128, 320, 512]),
                      ("pvt_v2_b2", [64, 128, 320, 512])):
        feats = exporters.create_model(name, features_only=True, init=False)
        assert feats.feature_info.module_name() == NAMES
        assert feats.feature_info.channels() == chs and feats.feature_info.reduction() == [4, 8, 16, 32]


def test_small_pvtv2_logits_and_levels_equal_mindcv(tmp_path):
    _compare_with_mindcv(tmp_path, "pvt_v2_b0", 64, 96, **SMALL)  # not square: H and W are not swapped


def test_pvt_v2_b0_mindcv_checkpoint_logits_and_levels_equal_mindcv(tmp_path):
    """The real-size configuration, loaded from a MindCV-saved checkpoint."""
    _compare_with_mindcv(tmp_path, "pvt_v2_b0", 64, 64, **VARIANTS["pvt_v2_b0"], **_SHARED, num_classes=1000)


def test_small_pvtv2_levels_are_nchw_and_seeded_like_the_classifier():
    got = seeded_like_the_classifier(pvtv2.PyramidVisionTransformerV2Features, pvtv2.PyramidVisionTransformerV2,
                                     SMALL, rand_images(2, 64, 96, seed=1))
    assert [g.shape for g in got] == [(2, c, 64 // (4 * 2 ** i), 96 // (4 * 2 ** i))
                                      for i, c in enumerate(SMALL["embed_dims"])]


def test_gelu_is_mindcv_gelu():
    """MindCV's ``nn.GELU()`` is the tanh approximation by default: the exportable ``layers.GELU`` is the same."""
    from exporters.models.layers import GELU

    x = Tensor(np.linspace(-6, 6, 241, dtype=np.float32))
    np.testing.assert_array_equal(GELU()(x).asnumpy(), nn.GELU()(x).asnumpy())


def _randomised(cell: nn.Cell, seed: int) -> nn.Cell:
    """``cell`` with every parameter drawn at random (weights, scales, shifts, biases)."""
    rng = np.random.default_rng(seed)
    for p in cell.get_parameters():
        p.set_data(Tensor(rng.normal(0.0 if not p.name.endswith("gamma") else 1.0, 0.3, p.shape).astype(np.float32)))
    cell.set_train(False)
    return cell


@pytest.mark.parametrize("sr_ratio", [2, 1])
def test_attention_on_the_map_equals_mindcv_attention_on_tokens(sr_ratio):
    """The NHWC, broadcasting attention equals MindCV's token attention on a non-square map."""
    from mindcv.models.pvtv2 import Attention as MindCVAttention

    h, w, dim = 6, 10, 48
    theirs = _randomised(MindCVAttention(dim, num_heads=3, qkv_bias=True, sr_ratio=sr_ratio), 1)
    ours = pvtv2.Attention(dim, num_heads=3, qkv_bias=True, sr_ratio=sr_ratio)
    ours.set_train(False)
    for mine, their in zip(ours.get_parameters(), theirs.get_parameters()):
        assert mine.name == their.name and mine.shape == their.shape
        mine.set_data(Tensor(their.asnumpy()))
    x = np.random.default_rng(2).standard_normal((2, h, w, dim)).astype(np.float32)
    want = theirs(Tensor(x.reshape(2, h * w, dim)), h, w).asnumpy().reshape(2, h, w, dim)
    got = ours(Tensor(x)).asnumpy()
    assert float(want.std()) > 1e-2
    assert_close_rel(got, want, 1e-4, f"attention sr_ratio={sr_ratio}")


def test_stage_norm_is_mindcv_layernorm_laid_out_nchw():
    """``StageNorm`` scales and shifts after the NCHW layout: MindCV's stage ``nn.LayerNorm``, then NCHW."""
    theirs = _randomised(nn.LayerNorm([24], epsilon=1e-6), 3)
    ours = pvtv2.StageNorm(24)
    ours.gamma.set_data(Tensor(theirs.gamma.asnumpy()))
    ours.beta.set_data(Tensor(theirs.beta.asnumpy()))
    x = np.random.default_rng(4).standard_normal((2, 5, 7, 24)).astype(np.float32) * 3.0 + 1.0
    want = theirs(Tensor(x)).asnumpy().transpose(0, 3, 1, 2)
    assert_close_rel(ours(Tensor(x)).asnumpy(), want, 1e-5, "stage norm")


def test_small_pvtv2_export_proves_every_level_and_the_cut_equals_mindspore(tmp_path, monkeypatch):
    name = _small_registered(monkeypatch)
    path = tmp_path / "pvt_small.onnx"
    ref = tmp_path / "pvt_small.npz"
    report = exporters.export_model(name, path, input_size=SIZE, seed=0, reference=ref)
    assert [lv["name"] for lv in report.levels] == NAMES
    assert report.worst_level_max_rel < 1e-4 and report.output_max_rel < 1e-4
    check_cut_everywhere(path, ref, name, ["norm_list.1", "norm_list.3"], [1, 3], tmp_path, SIZE)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["pvt_v2_b1", "pvt_v2_b2"])
def test_full_size_logits_and_levels_equal_mindcv(tmp_path, name):
    _compare_with_mindcv(tmp_path, name, 224, 224, **VARIANTS[name], **_SHARED, num_classes=1000)


@pytest.mark.slow
def test_small_pvtv2_dynamic_size_export_holds_at_another_size(tmp_path, monkeypatch):
    """No position embedding and no reshape that splits a spatial axis: one file serves every size (the default
    suite proves it on pvt_v2_b0 itself, in tests/integration/test_dynamic_size.py)."""
    name = _small_registered(monkeypatch)
    path = tmp_path / "pvt_small_dynamic.onnx"
    report = exporters.export_model(name, path, input_size=SIZE, seed=0, dynamic_size=True, second_size=(64, 96),
                                    features_only=True)
    assert report.dynamic_size and report.second_size_worst_rel < 1e-4 and report.worst_level_max_rel < 1e-4
    model = onnx.load(path)
    x = rand_images(2, 96, 128, seed=6)
    got = run_onnxruntime(model, {INPUT_NAME: x}, [o.name for o in model.graph.output])
    want = levels(exporters.create_model(name, seed=0, features_only=True), x)
    for out, expected, label in zip(model.graph.output, want, NAMES):
        assert_close_rel(got[out.name], expected, 1e-4, f"{label} at 96x128")
