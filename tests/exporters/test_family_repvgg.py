"""RepVGG: feature_info, MindCV parameter names, and the deploy-time re-parameterisation."""
from __future__ import annotations

import copy

import numpy as np
import pytest

pytest.importorskip("mindspore")

from mindspore import Tensor  # noqa: E402

import exporters  # noqa: E402
import exporters.helpers  # noqa: E402
from exporters import FeatureExtractWrapper, load_checkpoint_into  # noqa: E402
from exporters.models.repvgg import RepVGGBlock, repvgg_model_convert  # noqa: E402

from conftest import assert_close_rel, rand_images  # noqa: E402

# name: (widths of stage0..stage4, trainable parameters of the training form)
VARIANTS = {
    "repvgg_a0": ((48, 48, 96, 192, 1280), 9_108_968),
    "repvgg_a1": ((64, 64, 128, 256, 1280), 14_092_264),
    "repvgg_b0": ((64, 64, 128, 256, 1280), 15_817_960),
}
X = rand_images(2, 64, 96)


def _levels(out) -> list[np.ndarray]:
    return [o.asnumpy() for o in out] if isinstance(out, tuple) else [out.asnumpy()]


def _blocks(model) -> list[RepVGGBlock]:
    return [c for _, c in model.cells_and_names() if isinstance(c, RepVGGBlock)]


def test_registered_variants():
    assert exporters.list_models(family="repvgg") == sorted(VARIANTS)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_feature_info_names_and_size(name):
    widths, n_params = VARIANTS[name]
    model = exporters.create_model(name, init=False)
    expected = [dict(chs=c, reduction=2 ** (i + 1), name=f"stage{i}") for i, c in enumerate(widths)]
    assert [dict(e) for e in model.feature_info] == expected
    params = {p.name: tuple(p.shape) for p in model.get_parameters()}
    c0, c1 = widths[0], widths[1]
    for pname, shape in {
        "stage0.rbr_dense.0.weight": (c0, 3, 3, 3),
        "stage0.rbr_dense.1.gamma": (c0,),
        "stage0.rbr_1x1.0.weight": (c0, 3, 1, 1),
        "stage0.rbr_1x1.1.moving_variance": (c0,),
        "stage1.0.rbr_dense.0.weight": (c1, c0, 3, 3),
        "stage1.1.rbr_identity.gamma": (c1,),
        "stage1.1.rbr_identity.moving_mean": (c1,),
        "stage4.0.rbr_1x1.1.beta": (1280,),
        "linear.weight": (1000, 1280),
        "linear.bias": (1000,),
    }.items():
        assert params.get(pname) == shape, f"{name} {pname}: {params.get(pname)} != {shape}"
    # strided / channel-changing blocks have no identity branch
    assert not any(n.startswith(("stage0.rbr_identity", "stage1.0.rbr_identity", "stage4.0.rbr_identity"))
                   for n in params)
    assert sum(int(np.prod(p.shape)) for p in model.trainable_params()) == n_params


def test_squeeze_excite_option_uses_mindcv_names():
    names = {p.name for p in exporters.create_model("repvgg_a0", use_se=True, init=False).get_parameters()}
    assert {"stage0.se.conv_reduce.weight", "stage0.se.conv_expand.bias", "stage4.0.se.conv_reduce.bias"} <= names


def test_deploy_constructor_matches_converted_names(tmp_path):
    """A converted checkpoint (save_path) loads strictly into a model built with deploy=True."""
    trained = exporters.create_model("repvgg_a0", init=False)
    ckpt = tmp_path / "a0_deploy.ckpt"
    converted = repvgg_model_convert(trained, save_path=str(ckpt))
    names = [p.name for p in converted.get_parameters()]
    assert len(names) == len(set(names)) == 2 * 22 + 2  # 22 fused convs (weight, bias) + linear
    assert "stage0.rbr_reparam.weight" in names and "stage3.13.rbr_reparam.bias" in names
    assert not any("rbr_dense" in n or "rbr_1x1" in n or "rbr_identity" in n for n in names)
    deployed = exporters.create_model("repvgg_a0", deploy=True, init=False)
    assert sorted(p.name for p in deployed.get_parameters()) == sorted(names)
    report = load_checkpoint_into(deployed, ckpt)
    assert not report.unused


@pytest.fixture(scope="module")
def a0():
    return exporters.create_model("repvgg_a0", seed=0)


def _check_fused(converted, refs, what):
    """Converted outputs equal the training form, and really come from the fused convolutions."""
    assert all(b.deploy for b in _blocks(converted)) and len(_blocks(converted)) == 22
    got = _levels(converted(Tensor(X)))
    assert len(got) == len(refs)
    for i, (g, r) in enumerate(zip(got, refs)):
        assert_close_rel(g, r, rtol=1e-4, what=f"{what} level {i}")
    # a stale compiled graph would still run the old branches and ignore this change
    bias = _blocks(converted)[-1].rbr_reparam.bias
    bias.set_data(Tensor(bias.asnumpy() + 1.0))
    moved = _levels(converted(Tensor(X)))[-1]
    assert np.abs(moved - got[-1]).max() > 0.5, f"{what}: the converted model still runs a stale graph"


def test_reparam_classifier_copy(a0):
    ref = _levels(a0(Tensor(X)))
    converted = repvgg_model_convert(a0)  # do_copy=True: a0 stays in training form
    assert converted is not a0 and not any(b.deploy for b in _blocks(a0))
    _check_fused(converted, ref, "classifier")
    np.testing.assert_array_equal(_levels(a0(Tensor(X)))[0], ref[0])


def test_reparam_features_in_place(a0):
    wrapper = FeatureExtractWrapper(copy.deepcopy(a0))  # what create_model(..., features_only=True) returns
    refs = _levels(wrapper(Tensor(X)))  # compiles the training form first
    assert [r.shape[1] for r in refs] == [48, 48, 96, 192, 1280]
    converted = repvgg_model_convert(wrapper, do_copy=False)
    assert converted is wrapper
    _check_fused(converted, refs, "features_only")
