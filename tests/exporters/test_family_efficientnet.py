"""EfficientNet: exact feature_info, MindCV parameter names, the scenario-2 rename, eval-mode drop-path, Swish.

Models are built through the registry with the random init switched off
(``init_weights`` runs BatchNorm calibration, a graph compile); the numeric
tests run single small blocks.
"""
import numpy as np
import pytest
from mindspore import Tensor

import exporters
from exporters.models import efficientnet, layers

ENTRIES = [
    ("features.2", 32, 2), ("features.3", 16, 2), ("features.4", 24, 4), ("features.5", 40, 8),
    ("features.6", 80, 16), ("features.7", 112, 16), ("features.8", 192, 32), ("features.9", 320, 32),
    ("features.12", 1280, 32),
]
EXPECTED = {"efficientnet_b0": ENTRIES, "efficientnet_b1": ENTRIES}
BLOCKS_PER_STAGE = {"efficientnet_b0": [1, 2, 2, 3, 3, 4, 1], "efficientnet_b1": [2, 3, 3, 4, 4, 5, 2]}

PARAMS = {
    "efficientnet_b0": {
        "features.0.weight": (32, 3, 3, 3),
        "features.1.gamma": (32,),
        "features.3.0.block.0.weight": (32, 1, 3, 3),  # expand ratio 1: depthwise first
        "features.3.0.block.3.conv_reduce.weight": (8, 32, 1, 1),
        "features.3.0.block.3.conv_expand.bias": (32,),
        "features.3.0.block.4.weight": (16, 32, 1, 1),
        "features.4.0.block.0.weight": (96, 16, 1, 1),
        "features.4.1.block.6.conv_reduce.weight": (6, 144, 1, 1),
        "features.5.0.block.3.weight": (144, 1, 5, 5),
        "features.8.3.block.8.moving_variance": (192,),
        "features.9.0.block.7.weight": (320, 1152, 1, 1),
        "features.10.weight": (1280, 320, 1, 1),
        "features.11.moving_mean": (1280,),
        "mlp_head.weight": (1000, 1280),
        "mlp_head.bias": (1000,),
    },
    "efficientnet_b1": {
        "features.3.1.block.0.weight": (16, 1, 3, 3),
        "features.3.1.block.3.conv_reduce.weight": (4, 16, 1, 1),
        "features.8.4.block.8.gamma": (192,),
        "features.9.1.block.0.weight": (1920, 320, 1, 1),
        "features.10.weight": (1280, 320, 1, 1),
        "mlp_head.weight": (1000, 1280),
    },
}


@pytest.fixture(scope="module")
def models():
    """Each variant once, as classifier and as feature pyramid, without the (compiling) random init."""
    return {name: (exporters.create_model(name, init=False),
                   exporters.create_model(name, features_only=True, init=False))
            for name in EXPECTED}


def test_registered_variants():
    assert exporters.list_models(family="efficientnet") == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_feature_info_entries(models, name):
    model, feat = models[name]
    expected = [dict(chs=c, reduction=r, name=n) for n, c, r in EXPECTED[name]]
    assert model.feature_info == expected
    assert model.flatten_sequential is True
    assert feat.feature_info.get_dicts() == expected
    assert [len(model.features[i]) for i in range(3, 10)] == BLOCKS_PER_STAGE[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_mindcv_parameter_names(models, name):
    params = {p.name: tuple(p.shape) for p in models[name][0].get_parameters()}
    for pname, shape in PARAMS[name].items():
        assert params.get(pname) == shape, pname


def test_features_only_names_are_flattened(models):
    model, feat = models["efficientnet_b0"]
    names = [p.name for p in feat.get_parameters()]
    assert "features_0.weight" in names
    assert "features_3.0.block.3.conv_reduce.weight" in names
    assert "features_11.gamma" in names
    assert not [n for n in names if n.startswith(("features.", "mlp_head"))]
    full = {p.name.replace(".", "_", 1) for p in model.get_parameters() if p.name.startswith("features.")}
    assert set(names) == full
    assert feat.renamed["features.9"] == "features_9"


def _block(stride=1, in_chs=16, out_chs=16, drop_path_prob=0.9):
    cnf = efficientnet.MBConvConfig(6, 3, stride, in_chs, out_chs, 1)
    block = efficientnet.MBConv(cnf, drop_path_prob)
    block.set_train(False)
    return block


def test_drop_path_is_identity_in_eval():
    block = _block(drop_path_prob=0.9)
    assert block.shortcut and block.dropout.dropout is not None  # a real drop-path when training
    x = np.random.default_rng(0).standard_normal((2, 16, 8, 6)).astype(np.float32)
    y1 = block(Tensor(x)).asnumpy()
    y2 = block(Tensor(x)).asnumpy()
    branch = block.block(Tensor(x)).asnumpy()
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_allclose(y1, branch + x, rtol=1e-5, atol=1e-5)


def test_drop_path_rate_grows_with_depth(models):
    model, _ = models["efficientnet_b0"]
    blocks = [b for i in range(3, 10) for b in model.features[i]]
    probs = [1.0 - b.dropout.keep_prob for b in blocks]
    assert probs[0] == 0.0 and probs == sorted(probs) and 0.18 < probs[-1] < 0.2


def test_swish_is_x_times_sigmoid():
    x = np.linspace(-6, 6, 13, dtype=np.float32).reshape(1, 13, 1, 1)
    y = layers.Swish()(Tensor(x)).asnumpy()
    np.testing.assert_allclose(y, x / (1.0 + np.exp(-x)), rtol=1e-5, atol=1e-6)
