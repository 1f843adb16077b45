"""ResNeSt: feature_info, MindCV parameter names and the ONNX-friendly split attention."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mindspore")

from mindspore import Tensor, nn  # noqa: E402

import exporters  # noqa: E402
import exporters.helpers  # noqa: E402
from exporters import build_model_with_cfg  # noqa: E402
from exporters.models.resnest import SplitAttn  # noqa: E402

from conftest import assert_close_rel, rand_images  # noqa: E402

RESNEST50_INFO = [
    dict(chs=64, reduction=2, name="relu"),
    dict(chs=256, reduction=4, name="layer1"),
    dict(chs=512, reduction=8, name="layer2"),
    dict(chs=1024, reduction=16, name="layer3"),
    dict(chs=2048, reduction=32, name="layer4"),
]


@pytest.fixture(scope="module")
def resnest50_uninit():
    """resnest50 from its registered entry point, without the (slow) random init and calibration."""
    return exporters.create_model("resnest50", init=False)


def test_registered_variants():
    assert exporters.list_models(family="resnest") == ["resnest50"]


def test_feature_info(resnest50_uninit):
    assert [dict(e) for e in resnest50_uninit.feature_info] == RESNEST50_INFO


def test_parameter_names_and_count_match_mindcv(resnest50_uninit):
    params = {p.name: tuple(p.shape) for p in resnest50_uninit.get_parameters()}
    expected = {
        "conv1.0.weight": (32, 3, 3, 3),  # deep stem 32 -> 32 -> 64
        "conv1.1.gamma": (32,),
        "conv1.3.weight": (32, 32, 3, 3),
        "conv1.6.weight": (64, 32, 3, 3),
        "bn1.moving_variance": (64,),
        "layer1.0.conv1.weight": (64, 64, 1, 1),
        "layer1.0.conv2.conv.weight": (128, 32, 3, 3),  # radix 2: groups = 2
        "layer1.0.conv2.bn0.gamma": (128,),
        "layer1.0.conv2.fc1.weight": (32, 64, 1, 1),
        "layer1.0.conv2.fc1.bias": (32,),
        "layer1.0.conv2.bn1.moving_mean": (32,),
        "layer1.0.conv2.fc2.weight": (128, 32, 1, 1),
        "layer1.0.conv3.weight": (256, 64, 1, 1),
        "layer1.0.downsample.1.weight": (256, 64, 1, 1),  # .0 is the average pool
        "layer1.0.downsample.2.beta": (256,),
        "layer2.0.conv2.fc1.weight": (64, 128, 1, 1),
        "layer4.2.bn3.gamma": (2048,),
        "fc.weight": (1000, 2048),
        "fc.bias": (1000,),
    }
    for name, shape in expected.items():
        assert params.get(name) == shape, f"{name}: {params.get(name)} != {shape}"
    assert not any("bn2" in n for n in params), "radix 2 blocks have no bn2"
    n_trainable = sum(int(np.prod(p.shape)) for p in resnest50_uninit.trainable_params())
    assert n_trainable == 27_483_240  # MindCV resnest50: 27.48M


def test_block_structure(resnest50_uninit):
    m = resnest50_uninit
    assert not m.layer1[0].avd and not hasattr(m.layer1[0], "avd_layer")
    for layer in (m.layer2, m.layer3, m.layer4):
        assert layer[0].avd and isinstance(layer[0].avd_layer, nn.AvgPool2d)  # stride in the avg pool
        assert isinstance(layer[0].downsample[0], nn.AvgPool2d)  # avg_down shortcut
        assert not layer[1].avd


def test_odd_sizes_keep_shortcut_and_block_in_step(resnest50_uninit):
    """The avg-down shortcut pools "same" (MindCV: "valid"), so odd sizes give ceil(H / 2) on both paths."""
    out = resnest50_uninit.layer2[0](Tensor(rand_images(1, 7, 9, channels=256)))
    assert out.shape == (1, 512, 4, 5)


def _grouped_1x1(x: np.ndarray, conv: nn.Conv2d) -> np.ndarray:
    """A grouped 1x1 convolution with bias on ``(B, C)`` vectors, in numpy."""
    w, bias, g = conv.weight.asnumpy()[:, :, 0, 0], conv.bias.asnumpy(), conv.group
    ci, co = x.shape[1] // g, w.shape[0] // g
    return np.concatenate([x[:, k * ci:(k + 1) * ci] @ w[k * co:(k + 1) * co].T for k in range(g)], 1) + bias


def _bn(x: np.ndarray, bn: nn.BatchNorm2d) -> np.ndarray:
    std = np.sqrt(bn.moving_variance.asnumpy() + bn.eps)
    return (x - bn.moving_mean.asnumpy()) / std * bn.gamma.asnumpy() + bn.beta.asnumpy()


class _Branches(nn.Cell):
    """The split-attention input: conv -> bn0 -> act0 (``radix`` branches side by side)."""

    def __init__(self, sa):
        super().__init__(auto_prefix=False)
        self.sa = sa

    def construct(self, x):
        return self.sa.act0(self.sa.bn0(self.sa.conv(x)))


@pytest.mark.parametrize("group", [1, 2])
def test_split_attention_matches_numpy_reference(group):
    """Radix softmax per cardinal group, weighted sum of the radix branches (MindCV semantics)."""
    radix, chs = 2, 64
    sa = build_model_with_cfg(SplitAttn, False, seed=group, in_channels=chs, out_channels=chs, padding=1,
                              group=group, radix=radix, norm_layer=nn.BatchNorm2d)
    x = Tensor(rand_images(2, 16, 24, channels=chs, seed=1))
    got = sa(x).asnumpy()
    y = _Branches(sa)(x).asnumpy().reshape(2, radix, chs, 16, 24)
    gap = y.sum(axis=1).mean(axis=(2, 3))
    hidden = np.maximum(_bn(_grouped_1x1(gap, sa.fc1), sa.bn1), 0.0)
    logits = _grouped_1x1(hidden, sa.fc2).reshape(2, group, radix, -1).transpose(0, 2, 1, 3)
    attn = np.exp(logits - logits.max(axis=1, keepdims=True))
    attn = (attn / attn.sum(axis=1, keepdims=True)).reshape(2, radix, chs)
    want = (y * attn[..., None, None]).sum(axis=1)
    assert_close_rel(got, want, rtol=1e-5, what=f"SplitAttn group={group}")
    # the calibrated, conditioned attention really mixes the branches, per image
    assert attn.std() > 0.05 and np.abs(attn[0] - attn[1]).max() > 1e-3


def test_attention_norm_is_conditioned_after_calibration(resnest50_uninit):
    """Each attention BatchNorm is re-centred after calibration: mean 0, variance = the second moment."""
    attn = [c for _, c in resnest50_uninit.cells_and_names() if isinstance(c, SplitAttn)]
    assert len(attn) == 16
    sa = attn[0]
    n = sa.bn1.moving_mean.shape
    sa.bn1.moving_mean.set_data(Tensor(np.full(n, 2.0, np.float32)))
    sa.bn1.moving_variance.set_data(Tensor(np.full(n, 0.01, np.float32)))
    sa.init_after_calibration()  # the hook exporters.init calls after calibrating
    np.testing.assert_array_equal(sa.bn1.moving_mean.asnumpy(), 0.0)
    np.testing.assert_allclose(sa.bn1.moving_variance.asnumpy(), 4.01, rtol=1e-6)
