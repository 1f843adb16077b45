"""What only one family has, by family. Everything every family shares (feature_info, MindCV
parameter names and counts, the features-only truncation, the levels against the classifier's
tensors) is checked for every registered model in ``test_families.py`` against ``family_truth.py``.

Registered models are built with ``init=False`` (no seeded weights, no BatchNorm calibration: no
compile) unless a test needs real weights; numeric tests run single blocks or small models.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest

pytest.importorskip("mindspore")
# one pytest-xdist worker runs this module, so its module-scoped MindSpore fixtures are built once
pytestmark = pytest.mark.xdist_group("family_specifics")

import mindspore as ms  # noqa: E402
from mindspore import Tensor, nn  # noqa: E402

import exporters  # noqa: E402
from exporters import FeatureExtractWrapper, build_model_with_cfg, load_checkpoint_into  # noqa: E402
from exporters._mindspore import compiled  # noqa: E402
from exporters.init import condition_pooled_norm  # noqa: E402
from exporters.models import efficientnet, layers, mobilenetv2, mobilenetv3, rexnet, vgg  # noqa: E402
from exporters.models.convnext import LAYER_SCALE_INIT_RANGE, Block, ConvNextLayerNorm  # noqa: E402
from exporters.models.hrnet import HRNet, _create_hrnet  # noqa: E402
from exporters.models.repvgg import RepVGGBlock, repvgg_model_convert  # noqa: E402
from exporters.models.resnest import SplitAttn  # noqa: E402

from conftest import assert_close_rel, rand_images  # noqa: E402
from family_truth import FAMILIES  # noqa: E402
from ms_helpers import classifier, features, unseeded  # noqa: E402


def run(cell: nn.Cell, x: np.ndarray) -> np.ndarray:
    return cell(Tensor(x)).asnumpy()


def outputs(model: nn.Cell, x: np.ndarray) -> list[np.ndarray]:
    out = model(Tensor(x))
    return [o.asnumpy() for o in out] if isinstance(out, tuple) else [out.asnumpy()]


def close(got: np.ndarray, want: np.ndarray, what: str = "") -> None:
    """Equal within float32 rounding of the reference's magnitude."""
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()), err_msg=what)


class Chain(nn.Cell):
    """The named child cells of ``block`` applied one after the other: a block's branch without its
    shortcut. The block keeps its parameter names (no prefix is added)."""

    def __init__(self, block: nn.Cell, *names: str) -> None:
        super().__init__(auto_prefix=False)
        self.block = block
        self.names = names

    def construct(self, x):
        for name in self.names:
            x = getattr(self.block, name)(x)
        return x


def levels_of(family: str, name: str) -> list[str]:
    return [n for n, _, _ in FAMILIES[family]["models"][name]["feature_info"]]


# ---------------------------------------------------------------------------------------------- convnext

@pytest.mark.parametrize("name, depths", [("convnext_tiny", [3, 3, 9, 3]), ("convnext_small", [3, 3, 27, 3])])
def test_convnext_stage_depths(name, depths):
    net = unseeded(name, features_only=True).net
    assert [len(net.name_cells()[f"feature_{2 * i + 1}"]) for i in range(4)] == depths


def test_convnext_gelu_is_the_exportable_tanh_approximation():
    cells = [c for _, c in unseeded("convnext_tiny").cells_and_names()]
    blocks = [c for c in cells if isinstance(c, Block)]
    assert len(blocks) == 18
    assert all(isinstance(b.act, layers.GELU) for b in blocks)
    gelus = [c for c in cells if isinstance(c, nn.GELU)]
    assert gelus and all(g.approximate == "tanh" for g in gelus)


def test_convnext_layer_scales_are_large_at_random_init():
    low, high = LAYER_SCALE_INIT_RANGE  # seeded, but no BatchNorm: building it compiles nothing
    scales = np.concatenate([p.asnumpy() for p in classifier("convnext_tiny").get_parameters()
                             if p.name.endswith(".gamma_")])
    assert scales.size == 96 * 3 + 192 * 3 + 384 * 9 + 768 * 3
    assert low <= scales.min() and scales.max() <= high
    assert scales.std() > 0.05  # drawn, not a constant


def test_convnext_blocks_contribute_at_random_init():
    tiny = classifier("convnext_tiny")
    stem_out = run(tiny.feature[0], rand_images(1, 64, 64))
    stage_out = run(tiny.feature[1], stem_out)
    assert stage_out.shape == (1, 96, 16, 16)
    assert np.linalg.norm(stage_out - stem_out) > 0.1 * np.linalg.norm(stem_out)


def test_convnext_channels_first_layernorm_normalises_over_channels():
    norm = ConvNextLayerNorm((5,), epsilon=1e-6, norm_axis=1)
    rng = np.random.default_rng(1)
    gamma = rng.uniform(0.5, 2.0, 5).astype(np.float32)
    beta = rng.standard_normal(5).astype(np.float32)
    norm.gamma.set_data(Tensor(gamma))
    norm.beta.set_data(Tensor(beta))
    x = (3.0 + 2.0 * rng.standard_normal((2, 5, 3, 4))).astype(np.float32)
    mean, var = x.mean(axis=1, keepdims=True), x.var(axis=1, keepdims=True)
    want = (x - mean) / np.sqrt(var + 1e-6) * gamma[None, :, None, None] + beta[None, :, None, None]
    np.testing.assert_allclose(run(norm, x), want, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------------ efficientnet

@pytest.mark.parametrize("name, blocks", [("efficientnet_b0", [1, 2, 2, 3, 3, 4, 1]),
                                          ("efficientnet_b1", [2, 3, 3, 4, 4, 5, 2])])
def test_efficientnet_blocks_per_stage(name, blocks):
    assert [len(unseeded(name).features[i]) for i in range(3, 10)] == blocks


def test_efficientnet_drop_path_is_identity_in_eval():
    block = efficientnet.MBConv(efficientnet.MBConvConfig(6, 3, 1, 16, 16, 1), 0.9)
    block.set_train(False)
    assert block.shortcut and block.dropout.dropout is not None  # a real drop-path when training
    x = rand_images(2, 8, 6, channels=16)
    y1, y2 = run(block, x), run(block, x)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_allclose(y1, run(block.block, x) + x, rtol=1e-5, atol=1e-5)


def test_efficientnet_drop_path_rate_grows_with_depth():
    model = unseeded("efficientnet_b0")
    probs = [1.0 - b.dropout.keep_prob for i in range(3, 10) for b in model.features[i]]
    assert probs[0] == 0.0 and probs == sorted(probs) and 0.18 < probs[-1] < 0.2


def test_swish_is_x_times_sigmoid():  # efficientnet and rexnet
    x = np.linspace(-6, 6, 13, dtype=np.float32).reshape(1, 13, 1, 1)
    np.testing.assert_allclose(run(layers.Swish(), x), x / (1.0 + np.exp(-x)), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------------- hrnet
# A full HRNet compiles for about a minute per graph, so the behaviour is checked on a small HRNet built
# by the same _create_hrnet from a reduced stage configuration.

HRNET_SMALL_CFG = dict(  # every code path of the full configurations, one block per branch
    stage1=dict(num_modules=1, num_branches=1, block="BOTTLENECK", num_blocks=[1], num_channels=[16]),
    stage2=dict(num_modules=1, num_branches=2, block="BASIC", num_blocks=[1, 1], num_channels=[8, 16]),
    stage3=dict(num_modules=2, num_branches=3, block="BASIC", num_blocks=[1, 1, 1], num_channels=[8, 16, 32]),
    stage4=dict(num_modules=1, num_branches=4, block="BASIC", num_blocks=[1] * 4, num_channels=[8, 16, 32, 64]),
)
HRNET_H, HRNET_W = 72, 40  # non-square; strides 16 and 32 give odd sizes (5x3, 3x2): non-integer upsampling


@pytest.fixture(scope="module")
def small_hrnet():
    """The small HRNet at seed 0: classifier and feature model, each initialised on its own.

    The feature model is built first: built second, it would copy the classifier's cached weights
    (``exporters.init.seeded_weights``) and the equality tests would prove nothing about the seeded init.
    """
    feats = _create_hrnet(stage_cfg=HRNET_SMALL_CFG, seed=0, features_only=True)
    full = _create_hrnet(stage_cfg=HRNET_SMALL_CFG, seed=0)
    full.set_train(False)
    return full, feats


class _HRNetClassifierLevels(nn.Cell):
    """A hand-written forward through the classifier's cells, returning its intermediate tensors."""

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


def test_hrnet_levels_equal_the_classifier_intermediates(small_hrnet):
    full, feats = small_hrnet
    x = rand_images(2, HRNET_H, HRNET_W)
    *want, logits = _HRNetClassifierLevels(full)(Tensor(x))
    got = feats(Tensor(x))
    info = FAMILIES["hrnet"]["models"]["hrnet_w18"]["feature_info"]  # the small one has the same levels
    assert isinstance(got, tuple) and len(got) == len(info) == len(feats.feature_info)
    assert feats.feature_info.module_name() == [n for n, _, _ in info]
    for level, g, w in zip(feats.feature_info.get_dicts(), got, want):
        r = level["reduction"]
        assert g.shape == (2, level["chs"], -(-HRNET_H // r), -(-HRNET_W // r))
        assert g.dtype == ms.float32
        w = w.asnumpy()
        assert 1e-2 < w.std() < 1e2
        close(g.asnumpy(), w, level["name"])
    out = full(Tensor(x))  # the hand-written path is the classifier's own
    assert out.dtype == ms.float32
    np.testing.assert_allclose(out.asnumpy(), logits.asnumpy(), rtol=1e-5, atol=1e-5)


def test_hrnet_feature_view_is_the_feature_class_on_the_classifiers_cells(small_hrnet):
    """``HRNet.feature_view()`` (the export's reference levels, no second build) returns exactly what
    the feature class returns for the same weights, with its FeatureInfo and the classifier's parameters."""
    full, feats = small_hrnet
    view = full.feature_view()
    assert view.feature_info.get_dicts() == feats.feature_info.get_dicts()
    assert {p.name for p in view.get_parameters()} <= {p.name for p in full.get_parameters()}
    x = Tensor(rand_images(2, HRNET_H, HRNET_W, seed=7))
    for got, want in zip(view(x), feats(x), strict=True):
        np.testing.assert_array_equal(got.asnumpy(), want.asnumpy())


def test_hrnet_same_seed_same_weights_and_head_unused(small_hrnet, tmp_path):
    full, feats = small_hrnet
    head = FAMILIES["hrnet"]["head"]
    full_params = {p.name: p for p in full.get_parameters()}
    feat_params = {p.name: p for p in feats.get_parameters()}
    assert {p.dtype for p in feat_params.values()} == {ms.float32}
    for name, p in feat_params.items():  # including the calibrated BatchNorm statistics
        np.testing.assert_array_equal(p.asnumpy(), full_params[name].asnumpy(), err_msg=name)
    path = tmp_path / "small_hrnet.ckpt"
    ms.save_checkpoint(full, str(path))
    report = load_checkpoint_into(feats, path)
    assert sorted(report.unused) == sorted(n for n in full_params if n.startswith(head))
    assert sorted(report.loaded) == sorted(feat_params)


# ------------------------------------------------------------------------------------------- mobilenetv2

def test_mobilenetv2_each_level_ends_its_stride():
    blocks = list(unseeded("mobilenet_v2_100").features.cell_list)
    for name in levels_of("mobilenetv2", "mobilenet_v2_100"):
        k = int(name.split(".")[1])
        assert isinstance(blocks[k], mobilenetv2.InvertedResidual), name
        following = blocks[k + 1]
        if isinstance(following, mobilenetv2.InvertedResidual):
            depthwise = following.layers[3] if len(following.layers) == 8 else following.layers[0]
            assert depthwise.stride == (2, 2), f"{name} is followed by a stride-1 block: not a stage end"
        else:
            assert k == 19 and isinstance(following, nn.Conv2d)


@pytest.mark.parametrize("alpha, chs", [(0.75, [16, 24, 24, 72, 240]), (1.4, [24, 32, 48, 136, 448])])
def test_mobilenetv2_width_multiplier_channels(alpha, chs):
    net = mobilenetv2.MobileNetV2(alpha=alpha)
    assert [e["chs"] for e in net.feature_info] == chs
    assert [e["reduction"] for e in net.feature_info] == [2, 4, 8, 16, 32]


def test_mobilenetv2_residual_only_when_shapes_match():
    assert mobilenetv2.InvertedResidual(24, 24, 1, 6).use_res_connect
    assert not mobilenetv2.InvertedResidual(24, 24, 2, 6).use_res_connect
    assert not mobilenetv2.InvertedResidual(16, 24, 1, 6).use_res_connect
    with pytest.raises(ValueError, match="stride"):
        mobilenetv2.InvertedResidual(16, 16, 3, 6)


# ------------------------------------------------------------------------------------------- mobilenetv3

def test_mobilenetv3_activations_are_exportable_layers():
    model = unseeded("mobilenet_v3_large_100")
    cells = [c for _, c in model.cells_and_names()]
    assert not [c for c in cells if isinstance(c, (nn.HSwish, nn.HSigmoid))]
    assert isinstance(model.features[2], layers.HSwish)
    gates = [c.gate for c in cells if isinstance(c, layers.SqueezeExcite)]
    assert gates and all(isinstance(g, layers.HSigmoid) for g in gates)


def test_mobilenetv3_residual_only_when_shapes_match():
    block = mobilenetv3.Bottleneck(16, 64, 16, 3, stride=1)
    assert block.use_res_connect
    assert not mobilenetv3.Bottleneck(16, 64, 24, 3, stride=1).use_res_connect
    assert not mobilenetv3.Bottleneck(16, 64, 16, 3, stride=2).use_res_connect
    block.set_train(False)
    x = rand_images(1, 9, 7, channels=16)
    np.testing.assert_allclose(run(block, x), x + run(block.layers, x), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------------ repvgg

REPVGG_X = rand_images(2, 64, 96)


def _repvgg_blocks(model: nn.Cell) -> list[RepVGGBlock]:
    return [c for _, c in model.cells_and_names() if isinstance(c, RepVGGBlock)]


def test_repvgg_squeeze_excite_option_uses_mindcv_names():
    names = {p.name for p in exporters.create_model("repvgg_a0", use_se=True, init=False).get_parameters()}
    assert {"stage0.se.conv_reduce.weight", "stage0.se.conv_expand.bias", "stage4.0.se.conv_reduce.bias"} <= names


def test_repvgg_deploy_constructor_matches_converted_names(tmp_path):
    """A converted checkpoint (save_path) loads strictly into a model built with deploy=True."""
    ckpt = tmp_path / "a0_deploy.ckpt"
    converted = repvgg_model_convert(exporters.create_model("repvgg_a0", init=False), save_path=str(ckpt))
    names = [p.name for p in converted.get_parameters()]
    assert len(names) == len(set(names)) == 2 * 22 + 2  # 22 fused convs (weight, bias) + linear
    assert "stage0.rbr_reparam.weight" in names and "stage3.13.rbr_reparam.bias" in names
    assert not any("rbr_dense" in n or "rbr_1x1" in n or "rbr_identity" in n for n in names)
    deployed = exporters.create_model("repvgg_a0", deploy=True, init=False)
    assert sorted(p.name for p in deployed.get_parameters()) == sorted(names)
    assert not load_checkpoint_into(deployed, ckpt).unused


@pytest.fixture(scope="module")
def repvgg_a0():
    return exporters.create_model("repvgg_a0", seed=0)


def _check_fused(converted: nn.Cell, refs: list[np.ndarray], what: str) -> None:
    """Converted outputs equal the training form, and really come from the fused convolutions
    (GRAPH_MODE: the refs were compiled in the training form, so a stale graph would show)."""
    assert all(b.deploy for b in _repvgg_blocks(converted)) and len(_repvgg_blocks(converted)) == 22
    with compiled():
        got = outputs(converted, REPVGG_X)
    assert len(got) == len(refs)
    for i, (g, r) in enumerate(zip(got, refs)):
        assert_close_rel(g, r, rtol=1e-4, what=f"{what} level {i}")
    # a stale compiled graph would still run the old branches and ignore this change
    bias = _repvgg_blocks(converted)[-1].rbr_reparam.bias
    bias.set_data(Tensor(bias.asnumpy() + 1.0))
    with compiled():
        moved = outputs(converted, REPVGG_X)[-1]
    assert np.abs(moved - got[-1]).max() > 0.5, f"{what}: the converted model still runs a stale graph"


def test_repvgg_reparam_classifier_copy(repvgg_a0):
    with compiled():
        ref = outputs(repvgg_a0, REPVGG_X)
    converted = repvgg_model_convert(repvgg_a0)  # do_copy=True: the original stays in training form
    assert converted is not repvgg_a0 and not any(b.deploy for b in _repvgg_blocks(repvgg_a0))
    _check_fused(converted, ref, "classifier")
    np.testing.assert_array_equal(outputs(repvgg_a0, REPVGG_X)[0], ref[0])


def test_repvgg_reparam_features_in_place(repvgg_a0):
    wrapper = FeatureExtractWrapper(copy.deepcopy(repvgg_a0))  # what create_model(..., features_only=True) returns
    with compiled():
        refs = outputs(wrapper, REPVGG_X)  # compiles the training form first
    assert [r.shape[1] for r in refs] == [c for _, c, _ in FAMILIES["repvgg"]["models"]["repvgg_a0"]["feature_info"]]
    converted = repvgg_model_convert(wrapper, do_copy=False)
    assert converted is wrapper
    _check_fused(converted, refs, "features_only")


# ----------------------------------------------------------------------------------------------- resnest

def test_resnest_block_structure():
    m = unseeded("resnest50")
    assert not m.layer1[0].avd and not hasattr(m.layer1[0], "avd_layer")
    for layer in (m.layer2, m.layer3, m.layer4):
        assert layer[0].avd and isinstance(layer[0].avd_layer, nn.AvgPool2d)  # stride in the avg pool
        assert isinstance(layer[0].downsample[0], nn.AvgPool2d)  # avg_down shortcut
        assert not layer[1].avd


def test_resnest_odd_sizes_keep_shortcut_and_block_in_step():
    """The avg-down shortcut pools "same" (MindCV: "valid"), so odd sizes give ceil(H / 2) on both paths."""
    assert run(unseeded("resnest50").layer2[0], rand_images(1, 7, 9, channels=256)).shape == (1, 512, 4, 5)


def _grouped_1x1(x: np.ndarray, conv: nn.Conv2d) -> np.ndarray:
    """A grouped 1x1 convolution with bias on ``(B, C)`` vectors, in numpy."""
    w, bias, g = conv.weight.asnumpy()[:, :, 0, 0], conv.bias.asnumpy(), conv.group
    ci, co = x.shape[1] // g, w.shape[0] // g
    return np.concatenate([x[:, k * ci:(k + 1) * ci] @ w[k * co:(k + 1) * co].T for k in range(g)], 1) + bias


def _bn(x: np.ndarray, bn: nn.BatchNorm2d) -> np.ndarray:
    std = np.sqrt(bn.moving_variance.asnumpy() + bn.eps)
    return (x - bn.moving_mean.asnumpy()) / std * bn.gamma.asnumpy() + bn.beta.asnumpy()


@pytest.mark.parametrize("group", [1, 2])
def test_resnest_split_attention_matches_numpy_reference(group):
    """Radix softmax per cardinal group, weighted sum of the radix branches (MindCV semantics)."""
    radix, chs = 2, 64
    sa = build_model_with_cfg(SplitAttn, False, seed=group, in_channels=chs, out_channels=chs, padding=1,
                              group=group, radix=radix, norm_layer=nn.BatchNorm2d)
    x = rand_images(2, 16, 24, channels=chs, seed=1)
    got = run(sa, x)
    # the split-attention input: conv -> bn0 -> act0 (the radix branches side by side)
    y = run(Chain(sa, "conv", "bn0", "act0"), x).reshape(2, radix, chs, 16, 24)
    gap = y.sum(axis=1).mean(axis=(2, 3))
    hidden = np.maximum(_bn(_grouped_1x1(gap, sa.fc1), sa.bn1), 0.0)
    logits = _grouped_1x1(hidden, sa.fc2).reshape(2, group, radix, -1).transpose(0, 2, 1, 3)
    attn = np.exp(logits - logits.max(axis=1, keepdims=True))
    attn = (attn / attn.sum(axis=1, keepdims=True)).reshape(2, radix, chs)
    want = (y * attn[..., None, None]).sum(axis=1)
    assert_close_rel(got, want, rtol=1e-5, what=f"SplitAttn group={group}")
    # the calibrated, conditioned attention really mixes the branches, per image
    assert attn.std() > 0.05 and np.abs(attn[0] - attn[1]).max() > 1e-3


def test_resnest_attention_norm_is_conditioned_after_calibration():
    """Each attention BatchNorm is re-centred after calibration: mean 0, variance = the second moment."""
    model = exporters.create_model("resnest50", init=False)  # its own: the test overwrites statistics
    attn = [c for _, c in model.cells_and_names() if isinstance(c, SplitAttn)]
    assert len(attn) == 16
    sa = attn[0]
    n = sa.bn1.moving_mean.shape
    sa.bn1.moving_mean.set_data(Tensor(np.full(n, 2.0, np.float32)))
    sa.bn1.moving_variance.set_data(Tensor(np.full(n, 0.01, np.float32)))
    sa.init_after_calibration()  # the hook exporters.init calls after calibrating
    np.testing.assert_array_equal(sa.bn1.moving_mean.asnumpy(), 0.0)
    np.testing.assert_allclose(sa.bn1.moving_variance.asnumpy(), 4.01, rtol=1e-6)


# ------------------------------------------------------------------------------------------------ rexnet

def test_rexnet_layout_and_activations():
    model = unseeded("rexnet_10")
    assert len(model.features) == 18  # 16 blocks, the 1x1 head conv, the pooling
    assert isinstance(model.stem.features[2], layers.Swish)
    assert isinstance(model.features[1].act_dw, nn.ReLU6)
    assert not [c for _, c in model.cells_and_names() if isinstance(c, nn.SiLU)]


def test_rexnet_partial_residual_adds_to_leading_channels():
    block = rexnet.LinearBottleneck(4, 6, exp_ratio=6, stride=1, use_se=True)
    assert block.use_shortcut
    assert not rexnet.LinearBottleneck(6, 4, exp_ratio=6, stride=1).use_shortcut
    assert not rexnet.LinearBottleneck(4, 6, exp_ratio=6, stride=2).use_shortcut
    block.set_train(False)
    x = rand_images(2, 7, 5, channels=4)
    y = run(block, x)
    branch = run(Chain(block, "conv_exp", "conv_dw", "se", "act_dw", "conv_pwl"), x)
    assert y.shape == (2, 6, 7, 5)
    np.testing.assert_allclose(y[:, :4], branch[:, :4] + x, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y[:, 4:], branch[:, 4:], rtol=1e-5, atol=1e-5)


def test_rexnet_pooled_norm_gets_one_common_scale():
    """The SE norm sees pooled features: a channel calibrated to a tiny variance must not blow up
    (it made MindSpore's Sigmoid rounding reach 5.8e-4 of features.15's max at 224 px)."""
    bn = nn.BatchNorm2d(3)
    bn.moving_mean.set_data(Tensor(np.array([1.0, 0.0, -2.0], np.float32)))
    bn.moving_variance.set_data(Tensor(np.array([3.0, 1e-6, 0.0], np.float32)))
    condition_pooled_norm(bn)
    np.testing.assert_array_equal(bn.moving_mean.asnumpy(), 0.0)
    # second moments 4, 1e-6, 4: every channel divides by their mean
    np.testing.assert_allclose(bn.moving_variance.asnumpy(), (4.0 + 1e-6 + 4.0) / 3, rtol=1e-6)


def test_rexnet_se_norms_of_the_seeded_model_are_conditioned():
    """After seeded init, no SE norm divides by a near-zero variance (calibration alone leaves some)."""
    se_norms = [(n, c.bn) for n, c in features("rexnet_10").cells_and_names()
                if isinstance(c, layers.SqueezeExcite) and c.norm]
    assert len(se_norms) == 13
    for name, bn in se_norms:
        var, mean = bn.moving_variance.asnumpy(), bn.moving_mean.asnumpy()
        assert np.ptp(var) == 0 and var[0] > 1e-3 and not mean.any(), f"{name}.bn: var {var.min():.3g}..{var.max():.3g}"


# --------------------------------------------------------------------------------------------------- vgg

@pytest.mark.parametrize("name", sorted(FAMILIES["vgg"]["models"]))
def test_vgg_levels_are_the_five_max_pools_and_convs_have_no_bias(name):
    model = unseeded(name)
    cells = dict(model.features.name_cells())
    names = levels_of("vgg", name)
    for level in names:
        assert isinstance(cells[level.split(".")[1]], nn.MaxPool2d), level
    assert len(cells) - 1 == int(names[-1].split(".")[1]), "the last pool ends features"
    biased = [p.name for p in model.get_parameters() if p.name.startswith("features.") and p.name.endswith(".bias")]
    assert not biased, f"MindCV's VGG convs have no bias: {biased[:3]}"


#: adaptive pooling's windows [start, end) to 7 outputs, by hand: start = floor(i * n / 7), end = ceil((i + 1) * n / 7)
WINDOWS = {
    7: [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 7)],
    2: [(0, 1), (0, 1), (0, 1), (0, 2), (1, 2), (1, 2), (1, 2)],
    3: [(0, 1), (0, 1), (0, 2), (1, 2), (1, 3), (2, 3), (2, 3)],
    10: [(0, 2), (1, 3), (2, 5), (4, 6), (5, 8), (7, 9), (8, 10)],
    9: [(0, 2), (1, 3), (2, 4), (3, 6), (5, 7), (6, 8), (7, 9)],
}


@pytest.mark.parametrize("size", [(7, 7), (2, 3), (10, 9)])
def test_vgg_adaptive_pool_7_equals_the_windowed_mean(size):
    x = rand_images(1, *size, channels=2)
    got = run(vgg.AdaptiveAvgPool7(), x)
    assert got.shape == (1, 2, 7, 7)
    want = np.empty((1, 2, 7, 7), np.float32)
    for i, (h0, h1) in enumerate(WINDOWS[size[0]]):
        for j, (w0, w1) in enumerate(WINDOWS[size[1]]):
            want[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    if size == (7, 7):
        np.testing.assert_array_equal(got, x)  # MindCV's head at 224x224 is unchanged
