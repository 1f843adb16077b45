"""ReXNet: exact feature_info, MindCV parameter names, the scenario-2 rename, the partial residual.

Models are built through the registry with the random init switched off
(``init_weights`` runs BatchNorm calibration, a graph compile); the numeric
test runs one small block.
"""
import numpy as np
import pytest
from mindspore import Tensor, nn

import exporters
from exporters.models import layers, rexnet

EXPECTED = {
    "rexnet_10": [("features.0", 16, 2), ("features.2", 38, 4), ("features.4", 61, 8), ("features.10", 128, 16),
                  ("features.15", 185, 32)],
    # MindCV's widths for 1.3: int(round(c * 1.3)) of the unrounded 1.0 channel ramp
    "rexnet_13": [("features.0", 21, 2), ("features.2", 50, 4), ("features.4", 79, 8), ("features.10", 167, 16),
                  ("features.15", 240, 32)],
}

PARAMS = {
    "rexnet_10": {
        "stem.features.0.weight": (32, 3, 3, 3),
        "stem.features.1.gamma": (32,),
        "features.0.conv_dw.features.0.weight": (32, 1, 3, 3),  # exp ratio 1: no conv_exp
        "features.0.conv_pwl.features.0.weight": (16, 32, 1, 1),
        "features.1.conv_exp.features.0.weight": (96, 16, 1, 1),
        "features.1.conv_exp.features.1.moving_variance": (96,),
        "features.3.se.conv_reduce.weight": (19, 228, 1, 1),
        "features.3.se.bn.gamma": (19,),
        "features.3.se.conv_expand.bias": (228,),
        "features.15.conv_pwl.features.1.beta": (185,),
        "features.16.features.0.weight": (1280, 185, 1, 1),
        "features.16.features.1.moving_mean": (1280,),
        "cls.1.weight": (1000, 1280),
        "cls.1.bias": (1000,),
    },
    "rexnet_13": {
        "stem.features.0.weight": (42, 3, 3, 3),
        "features.0.conv_pwl.features.0.weight": (21, 42, 1, 1),
        "features.15.conv_pwl.features.0.weight": (240, 1356, 1, 1),  # 6 * round(173.5 * 1.3)
        "features.16.features.0.weight": (1664, 240, 1, 1),
        "cls.1.weight": (1000, 1664),
    },
}


@pytest.fixture(scope="module")
def models():
    """Each variant once, as classifier and as feature pyramid, without the (compiling) random init."""
    return {name: (exporters.create_model(name, init=False),
                   exporters.create_model(name, features_only=True, init=False))
            for name in EXPECTED}


def test_registered_variants():
    assert exporters.list_models(family="rexnet") == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_feature_info_entries(models, name):
    model, feat = models[name]
    expected = [dict(chs=c, reduction=r, name=n) for n, c, r in EXPECTED[name]]
    assert model.feature_info == expected
    assert model.flatten_sequential is True
    assert feat.feature_info.get_dicts() == expected
    assert len(model.features) == 18  # 16 blocks, the 1x1 head conv, the pooling


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_mindcv_parameter_names(models, name):
    params = {p.name: tuple(p.shape) for p in models[name][0].get_parameters()}
    for pname, shape in PARAMS[name].items():
        assert params.get(pname) == shape, pname


def test_features_only_names_are_flattened(models):
    model, feat = models["rexnet_10"]
    names = [p.name for p in feat.get_parameters()]
    assert "stem.features.0.weight" in names  # the stem is not a sequential cell: kept as is
    assert "features_0.conv_dw.features.0.weight" in names
    assert "features_15.conv_pwl.features.1.beta" in names
    assert not [n for n in names if n.startswith(("features.", "features_16", "cls"))]
    full = {p.name.replace(".", "_", 1) if p.name.startswith("features.") else p.name
            for p in model.get_parameters()
            if not p.name.startswith(("features.16.", "cls."))}
    assert set(names) == full
    assert feat.renamed["features.15"] == "features_15"


def test_activations(models):
    model, _ = models["rexnet_10"]
    assert isinstance(model.stem.features[2], layers.Swish)
    assert isinstance(model.features[1].act_dw, nn.ReLU6)
    assert not [c for _, c in model.cells_and_names() if isinstance(c, nn.SiLU)]


def test_partial_residual_adds_to_leading_channels():
    block = rexnet.LinearBottleneck(4, 6, exp_ratio=6, stride=1, use_se=True)
    assert block.use_shortcut
    assert not rexnet.LinearBottleneck(6, 4, exp_ratio=6, stride=1).use_shortcut
    assert not rexnet.LinearBottleneck(4, 6, exp_ratio=6, stride=2).use_shortcut
    block.set_train(False)

    class Branch(nn.Cell):
        def __init__(self, b):
            super().__init__()
            self.b = b

        def construct(self, x):
            b = self.b
            return b.conv_pwl(b.act_dw(b.se(b.conv_dw(b.conv_exp(x)))))

    x = np.random.default_rng(0).standard_normal((2, 4, 7, 5)).astype(np.float32)
    y = block(Tensor(x)).asnumpy()
    branch = Branch(block)(Tensor(x)).asnumpy()
    assert y.shape == (2, 6, 7, 5)
    np.testing.assert_allclose(y[:, :4], branch[:, :4] + x, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y[:, 4:], branch[:, 4:], rtol=1e-5, atol=1e-5)


def test_pooled_norm_gets_one_common_scale():
    """The SE norm sees pooled features: a channel calibrated to a tiny variance must not blow up
    (it made MindSpore's Sigmoid rounding reach 5.8e-4 of features.15's max at 224 px)."""
    from exporters.init import condition_pooled_norm

    bn = nn.BatchNorm2d(3)
    bn.moving_mean.set_data(Tensor(np.array([1.0, 0.0, -2.0], np.float32)))
    bn.moving_variance.set_data(Tensor(np.array([3.0, 1e-6, 0.0], np.float32)))
    condition_pooled_norm(bn)
    np.testing.assert_array_equal(bn.moving_mean.asnumpy(), 0.0)
    # second moments 4, 1e-6, 4: every channel divides by their mean
    np.testing.assert_allclose(bn.moving_variance.asnumpy(), (4.0 + 1e-6 + 4.0) / 3, rtol=1e-6)


def test_se_norms_of_the_seeded_model_are_conditioned():
    """After seeded init, no SE norm divides by a near-zero variance (calibration alone leaves some)."""
    from ms_helpers import features

    se_norms = [(n, c.bn) for n, c in features("rexnet_10").cells_and_names()
                if isinstance(c, layers.SqueezeExcite) and c.norm]
    assert len(se_norms) == 13
    for name, bn in se_norms:
        var, mean = bn.moving_variance.asnumpy(), bn.moving_mean.asnumpy()
        assert np.ptp(var) == 0 and var[0] > 1e-3 and not mean.any(), f"{name}.bn: var {var.min():.3g}..{var.max():.3g}"
