"""VGG: exact feature_info (the five max-pools), MindCV parameter names, the exportable head pooling.

Structural tests build through the registry with ``init=False`` (no seeded
weights, no BatchNorm calibration): they compile nothing. The numeric tests
share one seeded ``vgg11`` feature model at 64x64.
"""
import numpy as np
import pytest
from mindspore import Tensor, nn

import exporters
from exporters.models import vgg

from conftest import rand_images
from ms_helpers import features, levels

VGG11 = [("features.2", 64, 2), ("features.5", 128, 4), ("features.10", 256, 8), ("features.15", 512, 16),
         ("features.20", 512, 32)]
VGG16 = [("features.4", 64, 2), ("features.9", 128, 4), ("features.16", 256, 8), ("features.23", 512, 16),
         ("features.30", 512, 32)]
VGG11_BN = [("features.3", 64, 2), ("features.7", 128, 4), ("features.14", 256, 8), ("features.21", 512, 16),
            ("features.28", 512, 32)]
VGG16_BN = [("features.6", 64, 2), ("features.13", 128, 4), ("features.23", 256, 8), ("features.33", 512, 16),
            ("features.43", 512, 32)]
EXPECTED = {"vgg11": VGG11, "vgg16": VGG16, "vgg11_bn": VGG11_BN, "vgg16_bn": VGG16_BN}
# (parameters without BatchNorm moving statistics, a few MindCV names with shapes)
PARAMS = {
    "vgg11": (132_860_584, {"features.0.weight": (64, 3, 3, 3), "features.18.weight": (512, 512, 3, 3),
                            "classifier.0.weight": (4096, 25088), "classifier.3.bias": (4096,),
                            "classifier.6.weight": (1000, 4096)}),
    "vgg16": (138_353_320, {"features.28.weight": (512, 512, 3, 3), "classifier.6.bias": (1000,)}),
    "vgg11_bn": (132_866_088, {"features.0.weight": (64, 3, 3, 3), "features.1.gamma": (64,),
                               "features.1.moving_mean": (64,), "features.25.weight": (512, 512, 3, 3),
                               "features.26.moving_variance": (512,)}),
    "vgg16_bn": (138_361_768, {"features.40.weight": (512, 512, 3, 3), "features.41.beta": (512,)}),
}


@pytest.fixture(scope="module")
def models():
    return {name: exporters.create_model(name, init=False) for name in EXPECTED}


def test_registered_variants():
    assert exporters.list_models(family="vgg") == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_feature_info_is_the_five_max_pools(models, name):
    model = models[name]
    assert model.feature_info == [dict(chs=c, reduction=r, name=n) for n, c, r in EXPECTED[name]]
    assert model.flatten_sequential is True
    cells = dict(model.features.name_cells())
    for n, _, _ in EXPECTED[name]:
        assert isinstance(cells[n.split(".")[1]], nn.MaxPool2d), n
    assert len(cells) - 1 == int(EXPECTED[name][-1][0].split(".")[1]), "the last pool ends features"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_mindcv_parameter_names(models, name):
    count, names = PARAMS[name]
    params = {p.name: tuple(p.shape) for p in models[name].get_parameters()}
    for pname, shape in names.items():
        assert params.get(pname) == shape, pname
    assert not [n for n in params if n.startswith("features.") and n.endswith(".bias")], "MindCV convs have no bias"
    assert sum(int(np.prod(s)) for n, s in params.items() if "moving_" not in n) == count


def test_features_only_is_flattened_and_truncated():
    feat = exporters.create_model("vgg11_bn", features_only=True, out_indices=[1], init=False)
    assert feat.feature_info.module_name() == ["features.7"]
    assert len(feat.net.cell_list) == 8  # features_0 .. features_7
    names = {p.name for p in feat.get_parameters()}
    assert "features_4.weight" in names and "features_5.gamma" in names
    assert not [n for n in names if n.startswith(("features.", "features_8", "classifier"))]


@pytest.mark.parametrize("size, out", [((7, 7), (7, 7)), ((2, 3), (7, 7)), ((10, 9), (7, 7))])
def test_adaptive_pool_7_equals_the_windowed_mean(size, out):
    x = np.random.default_rng(0).standard_normal((1, 2, *size)).astype(np.float32)
    pool = vgg.AdaptiveAvgPool7()
    got = pool(Tensor(x)).asnumpy()
    assert got.shape == (1, 2, *out)
    want = np.empty((1, 2, 7, 7), np.float32)
    for i in range(7):
        h0, h1 = vgg._window(i, size[0], 7)
        for j in range(7):
            w0, w1 = vgg._window(j, size[1], 7)
            want[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    if size == (7, 7):
        np.testing.assert_array_equal(got, x)  # MindCV's head at 224x224 is unchanged


def test_levels_are_the_pools_of_the_classifier_forward():
    feat = features("vgg11")
    x = rand_images(1, 64, 64, seed=4)
    got = levels(feat, x)
    y, manual = Tensor(x), []
    for k, cell in enumerate(feat.net.cell_list):
        y = cell(y)
        if isinstance(cell, nn.MaxPool2d):
            manual.append(y.asnumpy())
    assert len(manual) == 5
    for g, m in zip(got, manual):
        np.testing.assert_allclose(g, m, rtol=1e-5, atol=1e-5 * float(np.abs(m).max()))
