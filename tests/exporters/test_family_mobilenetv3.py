"""MobileNetV3: exact feature_info, MindCV parameter names, the scenario-2 rename, exportable activations.

Models are built through the registry with the random init switched off
(``init_weights`` runs BatchNorm calibration, a graph compile), so the
structural tests cost no compile at all.
"""
import numpy as np
import pytest
from mindspore import Tensor, nn

import exporters
from exporters.models import layers, mobilenetv3

SMALL = [
    ("features.2", 16, 2), ("features.3", 16, 4), ("features.4", 24, 8), ("features.5", 24, 8),
    ("features.6", 40, 16), ("features.7", 40, 16), ("features.8", 40, 16), ("features.9", 48, 16),
    ("features.10", 48, 16), ("features.11", 96, 32), ("features.12", 96, 32), ("features.13", 96, 32),
    ("features.16", 576, 32),
]
LARGE = [
    ("features.2", 16, 2), ("features.3", 16, 2), ("features.4", 24, 4), ("features.5", 24, 4),
    ("features.6", 40, 8), ("features.7", 40, 8), ("features.8", 40, 8), ("features.9", 80, 16),
    ("features.10", 80, 16), ("features.11", 80, 16), ("features.12", 80, 16), ("features.13", 112, 16),
    ("features.14", 112, 16), ("features.15", 160, 32), ("features.16", 160, 32), ("features.17", 160, 32),
    ("features.20", 960, 32),
]
EXPECTED = {"mobilenet_v3_small_100": SMALL, "mobilenet_v3_large_100": LARGE}

# Representative MindCV parameter names with their shapes.
PARAMS = {
    "mobilenet_v3_small_100": {
        "features.0.weight": (16, 3, 3, 3),
        "features.1.gamma": (16,),
        "features.1.moving_variance": (16,),
        "features.3.layers.0.weight": (16, 1, 3, 3),  # no expand conv: depthwise first
        "features.3.layers.3.conv_reduce.weight": (8, 16, 1, 1),
        "features.3.layers.3.conv_expand.bias": (16,),
        "features.3.layers.4.weight": (16, 16, 1, 1),
        "features.4.layers.0.weight": (72, 16, 1, 1),
        "features.13.layers.6.conv_reduce.weight": (144, 576, 1, 1),
        "features.14.weight": (576, 96, 1, 1),
        "features.15.moving_mean": (576,),
        "classifier.0.weight": (1024, 576),
        "classifier.3.weight": (1000, 1024),
        "classifier.3.bias": (1000,),
    },
    "mobilenet_v3_large_100": {
        "features.0.weight": (16, 3, 3, 3),
        "features.3.layers.0.weight": (16, 1, 3, 3),
        "features.3.layers.4.beta": (16,),
        "features.6.layers.6.conv_reduce.weight": (24, 72, 1, 1),
        "features.17.layers.3.weight": (960, 1, 5, 5),
        "features.18.weight": (960, 160, 1, 1),
        "features.19.gamma": (960,),
        "classifier.0.weight": (1280, 960),
        "classifier.3.weight": (1000, 1280),
    },
}


@pytest.fixture(scope="module")
def models():
    """Each variant once, as classifier and as feature pyramid, without the (compiling) random init."""
    return {name: (exporters.create_model(name, init=False),
                   exporters.create_model(name, features_only=True, init=False))
            for name in EXPECTED}


def test_registered_variants():
    assert exporters.list_models(family="mobilenetv3") == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_feature_info_entries(models, name):
    model, feat = models[name]
    expected = [dict(chs=c, reduction=r, name=n) for n, c, r in EXPECTED[name]]
    assert model.feature_info == expected
    assert model.flatten_sequential is True
    assert feat.feature_info.get_dicts() == expected


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_mindcv_parameter_names(models, name):
    params = {p.name: tuple(p.shape) for p in models[name][0].get_parameters()}
    for pname, shape in PARAMS[name].items():
        assert params.get(pname) == shape, pname


def test_features_only_names_are_flattened(models):
    model, feat = models["mobilenet_v3_small_100"]
    names = [p.name for p in feat.get_parameters()]
    assert "features_0.weight" in names
    assert "features_3.layers.3.conv_reduce.weight" in names
    assert "features_15.moving_mean" in names
    assert not [n for n in names if n.startswith(("features.", "classifier"))]
    # every kept parameter is the classifier's parameter under the flattened name
    full = {p.name.replace(".", "_", 1) for p in model.get_parameters() if p.name.startswith("features.")}
    assert set(names) == full
    assert feat.renamed["features.16"] == "features_16"


def test_truncation_stops_at_last_requested_level():
    feat = exporters.create_model("mobilenet_v3_large_100", features_only=True, out_indices=[2, 8], init=False)
    assert feat.feature_info.module_name() == ["features.4", "features.10"]
    assert len(feat.net.cell_list) == 11  # features_0 .. features_10
    assert not [p.name for p in feat.get_parameters() if p.name.startswith("features_11")]


def test_activations_are_exportable_layers(models):
    model, _ = models["mobilenet_v3_large_100"]
    cells = [c for _, c in model.cells_and_names()]
    assert not [c for c in cells if isinstance(c, (nn.HSwish, nn.HSigmoid))]
    assert isinstance(model.features[2], layers.HSwish)
    gates = [c.gate for c in cells if isinstance(c, layers.SqueezeExcite)]
    assert gates and all(isinstance(g, layers.HSigmoid) for g in gates)


def test_bottleneck_residual_only_when_shapes_match():
    block = mobilenetv3.Bottleneck(16, 64, 16, 3, stride=1)
    assert block.use_res_connect
    assert not mobilenetv3.Bottleneck(16, 64, 24, 3, stride=1).use_res_connect
    assert not mobilenetv3.Bottleneck(16, 64, 16, 3, stride=2).use_res_connect
    block.set_train(False)
    x = np.random.default_rng(0).standard_normal((1, 16, 9, 7)).astype(np.float32)
    y = block(Tensor(x)).asnumpy()
    branch = block.layers(Tensor(x)).asnumpy()
    np.testing.assert_allclose(y, x + branch, rtol=1e-5, atol=1e-5)
