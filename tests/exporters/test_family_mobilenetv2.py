"""MobileNetV2: exact feature_info (the last block of each stride), MindCV parameter names, residuals.

Structural tests build with ``init=False`` (no compile); the numeric test shares
the seeded ``mobilenet_v2_100`` models of the lead's matrices at 64x64.
"""
import numpy as np
import pytest
from mindspore import Tensor, nn

import exporters
from exporters.models import mobilenetv2

from conftest import rand_images
from ms_helpers import classifier, features, levels

EXPECTED = [("features.3", 16, 2), ("features.5", 24, 4), ("features.8", 32, 8), ("features.15", 96, 16),
            ("features.19", 320, 32)]
PARAMS = {
    "features.0.weight": (32, 3, 3, 3),
    "features.1.gamma": (32,),
    "features.3.layers.0.weight": (32, 1, 3, 3),  # expansion 1: depthwise first
    "features.3.layers.3.weight": (16, 32, 1, 1),
    "features.4.layers.0.weight": (96, 16, 1, 1),  # expand
    "features.4.layers.3.weight": (96, 1, 3, 3),  # depthwise
    "features.4.layers.6.weight": (24, 96, 1, 1),  # project
    "features.4.layers.7.moving_variance": (24,),
    "features.19.layers.6.weight": (320, 960, 1, 1),
    "features.20.weight": (1280, 320, 1, 1),
    "features.21.beta": (1280,),
    "classifier.1.weight": (1000, 1280),
    "classifier.1.bias": (1000,),
}


@pytest.fixture(scope="module")
def model():
    return exporters.create_model("mobilenet_v2_100", init=False)


def test_registered_variants():
    assert exporters.list_models(family="mobilenetv2") == ["mobilenet_v2_100"]


def test_feature_info_entries(model):
    assert model.feature_info == [dict(chs=c, reduction=r, name=n) for n, c, r in EXPECTED]
    assert model.flatten_sequential is True
    feat = exporters.create_model("mobilenet_v2_100", features_only=True, init=False)
    assert feat.feature_info.get_dicts() == model.feature_info
    assert len(feat.net.cell_list) == 20  # the head conv (features.20..22) is never built into it


def test_each_level_ends_its_stride(model):
    blocks = list(model.features.cell_list)
    for name, _, _ in EXPECTED:
        k = int(name.split(".")[1])
        assert isinstance(blocks[k], mobilenetv2.InvertedResidual), name
        following = blocks[k + 1]
        if isinstance(following, mobilenetv2.InvertedResidual):
            depthwise = following.layers[3] if len(following.layers) == 8 else following.layers[0]
            assert depthwise.stride == (2, 2), f"{name} is followed by a stride-1 block: not a stage end"
        else:
            assert k == 19 and isinstance(following, nn.Conv2d)


def test_mindcv_parameter_names_and_count(model):
    params = {p.name: tuple(p.shape) for p in model.get_parameters()}
    for name, shape in PARAMS.items():
        assert params.get(name) == shape, name
    assert sum(int(np.prod(s)) for n, s in params.items() if "moving_" not in n) == 3_504_872


@pytest.mark.parametrize("alpha, chs", [(0.75, [16, 24, 24, 72, 240]), (1.4, [24, 32, 48, 136, 448])])
def test_width_multiplier_channels(alpha, chs):
    net = mobilenetv2.MobileNetV2(alpha=alpha)
    assert [e["chs"] for e in net.feature_info] == chs
    assert [e["reduction"] for e in net.feature_info] == [2, 4, 8, 16, 32]


def test_residual_only_when_shapes_match():
    assert mobilenetv2.InvertedResidual(24, 24, 1, 6).use_res_connect
    assert not mobilenetv2.InvertedResidual(24, 24, 2, 6).use_res_connect
    assert not mobilenetv2.InvertedResidual(16, 24, 1, 6).use_res_connect
    with pytest.raises(ValueError, match="stride"):
        mobilenetv2.InvertedResidual(16, 16, 3, 6)


def test_levels_equal_the_classifier_forward():
    full = classifier("mobilenet_v2_100")
    x = rand_images(1, 64, 64, seed=6)
    got = levels(features("mobilenet_v2_100"), x)
    y, manual = Tensor(x), {}
    for k, cell in enumerate(full.features.cell_list[:20]):
        y = cell(y)
        manual[f"features.{k}"] = y.asnumpy()
    for (name, _, _), g in zip(EXPECTED, got):
        np.testing.assert_allclose(g, manual[name], rtol=1e-5, atol=1e-5 * float(np.abs(manual[name]).max()))
