"""Swin Transformer: MindCV's names and values, the NCHW stage levels, the exportable roll, the export and its
cut, the --dynamic-size refusal.

A reduced configuration (128x128 input, width 24, depths 2-2-2-2, window 4: stages of 32, 16, 8 and 4 tokens a
side, the first three with shifted windows and masks) built through the same classes keeps the default run
cheap. One full-size ``swin_tiny`` MindCV checkpoint is loaded in the default run; the full-size export runs
under ``--runslow``.
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
from exporters.models import swin  # noqa: E402
from graphfeat.errors import GraphfeatError  # noqa: E402

from conftest import assert_close_rel, rand_images  # noqa: E402
from ms_helpers import (check_cut_everywhere, levels, register_for_test,  # noqa: E402
                        seeded_like_the_classifier)

SMALL = dict(image_size=128, patch_size=4, embed_dim=24, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), window_size=4,
             num_classes=10)
SIZE = (128, 128)
NAMES = [f"layers.{i}" for i in range(4)]
TINY = dict(image_size=224, patch_size=4, embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), window_size=7)


def _small_registered(monkeypatch) -> str:
    """The reduced configuration, registered for one test."""
    return register_for_test(monkeypatch, "swin_small_test", "swin",
                             lambda pretrained=False, **kwargs: swin._create_swin(pretrained, **{**SMALL, **kwargs}))


def _mindcv_swin(**kwargs) -> "ms.nn.Cell":
    """MindCV's own ``SwinTransformer`` (its argument names), seeded, in eval mode."""
    from mindcv.models.swintransformer import SwinTransformer as MindCVSwin

    ms.set_seed(0)
    np.random.seed(0)  # MindCV draws its bias tables with np.random
    kw = dict(kwargs)
    kw["in_chans"] = kw.pop("in_channels", 3)
    kw["depths"], kw["num_heads"] = list(kw["depths"]), list(kw["num_heads"])
    net = MindCVSwin(**kw)
    net.set_train(False)
    return net


def _mindcv_levels(net, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """MindCV's logits and each stage's last block output (forward hooks, PYNATIVE) laid out as NCHW."""
    outs: dict[int, np.ndarray] = {}
    handles = []
    for i, layer in enumerate(net.layers):
        last = layer.blocks[len(layer.blocks) - 1]
        handles.append(last.register_forward_hook(lambda cell, inp, out, i=i: outs.__setitem__(i, out.asnumpy())))
    try:
        logits = net(Tensor(x)).asnumpy()
    finally:
        for h in handles:
            h.remove()
    maps = []
    for i, layer in enumerate(net.layers):
        h, w = layer.input_resolution
        maps.append(outs[i].transpose(0, 2, 1).reshape(x.shape[0], -1, h, w))
    return logits, maps


def _mindcv_checkpoint(path, **kwargs) -> "ms.nn.Cell":
    """MindCV's own Swin with every weight re-randomised at unit gain, LayerNorm scales and shifts and biases
    non-trivial (its init gives 0.02-scale weights, norms at 1 and 0, which would hide a swapped or skipped
    cell), saved to ``path``. Its constants (``index``, ``attn_mask``) are kept."""
    net = _mindcv_swin(**kwargs)
    rng = np.random.default_rng(5)
    for p in net.get_parameters():
        if p.name.endswith(".gamma"):
            value = rng.uniform(0.5, 1.5, p.shape)
        elif p.name.endswith((".beta", ".bias")):
            value = rng.normal(0.0, 0.1, p.shape)
        elif p.name.endswith(".weight"):
            value = rng.normal(0.0, 1.0 / np.sqrt(np.prod(p.shape[1:])), p.shape)
        elif p.name.endswith("relative_position_bias_table"):
            value = rng.normal(0.0, 1.0, p.shape)
        else:
            continue
        p.set_data(Tensor(value.astype(np.float32)))
    ms.save_checkpoint(net, str(path))
    return net


def _compare_with_mindcv(tmp_path, batch: int, **kwargs) -> None:
    """Load a MindCV checkpoint by exact names into the classifier and the feature class; logits and levels."""
    ckpt = str(tmp_path / "mindcv_swin.ckpt")
    net = _mindcv_checkpoint(ckpt, **kwargs)
    h = kwargs["image_size"]
    x = rand_images(batch, h, h, seed=4)
    ref_logits, ref_maps = _mindcv_levels(net, x)
    ours = exporters.create_model("swin_tiny", checkpoint_path=ckpt, **kwargs)
    assert ours.load_report.unused == [] and ours.load_report.mapped == {}
    assert [p.name for p in ours.get_parameters()] == [p.name for p in net.get_parameters()]
    assert float(ref_logits.std()) > 1e-2
    assert_close_rel(ours(Tensor(x)).asnumpy(), ref_logits, 1e-4, "logits")
    feats = exporters.create_model("swin_tiny", checkpoint_path=ckpt, features_only=True, **kwargs)
    assert sorted(feats.load_report.unused) == ["classifier.bias", "classifier.weight", "norm.beta", "norm.gamma"]
    got = levels(feats, x)
    assert len(got) == 4
    for name, g, want in zip(NAMES, got, ref_maps):
        assert float(want.std()) > 1e-2, name
        assert_close_rel(g, want, 1e-4, name)


def test_parameter_names_and_shapes_equal_mindcv_swin_tiny():
    from mindcv.models.swintransformer import swin_tiny as mindcv_swin_tiny

    from exporters.init import deferred_parameters

    with deferred_parameters():
        theirs = mindcv_swin_tiny()
        ours = exporters.create_model("swin_tiny", init=False)
    assert [(p.name, p.shape, p.requires_grad) for p in ours.get_parameters()] == \
        [(p.name, p.shape, p.requires_grad) for p in theirs.get_parameters()]
    assert len(list(ours.get_parameters())) == 238
    assert [name for name, _ in ours.cells_and_names() if name.count(".") == 1 and name.startswith("layers.")] \
        == NAMES


def test_feature_info_each_stage_before_patch_merging():
    feats = exporters.create_model("swin_tiny", features_only=True, init=False)
    assert feats.feature_info.module_name() == NAMES
    assert feats.feature_info.channels() == [96, 192, 384, 768]
    assert feats.feature_info.reduction() == [4, 8, 16, 32]


def test_constants_equal_mindcv():
    """The relative position index, its one-hot ``index`` and the shifted-window ``attn_mask`` are built here,
    not loaded: the seeded model's values must be MindCV's (the checkpoint comparisons load MindCV's)."""
    theirs = _mindcv_swin(**SMALL)
    ours = build_model_with_cfg(swin.SwinTransformer, False, seed=0, **SMALL)
    consts = {p.name: p.asnumpy() for p in theirs.get_parameters() if not p.requires_grad}
    assert len([n for n in consts if n.endswith("attn_mask")]) == 3  # one shifted block in each of stages 0-2
    mine = {p.name: p.asnumpy() for p in ours.get_parameters() if not p.requires_grad}
    assert sorted(mine) == sorted(consts)
    for name, value in consts.items():
        np.testing.assert_array_equal(mine[name], value, err_msg=name)
    mine_rb = [c for _, c in ours.cells_and_names() if isinstance(c, swin.RelativeBias)]
    theirs_rb = [c for _, c in theirs.cells_and_names() if type(c).__name__ == "RelativeBias"]
    assert len(mine_rb) == len(theirs_rb) == 8
    for a, b in zip(mine_rb, theirs_rb):
        np.testing.assert_array_equal(a.relative_position_index, b.relative_position_index.asnumpy())


def test_roll_is_mindcv_roll():
    """The exportable cyclic shift (slices and concats) is MindCV's ``numpy.roll``, both ways, exactly."""
    from mindcv.models.swintransformer import Roll as MindCVRoll

    x = Tensor(rand_images(2, 8, 12, channels=5, seed=2).transpose(0, 2, 3, 1))  # (B, H, W, C), H != W
    for shift in (2, -2, 3, -1):
        np.testing.assert_array_equal(swin.Roll(shift, (8, 12))(x).asnumpy(), MindCVRoll(shift)(x).asnumpy(),
                                      err_msg=f"shift {shift}")


def test_gelu_is_mindcv_gelu():
    """MindCV's ``nn.GELU()`` is the tanh approximation by default: the exportable ``layers.GELU`` is the same."""
    from mindspore import nn

    from exporters.models.layers import GELU

    x = Tensor(np.linspace(-6, 6, 241, dtype=np.float32))
    np.testing.assert_array_equal(GELU()(x).asnumpy(), nn.GELU()(x).asnumpy())


def test_small_swin_logits_and_levels_equal_mindcv(tmp_path):
    _compare_with_mindcv(tmp_path, 2, **SMALL)


def test_swin_tiny_mindcv_checkpoint_logits_and_levels_at_224(tmp_path):
    """The real size: MindCV's ``swin_tiny`` layout (window 7, 56-28-14-7 tokens a side) at 224x224."""
    _compare_with_mindcv(tmp_path, 1, **TINY)


def test_small_swin_levels_are_nchw_and_seeded_like_the_classifier():
    got = seeded_like_the_classifier(swin.SwinTransformerFeatures, swin.SwinTransformer, SMALL,
                                     rand_images(2, *SIZE, seed=1))
    assert [g.shape for g in got] == [(2, 24 * 2 ** i, 32 // 2 ** i, 32 // 2 ** i) for i in range(4)]


def test_small_swin_export_proves_every_level_and_the_cut_equals_mindspore(tmp_path, monkeypatch):
    name = _small_registered(monkeypatch)
    path = tmp_path / "swin_small.onnx"
    ref = tmp_path / "swin_small.npz"
    report = exporters.export_model(name, path, input_size=SIZE, seed=0, reference=ref)
    assert [lv["name"] for lv in report.levels] == NAMES
    assert report.worst_level_max_rel < 1e-4 and report.output_max_rel < 1e-4
    check_cut_everywhere(path, ref, name, ["layers.1", "layers.3"], [1, 3], tmp_path, SIZE)


def test_dynamic_size_is_refused_with_the_reason(tmp_path):
    feats = build_model_with_cfg(swin.SwinTransformerFeatures, False, seed=0, **SMALL)
    with pytest.raises(GraphfeatError, match="windows") as err:
        exporters.export_model(feats, tmp_path / "s.onnx", input_size=SIZE, dynamic_size=True)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "s.onnx").exists()


@pytest.mark.slow
def test_swin_tiny_export_proves_every_level(tmp_path):
    path = tmp_path / "swin_tiny.onnx"
    ref = tmp_path / "swin_tiny.npz"
    report = exporters.export_model("swin_tiny", path, input_size=(224, 224), seed=0, reference=ref)
    assert [lv["name"] for lv in report.levels] == NAMES
    assert report.worst_level_max_rel < 1e-4 and report.output_max_rel < 1e-4
    cut_path = graphfeat.cut_file(path, tmp_path / "swin_tiny.features.onnx", layers=NAMES)
    verdict = graphfeat.verify(cut_path, reference=ref, runtime="onnxruntime")
    assert verdict.ok and [m.name for m in verdict.levels] == NAMES, verdict

