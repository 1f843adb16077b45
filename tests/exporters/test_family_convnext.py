"""ConvNeXt family: feature_info, MindCV parameter names, exportable LayerNorm/GELU, layer scales."""
from __future__ import annotations

import numpy as np
import pytest

import exporters
from exporters.models.convnext import LAYER_SCALE_INIT_RANGE, Block, ConvNextLayerNorm
from exporters.models.layers import GELU
from mindspore import Tensor, nn

STAGES = [
    dict(chs=96, reduction=4, name="feature.1"),
    dict(chs=192, reduction=8, name="feature.3"),
    dict(chs=384, reduction=16, name="feature.5"),
    dict(chs=768, reduction=32, name="feature.7"),
]
EXPECTED = {  # name -> (feature_info, stage depths, parameter count)
    "convnext_tiny": (STAGES, [3, 3, 9, 3], 28_589_128),
    "convnext_small": (STAGES, [3, 3, 27, 3], 50_223_688),
}


@pytest.fixture(scope="module")
def tiny():
    """The convnext_tiny classifier at seed 0 (no BatchNorm, so building it compiles nothing)."""
    return exporters.create_model("convnext_tiny", seed=0)


def test_registered_variants():
    assert exporters.list_models(family="convnext") == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_feature_info_depths_and_size(name):
    info, depths, num_params = EXPECTED[name]
    model = exporters.create_model(name, features_only=True, seed=0)
    assert model.flatten_sequential and not model.is_rewritten
    assert model.feature_info.get_dicts() == info
    net = model.net  # truncated after feature.7: the final norm and the classifier are gone
    assert list(net.name_cells()) == [f"feature_{i}" for i in range(8)]
    assert [len(net.name_cells()[f"feature_{2 * i + 1}"]) for i in range(4)] == depths
    full = exporters.create_model(name, seed=0)
    assert sum(int(np.prod(p.shape)) for p in full.get_parameters()) == num_params


def test_mindcv_parameter_names(tiny):
    shapes = {p.name: tuple(p.shape) for p in tiny.get_parameters()}
    expected = {
        "feature.0.0.weight": (96, 3, 4, 4),  # stem conv
        "feature.0.0.bias": (96,),
        "feature.0.1.gamma": (96,),  # stem channels-first LayerNorm
        "feature.0.1.beta": (96,),
        "feature.1.0.dwconv.weight": (96, 1, 7, 7),
        "feature.1.0.dwconv.bias": (96,),
        "feature.1.0.norm.gamma": (96,),
        "feature.1.0.pwconv1.weight": (384, 96),
        "feature.1.0.pwconv1.bias": (384,),
        "feature.1.0.pwconv2.weight": (96, 384),
        "feature.1.0.gamma_": (96,),  # layer scale
        "feature.2.0.gamma": (96,),  # downsample: LayerNorm then 2x2 conv
        "feature.2.1.weight": (192, 96, 2, 2),
        "feature.5.8.pwconv2.bias": (384,),
        "feature.7.2.gamma_": (768,),
        "norm.gamma": (768,),
        "norm.beta": (768,),
        "classifier.weight": (1000, 768),
        "classifier.bias": (1000,),
    }
    assert {n: shapes.get(n) for n in expected} == expected
    assert "feature.5.9.dwconv.weight" not in shapes
    assert {str(p.dtype) for p in tiny.get_parameters()} == {"Float32"}


def test_gelu_is_the_exportable_tanh_approximation(tiny):
    cells = [c for _, c in tiny.cells_and_names()]
    blocks = [c for c in cells if isinstance(c, Block)]
    assert len(blocks) == 18
    assert all(isinstance(b.act, GELU) for b in blocks)
    gelus = [c for c in cells if isinstance(c, nn.GELU)]
    assert gelus and all(g.approximate == "tanh" for g in gelus)


def test_layer_scales_are_large_at_random_init(tiny):
    low, high = LAYER_SCALE_INIT_RANGE
    scales = np.concatenate([p.asnumpy() for p in tiny.get_parameters() if p.name.endswith(".gamma_")])
    assert scales.size == 96 * 3 + 192 * 3 + 384 * 9 + 768 * 3
    assert low <= scales.min() and scales.max() <= high
    assert scales.std() > 0.05  # drawn, not a constant


def test_blocks_contribute_at_random_init(tiny):
    x = Tensor(np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32))
    stem_out = tiny.feature[0](x)
    stage_out = tiny.feature[1](stem_out)
    a, b = stem_out.asnumpy(), stage_out.asnumpy()
    assert b.shape == (1, 96, 16, 16)
    assert np.linalg.norm(b - a) > 0.1 * np.linalg.norm(a)


def test_channels_first_layernorm_normalises_over_channels():
    norm = ConvNextLayerNorm((5,), epsilon=1e-6, norm_axis=1)
    rng = np.random.default_rng(1)
    gamma = rng.uniform(0.5, 2.0, 5).astype(np.float32)
    beta = rng.standard_normal(5).astype(np.float32)
    norm.gamma.set_data(Tensor(gamma))
    norm.beta.set_data(Tensor(beta))
    x = (3.0 + 2.0 * rng.standard_normal((2, 5, 3, 4))).astype(np.float32)
    got = norm(Tensor(x)).asnumpy()
    mean = x.mean(axis=1, keepdims=True)
    var = x.var(axis=1, keepdims=True)
    want = (x - mean) / np.sqrt(var + 1e-6) * gamma[None, :, None, None] + beta[None, :, None, None]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
