"""MobileViT: MindCV's names and values, the exportable bilinear resize, the export and its cut, the
--dynamic-size refusal.

``mobilevit_xx_small`` runs at full size in the default suite, from a checkpoint saved by MindCV's own model,
on a 96x160 input (``layer_5`` is 3x5: resized to 4x6 for the 2x2 patches and back, and the patch grid is not
square) and exported at 96x96 (``layer_5`` 3x3). The other two variants are compared with MindCV, and
``mobilevit_small`` exported at 224x224 (``layer_5`` 7x7), under ``--runslow``.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest

pytest.importorskip("mindspore")

import mindspore as ms  # noqa: E402
from mindspore import Tensor  # noqa: E402

import exporters  # noqa: E402
from exporters.models import mobilevit  # noqa: E402
from graphfeat.errors import GraphfeatError  # noqa: E402

from conftest import assert_close_rel, rand_images  # noqa: E402
from ms_helpers import check_cut_everywhere, levels  # noqa: E402

MODELS = ["mobilevit_xx_small", "mobilevit_x_small", "mobilevit_small"]
LAYERS = [f"layer_{i}" for i in range(1, 6)]
SIZE = (96, 96)  # layer_5 is 3x3: resized to 4x4 for the patches and back
MINDCV_SIZE = (96, 160)  # layer_5 is 3x5, on a grid that is not square
#: MindCV's channels of layer_1 .. layer_5 (its get_config)
CHANNELS = {"mobilevit_xx_small": [16, 24, 48, 64, 80], "mobilevit_x_small": [32, 48, 64, 80, 96],
            "mobilevit_small": [32, 64, 96, 128, 160]}


def _mindcv_checkpoint(name: str, path) -> "ms.nn.Cell":
    """MindCV's own model with seeded weights, then every norm's scale, shift and running statistics, every
    bias, and the dense weights (MindCV's TruncatedNormal(0.02) would make the transformers nearly inert)
    re-randomised, saved to ``path``."""
    from mindcv.models import mobilevit as mindcv_mobilevit

    ms.set_seed(0)
    net = getattr(mindcv_mobilevit, name)()
    net.set_train(False)
    rng = np.random.default_rng(5)
    dense = {f"{n}.weight" for n, c in net.cells_and_names() if isinstance(c, ms.nn.Dense)}
    for p in net.get_parameters():
        if p.name.endswith((".gamma", ".moving_variance")):
            p.set_data(Tensor(rng.uniform(0.5, 1.5, p.shape).astype(np.float32)))
        elif p.name.endswith((".beta", ".bias", ".moving_mean")):
            p.set_data(Tensor(rng.normal(0.0, 0.1, p.shape).astype(np.float32)))
        elif p.name in dense:
            p.set_data(Tensor(rng.normal(0.0, p.shape[1] ** -0.5, p.shape).astype(np.float32)))
    ms.save_checkpoint(net, str(path))
    return net


def _mindcv_levels(net, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """MindCV's logits and the outputs of ``layer_1`` .. ``layer_5`` (forward hooks, PYNATIVE)."""
    out: dict[str, np.ndarray] = {}
    handles = [getattr(net, n).register_forward_hook(lambda cell, inp, o, n=n: out.__setitem__(n, o.asnumpy()))
               for n in LAYERS]
    try:
        logits = net(Tensor(x)).asnumpy()
    finally:
        for h in handles:
            h.remove()
    return logits, [out[n] for n in LAYERS]


def _compare_with_mindcv(tmp_path, name: str, size: tuple) -> None:
    ckpt = tmp_path / f"mindcv_{name}.ckpt"
    net = _mindcv_checkpoint(name, ckpt)
    x = rand_images(2, *size, seed=4)
    ref_logits, ref_levels = _mindcv_levels(net, x)
    ours = exporters.create_model(name, checkpoint_path=str(ckpt))
    assert ours.load_report.unused == [] and ours.load_report.mapped == {}
    assert [p.name for p in ours.get_parameters()] == [p.name for p in net.get_parameters()]
    assert float(ref_logits.std()) > 1e-2
    assert_close_rel(ours(Tensor(x)).asnumpy(), ref_logits, 1e-4, "logits")
    feats = exporters.create_model(name, checkpoint_path=str(ckpt), features_only=True)
    assert all(n.startswith(("conv_1x1_exp.", "classifier.")) for n in feats.load_report.unused)
    for layer, got, want, chs in zip(LAYERS, levels(feats, x), ref_levels, CHANNELS[name]):
        assert want.shape[1] == chs and 1e-2 < float(want.std()) < 1e2, (layer, want.shape, want.std())
        assert_close_rel(got, want, 1e-4, layer)


@pytest.mark.parametrize("name", MODELS)
def test_parameter_names_and_shapes_equal_mindcv(name):
    from mindcv.models import mobilevit as mindcv_mobilevit

    from exporters.init import deferred_parameters

    with deferred_parameters():
        theirs = getattr(mindcv_mobilevit, name)()
        ours = exporters.create_model(name, init=False)
    assert [(p.name, p.shape) for p in ours.get_parameters()] == [(p.name, p.shape) for p in theirs.get_parameters()]


@pytest.mark.parametrize("name", MODELS)
def test_feature_info_is_each_layer_at_strides_2_to_32(name):
    feats = exporters.create_model(name, features_only=True, init=False)
    assert feats.feature_info.module_name() == LAYERS
    assert feats.feature_info.reduction() == [2, 4, 8, 16, 32]
    assert feats.feature_info.channels() == CHANNELS[name]
    assert list(feats.net.name_cells()) == ["conv_1", *LAYERS]  # truncated: no conv_1x1_exp, no classifier


@pytest.mark.parametrize("shape,size", [((2, 4, 7, 7), (8, 8)), ((2, 4, 8, 8), (7, 7)), ((1, 3, 5, 7), (6, 8)),
                                        ((1, 3, 6, 8), (5, 7)), ((1, 2, 3, 3), (4, 4))])
def test_bilinear_resize_equals_mindcv_interpolate(shape, size):
    """The exportable resize (two MatMuls) is MindCV's ``Interpolate(mode="bilinear", align_corners=True)``."""
    from mindcv.models.layers.compatibility import Interpolate

    x = Tensor(rand_images(shape[0], shape[2], shape[3], channels=shape[1], seed=sum(size)))
    want = Interpolate(mode="bilinear", align_corners=True)(x, size=size).asnumpy()
    assert want.shape == shape[:2] + size
    assert_close_rel(mobilevit.bilinear_resize(x, size).asnumpy(), want, 1e-5, f"{shape} -> {size}")


def test_mobilevit_xx_small_logits_and_levels_equal_mindcv(tmp_path):
    _compare_with_mindcv(tmp_path, "mobilevit_xx_small", MINDCV_SIZE)


def _export_proves_every_level(path, name: str, size: tuple, reference=None) -> None:
    report = exporters.export_model(name, path, input_size=size, seed=0, reference=reference)
    assert [lv["name"] for lv in report.levels] == LAYERS
    assert report.worst_level_max_rel < 1e-4 and report.output_max_rel < 1e-4
    model = onnx.load(str(path), load_external_data=False)
    assert "Resize" not in {n.op_type for n in model.graph.node}  # the resize is MatMuls


def test_mobilevit_xx_small_export_proves_every_level_and_the_cut_equals_mindspore(tmp_path):
    path, ref = tmp_path / "mvit.onnx", tmp_path / "mvit.npz"
    _export_proves_every_level(path, "mobilevit_xx_small", SIZE, reference=ref)
    check_cut_everywhere(path, ref, "mobilevit_xx_small", ["layer_2", "layer_5"], [1, 4], tmp_path, SIZE)


def test_dynamic_size_is_refused_with_the_reason(tmp_path):
    with pytest.raises(GraphfeatError, match="MobileViT block resizes") as err:
        exporters.export_model("mobilevit_xx_small", tmp_path / "m.onnx", input_size=(64, 64), dynamic_size=True)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS[1:])
def test_logits_and_levels_equal_mindcv_at_224(tmp_path, name):
    _compare_with_mindcv(tmp_path, name, (224, 224))


@pytest.mark.slow
def test_mobilevit_small_export_at_224_proves_every_level(tmp_path):
    _export_proves_every_level(tmp_path / "mvit_s.onnx", "mobilevit_small", (224, 224))
