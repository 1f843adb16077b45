"""HRNet family: the rewritten feature class, MindCV parameter names, float32 throughout.

A full HRNet compiles for about a minute per graph on this machine, so the
registered variants are checked without running them (their weights are not
initialised), and the behaviour (levels equal the classifier's intermediate
tensors, checkpoint loading) is checked on a small HRNet built by the same
``_create_hrnet`` from a reduced stage configuration.
"""
from __future__ import annotations

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, nn

import exporters
import exporters.helpers
from exporters.models.hrnet import HRNet, HRNetFeatures, _create_hrnet

LEVELS = [
    dict(chs=64, reduction=2, name="stem"),
    dict(chs=128, reduction=4, name="stage1"),
    dict(chs=256, reduction=8, name="stage2"),
    dict(chs=512, reduction=16, name="stage3"),
    dict(chs=1024, reduction=32, name="stage4"),
]
EXPECTED = {  # name -> (feature_info, width, classifier parameter count)
    "hrnet_w18": (LEVELS, 18, 21_346_380),
    "hrnet_w32": (LEVELS, 32, 41_303_464),
}
HEAD_PREFIXES = ("downsample_modules.", "final_layer.", "classifier.")

SMALL_CFG = dict(  # every code path of the full configurations, one block per branch
    stage1=dict(num_modules=1, num_branches=1, block="BOTTLENECK", num_blocks=[1], num_channels=[16]),
    stage2=dict(num_modules=1, num_branches=2, block="BASIC", num_blocks=[1, 1], num_channels=[8, 16]),
    stage3=dict(num_modules=2, num_branches=3, block="BASIC", num_blocks=[1, 1, 1], num_channels=[8, 16, 32]),
    stage4=dict(num_modules=1, num_branches=4, block="BASIC", num_blocks=[1] * 4, num_channels=[8, 16, 32, 64]),
)
H, W = 72, 40  # non-square; strides 16 and 32 give odd sizes (5x3, 3x2), so upsampling is non-integer


@pytest.fixture(scope="module")
def unbuilt():
    """The registered variants as classifier and feature model, constructed without weight initialisation."""
    return {name: (exporters.create_model(name, init=False),
                   exporters.create_model(name, features_only=True, init=False))
            for name in EXPECTED}


@pytest.fixture(scope="module")
def small():
    """The small HRNet at seed 0: classifier and feature model, each initialised on its own.

    The feature model is built first: built second, it would copy the classifier's
    cached weights (``exporters.init.seeded_weights``) and the equality tests below
    would prove nothing about the seeded init itself.
    """
    features = _create_hrnet(stage_cfg=SMALL_CFG, seed=0, features_only=True)
    classifier = _create_hrnet(stage_cfg=SMALL_CFG, seed=0)
    classifier.set_train(False)
    return classifier, features


def _params(model: nn.Cell) -> dict:
    return {p.name: p for p in model.get_parameters()}


def test_registered_variants():
    assert exporters.list_models(family="hrnet") == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_feature_info_and_feature_class(unbuilt, name):
    info, _, num_params = EXPECTED[name]
    classifier, features = unbuilt[name]
    assert type(classifier) is HRNet
    assert features.is_rewritten and type(features.net) is HRNetFeatures
    assert features.feature_info.get_dicts() == info
    assert sum(int(np.prod(p.shape)) for p in classifier.get_parameters()) == num_params


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_feature_class_has_the_classifier_parameters_but_the_head(unbuilt, name):
    classifier, features = unbuilt[name]
    cls_shapes = {n: tuple(p.shape) for n, p in _params(classifier).items()}
    feat_shapes = {n: tuple(p.shape) for n, p in _params(features).items()}
    assert feat_shapes == {n: s for n, s in cls_shapes.items() if not n.startswith(HEAD_PREFIXES)}
    assert len(feat_shapes) < len(cls_shapes)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_float32_parameters(unbuilt, name):
    for model in unbuilt[name]:
        assert {p.dtype for p in model.get_parameters()} == {ms.float32}


def test_mindcv_parameter_names(unbuilt):
    shapes = {n: tuple(p.shape) for n, p in _params(unbuilt["hrnet_w32"][0]).items()}
    expected = {
        "conv1.weight": (64, 3, 3, 3),
        "bn1.gamma": (64,),
        "bn2.moving_variance": (64,),
        "layer1.0.conv3.weight": (256, 64, 1, 1),
        "layer1.0.down_sample.0.weight": (256, 64, 1, 1),
        "layer1.3.bn3.beta": (256,),
        "transition1.0.0.weight": (32, 256, 3, 3),
        "transition1.1.0.0.weight": (64, 256, 3, 3),
        "stage2.0.branches.1.3.conv2.weight": (64, 64, 3, 3),
        "stage2.0.fuse_layers.0.1.0.weight": (32, 64, 1, 1),  # deeper branch: 1x1 conv, then upsampling
        "stage2.0.fuse_layers.1.0.0.0.weight": (64, 32, 3, 3),  # shallower branch: strided 3x3
        "transition2.2.0.0.weight": (128, 64, 3, 3),
        "stage3.3.fuse_layers.2.0.0.0.weight": (32, 32, 3, 3),  # two strided steps, the first keeps the width
        "stage3.3.fuse_layers.2.0.1.0.weight": (128, 32, 3, 3),
        "transition3.3.0.0.weight": (256, 128, 3, 3),
        "stage4.2.branches.3.3.conv2.weight": (256, 256, 3, 3),
        "stage4.2.fuse_layers.3.0.2.1.moving_mean": (256,),
        "incre_modules.0.0.conv1.weight": (32, 32, 1, 1),
        "incre_modules.3.0.down_sample.0.weight": (1024, 256, 1, 1),
        "downsample_modules.2.0.weight": (1024, 512, 3, 3),
        "final_layer.0.weight": (2048, 1024, 1, 1),
        "classifier.weight": (1000, 2048),
    }
    assert {n: shapes.get(n) for n in expected} == expected
    assert "stage4.3.branches.0.0.conv1.weight" not in shapes  # three modules in stage 4


class _ClassifierLevels(nn.Cell):
    """A hand-written forward through the small classifier's cells, returning its intermediate tensors."""

    def __init__(self, net: HRNet) -> None:
        super().__init__(auto_prefix=False)
        self.net = net

    def construct(self, x):
        net = self.net
        stem = net.relu(net.bn1(net.conv1(x)))
        y = net.layer1(net.relu(net.bn2(net.conv2(stem))))
        ys = net.stage2((net.transition1[0](y), net.transition1[1](y)))
        ys = net.stage3((ys[0], ys[1], net.transition2[2](ys[1])))
        ys = net.stage4((ys[0], ys[1], ys[2], net.transition3[3](ys[2])))
        return (stem, net.incre_modules[0](ys[0]), net.incre_modules[1](ys[1]),
                net.incre_modules[2](ys[2]), net.incre_modules[3](ys[3]), net.forward_head(ys))


def test_levels_equal_the_classifier_intermediates(small):
    classifier, features = small
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, H, W)).astype(np.float32))
    *want, logits = _ClassifierLevels(classifier)(x)
    got = features(x)
    assert isinstance(got, tuple) and len(got) == len(LEVELS)
    for level, g, w in zip(LEVELS, got, want):
        r = level["reduction"]
        assert g.shape == (2, level["chs"], -(-H // r), -(-W // r))
        assert g.dtype == ms.float32
        w = w.asnumpy()
        assert 1e-2 < w.std() < 1e2
        np.testing.assert_allclose(g.asnumpy(), w, rtol=1e-5, atol=1e-5 * np.abs(w).max())
    # the hand-written path is the classifier's own
    out = classifier(x)
    assert out.dtype == ms.float32
    np.testing.assert_allclose(out.asnumpy(), logits.asnumpy(), rtol=1e-5, atol=1e-5)


def test_same_seed_same_weights_and_head_unused(small, tmp_path):
    classifier, features = small
    cls_params, feat_params = _params(classifier), _params(features)
    assert {p.dtype for p in feat_params.values()} == {ms.float32}
    for name, p in feat_params.items():  # including the calibrated BatchNorm statistics
        np.testing.assert_array_equal(p.asnumpy(), cls_params[name].asnumpy(), err_msg=name)
    path = tmp_path / "small_hrnet.ckpt"
    ms.save_checkpoint(classifier, str(path))
    report = exporters.load_checkpoint_into(features, path)
    assert sorted(report.unused) == sorted(n for n in cls_params if n.startswith(HEAD_PREFIXES))
    assert sorted(report.loaded) == sorted(feat_params)
