"""The feature_info mechanism on the three scenario dummies, and its error paths."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mindspore")

import mindspore as ms  # noqa: E402
from mindspore import Tensor  # noqa: E402

import exporters  # noqa: E402
from exporters import FeatureExtractWrapper, build_model_with_cfg  # noqa: E402
from graphfeat.errors import CheckpointNotFoundError, GraphfeatError  # noqa: E402

from conftest import rand_images  # noqa: E402
from scenario_models import DummyS1, DummyS2, DummyS3Features  # noqa: E402

X = rand_images(2, 32, 48)


def run(cell, x=X):
    out = cell(Tensor(x))
    return [o.asnumpy() for o in out] if isinstance(out, tuple) else out.asnumpy()


def test_scenario1_equals_manual_forward():
    net = build_model_with_cfg(DummyS1, False, seed=3)
    stem = net.stem(Tensor(X))
    l1 = net.layer1(stem)
    l2 = net.layer2(l1)
    feats = run(FeatureExtractWrapper(net))
    assert len(feats) == 3
    for got, want in zip(feats, (stem, l1, l2)):
        np.testing.assert_allclose(got, want.asnumpy(), rtol=1e-5, atol=1e-6)


def test_scenario2_flattens_and_equals_manual_forward():
    net = build_model_with_cfg(DummyS2, False, seed=3)
    x, manual = Tensor(X), []
    for cell in net.features:
        x = cell(x)
        manual.append(x.asnumpy())
    wrapper = FeatureExtractWrapper(net, out_indices=[0, 2])
    feats = run(wrapper)
    np.testing.assert_allclose(feats[0], manual[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(feats[1], manual[3], rtol=1e-5, atol=1e-6)
    names = [p.name for p in wrapper.get_parameters()]
    assert "features_0.0.weight" in names and "features_3.0.weight" in names
    assert wrapper.renamed == {f"features.{i}": f"features_{i}" for i in range(4)}


def test_scenario3_rewritten_equals_manual_forward():
    net = build_model_with_cfg(DummyS3Features, False, seed=3)
    stem = net.stem(Tensor(X))
    a = net.branch_a(stem)
    b = net.branch_b(stem) + net.fuse(a)
    feats = run(FeatureExtractWrapper(net))
    np.testing.assert_allclose(feats[0], a.asnumpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(feats[1], b.asnumpy(), rtol=1e-5, atol=1e-6)
    only_deep = run(FeatureExtractWrapper(net, out_indices=[-1]))
    assert len(only_deep) == 1
    np.testing.assert_allclose(only_deep[0], b.asnumpy(), rtol=1e-5, atol=1e-6)


def test_truncation_drops_head_and_later_stages():
    wrapper = build_model_with_cfg(DummyS1, False, seed=0, features_only=True, out_indices=[1])
    assert list(wrapper.net.name_cells()) == ["stem", "layer1"]
    assert not any(p.name.startswith(("layer2", "classifier")) for p in wrapper.get_parameters())
    assert wrapper.feature_info.module_name() == ["layer1"]
    assert wrapper.feature_info.channels() == [16] and wrapper.feature_info.reduction() == [4]
    out = wrapper(Tensor(X))
    assert isinstance(out, tuple) and len(out) == 1
    # the truncated net computes exactly the full net's layer1
    full = build_model_with_cfg(DummyS1, False, seed=0)
    np.testing.assert_allclose(out[0].asnumpy(), full.layer1(full.stem(Tensor(X))).asnumpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bad, msg", [
    ([5], "out of range"),
    ([-4], "out of range"),
    ([0, 0], "twice"),
    ([2, 1], "ascending"),
    ([], "empty"),
    (["a"], "integers"),
])
def test_out_indices_errors_name_the_valid_range(bad, msg):
    net = build_model_with_cfg(DummyS1, False, seed=0)
    with pytest.raises(ValueError, match=msg) as err:
        FeatureExtractWrapper(net, out_indices=bad)
    if msg != "empty":
        assert "-3..2" in str(err.value)


def test_negative_out_indices_count_from_the_end():
    wrapper = build_model_with_cfg(DummyS1, False, seed=0, features_only=True, out_indices=[-2, -1])
    assert wrapper.feature_info.module_name() == ["layer1", "layer2"]


def test_missing_feature_info_is_a_clear_error():
    class NoInfo(DummyS1):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.feature_info = []

    with pytest.raises(GraphfeatError, match="NoInfo registers no feature_info") as err:
        build_model_with_cfg(NoInfo, False, seed=0, features_only=True)
    assert "append dict(chs=, reduction=, name=) entries to self.feature_info" in str(err.value)  # the fix


def test_feature_name_that_is_not_a_cell_is_a_clear_error():
    class Wrong(DummyS1):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.feature_info[1] = dict(chs=16, reduction=4, name="layer9")

    with pytest.raises(GraphfeatError, match=r"feature_info names \['layer9'\] are not top-level cells") as err:
        build_model_with_cfg(Wrong, False, seed=0, features_only=True)
    assert "available:" in str(err.value) and "'layer1'" in str(err.value)  # what could be named instead


def test_seed_gives_reproducible_weights():
    a = build_model_with_cfg(DummyS1, False, seed=7)
    b = build_model_with_cfg(DummyS1, False, seed=7)
    c = build_model_with_cfg(DummyS1, False, seed=8)
    np.testing.assert_array_equal(run(a), run(b))
    assert not np.allclose(run(a), run(c))


def test_pretrained_refuses_and_points_to_checkpoint_path():
    with pytest.raises(GraphfeatError, match="checkpoint_path"):
        exporters.create_model("resnet18", pretrained=True)


def test_unknown_model_suggests_close_names():
    with pytest.raises(GraphfeatError, match="resnet18"):
        exporters.create_model("resnet81")


# ---------------------------------------------------------------- checkpoints

@pytest.fixture(scope="module")
def s2_checkpoint(tmp_path_factory):
    net = build_model_with_cfg(DummyS2, False, seed=11)
    path = tmp_path_factory.mktemp("ckpt") / "s2.ckpt"
    ms.save_checkpoint(net, str(path))
    return net, path


def test_auto_mapping_loads_a_classifier_checkpoint_into_flattened_features(s2_checkpoint):
    full, path = s2_checkpoint
    expected = run(FeatureExtractWrapper(build_model_with_cfg(DummyS2, False, seed=11), out_indices=[1, 2]))
    feat = build_model_with_cfg(DummyS2, False, seed=99, features_only=True, out_indices=[1, 2])
    before = run(feat)
    assert not np.allclose(before[1], expected[1]), "seed 99 must differ, or the test proves nothing"
    report = exporters.load_checkpoint_into(feat, path, auto_mapping=True)
    assert report.mapped["features_0.0.weight"] == "features.0.0.weight"
    assert "classifier.weight" in report.unused and "classifier.bias" in report.unused
    after = run(feat)
    for got, want in zip(after, expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_flattened_checkpoint_without_auto_mapping_names_the_fix(s2_checkpoint):
    _, path = s2_checkpoint
    feat = build_model_with_cfg(DummyS2, False, seed=0, features_only=True)
    with pytest.raises(GraphfeatError, match="auto_mapping=True"):
        exporters.load_checkpoint_into(feat, path)


def test_missing_checkpoint_raises_file_not_found(tmp_path):
    net = build_model_with_cfg(DummyS1, False, seed=0)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        exporters.load_checkpoint_into(net, tmp_path / "nope.ckpt")
    assert issubclass(CheckpointNotFoundError, GraphfeatError)


def test_not_a_checkpoint_is_a_clear_error(tmp_path):
    bogus = tmp_path / "bogus.ckpt"
    bogus.write_bytes(b"this is not a checkpoint" * 10)
    net = build_model_with_cfg(DummyS1, False, seed=0)
    with pytest.raises(GraphfeatError, match="not a readable MindSpore checkpoint"):
        exporters.load_checkpoint_into(net, bogus)


def test_shape_mismatch_lists_the_names(tmp_path):
    path = tmp_path / "s1_100.ckpt"
    ms.save_checkpoint(build_model_with_cfg(DummyS1, False, seed=0, num_classes=100), str(path))
    net = build_model_with_cfg(DummyS1, False, seed=0, num_classes=10)
    with pytest.raises(GraphfeatError, match=r"classifier\.weight: model \(10, 32\) vs checkpoint \(100, 32\)"):
        exporters.load_checkpoint_into(net, path)


def test_checkpoint_missing_parameters_lists_them(tmp_path):
    path = tmp_path / "s1.ckpt"
    full = build_model_with_cfg(DummyS1, False, seed=0)
    ms.save_checkpoint([{"name": p.name, "data": p} for p in full.get_parameters() if not p.name.startswith("layer2")],
                       str(path))
    with pytest.raises(GraphfeatError, match=r"lacks \d+ parameter\(s\).*layer2\.0\.0\.weight"):
        exporters.load_checkpoint_into(build_model_with_cfg(DummyS1, False, seed=0), path)


def test_importing_exporters_leaves_child_processes_on_the_fast_protobuf():
    """MindSpore's import sets PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python when it is unset; every process
    started afterwards (pytest-xdist workers, export workers) ran protobuf in pure Python. exporters takes the
    variable back, and this process keeps the backend it picked first."""
    import os
    import subprocess
    import sys

    child = ("import onnx; from google.protobuf.internal import api_implementation as a; print(a.Type())")
    code = ("import os, subprocess, sys; import exporters; "
            "from google.protobuf.internal import api_implementation as a; "
            f"print(a.Type(), os.environ.get('PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION'), "
            f"subprocess.run([sys.executable, '-c', {child!r}], capture_output=True, text=True).stdout.strip())")
    env = {k: v for k, v in os.environ.items() if k != "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-3:] == ["upb", "None", "upb"], proc.stdout
