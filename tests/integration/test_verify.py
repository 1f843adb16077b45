"""Prove the pyramid: export, cut to strides 4/8/16/32, and compare every level on each runtime."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("mindspore")

import mindspore as ms  # noqa: E402

import graphfeat  # noqa: E402
from graphfeat import FeaturePyramid  # noqa: E402
from graphfeat.errors import GraphfeatError  # noqa: E402
from graphfeat.runtime import compare_level  # noqa: E402
from graphfeat import verify  # noqa: E402

from conftest import rand_images  # noqa: E402
from ms_helpers import classifier, features, levels, representatives  # noqa: E402
from onnx_fixtures import BLOCK_MINDSPORE  # noqa: E402


def cut_pyramid(exported, name, size=(64, 64)):
    """The exported model cut to the deepest level at each stride 4/8/16/32; returns (path, ref, names)."""
    path, ref, _ = exported(name, size)
    info = graphfeat.feature_info(path)
    names = [info.module_name(i) for i in info.pyramid_indices()]
    # exports are shared by the pytest-xdist workers; each worker cuts its own copy
    out = path.with_name(f"{path.stem}.{os.environ.get('PYTEST_XDIST_WORKER', 'main')}.pyramid.onnx")
    if not out.exists():
        graphfeat.cut_file(path, out, layers=names)
    return out, ref, names


def assert_pyramid_matches(cut_path, names, x, expected: dict, runtime="onnxruntime", what=""):
    pyramid = FeaturePyramid(cut_path, runtime=runtime)
    assert pyramid.feature_info.module_name() == names
    got = pyramid(x)
    assert list(got) == names
    for n in names:
        m = compare_level(n, got[n], expected[n])
        assert m.ok, f"{what} {n} on {runtime} b{x.shape[0]}: max rel {m.max_rel:.3g} {m.note}"
    return got


def matches_reference(cut_path, ref_path, names, runtime="onnxruntime"):
    """Batch 1: the export's probe and the MindSpore levels it wrote (no MindSpore run here)."""
    ref = np.load(ref_path)
    return assert_pyramid_matches(cut_path, names, ref["input"], {n: ref[f"level/{n}"] for n in names},
                                  runtime, what=str(cut_path.name))


def matches_mindspore(name, cut_path, names, batch, size, runtime="onnxruntime", seed=7):
    """A new seeded batch, with MindSpore run in this process."""
    x = rand_images(batch, *size, seed=seed)
    expected = dict(zip(features(name).feature_info.module_name(), levels(features(name), x)))
    return assert_pyramid_matches(cut_path, names, x, expected, runtime, what=name)


@pytest.mark.parametrize("name", representatives())
def test_pyramid_on_onnxruntime_batch_1_and_3(name, exported):
    cut_path, ref, names = cut_pyramid(exported, name)
    info = features(name).feature_info
    assert info.reduction(info.module_name().index(names[-1])) == 32
    matches_reference(cut_path, ref, names)
    matches_mindspore(name, cut_path, names, 3, (64, 64))


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small_100"])
def test_pyramid_non_square(name, exported):
    cut_path, ref, names = cut_pyramid(exported, name, (64, 96))
    matches_reference(cut_path, ref, names)
    got = matches_mindspore(name, cut_path, names, 2, (64, 96))
    assert got[names[-1]].shape[2:] == (2, 3)


@pytest.mark.slow
@pytest.mark.parametrize("name", representatives())
def test_pyramid_non_square_all_families(name, exported):
    cut_path, ref, names = cut_pyramid(exported, name, (96, 128))
    matches_reference(cut_path, ref, names)
    matches_mindspore(name, cut_path, names, 3, (96, 128))


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small_100"])
def test_pyramid_on_onnx_reference_evaluator(name, exported):
    cut_path, ref, names = cut_pyramid(exported, name)
    matches_reference(cut_path, ref, names, runtime="reference")


@pytest.mark.parametrize("name", representatives())
def test_pyramid_on_openvino(name, exported):
    pytest.importorskip("openvino")
    cut_path, ref, names = cut_pyramid(exported, name)
    matches_reference(cut_path, ref, names, runtime="openvino")


def test_verify_cli_json_against_reference(exported):
    cut_path, ref, names = cut_pyramid(exported, "resnet18")
    proc = subprocess.run([sys.executable, "-m", "graphfeat", "verify", str(cut_path), "--reference", str(ref),
                           "--batch", "2", "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert [lv["name"] for lv in report["levels"]] == names
    assert set(report["levels"][0]) == {"name", "shape", "max_abs", "max_rel", "cosine", "ok", "note",
                                          "sqnr", "dtype", "criterion"}
    assert all(lv["ok"] and lv["max_rel"] <= 1e-4 and lv["cosine"] > 0.9999 for lv in report["levels"])


def test_verify_cli_several_runtimes_share_one_reference(exported, tmp_path):
    pytest.importorskip("openvino")
    cut_path, ref, names = cut_pyramid(exported, "resnet18")
    cmd = [sys.executable, "-m", "graphfeat", "verify", str(cut_path), "--runtime", "onnxruntime", "openvino",
           "--json"]
    proc = subprocess.run(cmd + ["--reference", str(ref)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ok"] is True and [r["runtime"] for r in doc["runtimes"]] == ["onnxruntime", "openvino"]
    assert all([lv["name"] for lv in r["levels"]] == names for r in doc["runtimes"])
    data = dict(np.load(ref))
    data[f"level/{names[2]}"] = data[f"level/{names[2]}"] * 1.01
    np.savez(tmp_path / "bad.npz", **data)
    bad = subprocess.run(cmd + ["--reference", str(tmp_path / "bad.npz")], capture_output=True, text=True)
    assert bad.returncode == 1, bad.stderr
    doc = json.loads(bad.stdout)
    assert doc["ok"] is False
    assert all([lv["ok"] for lv in r["levels"]] == [True, True, False, True] for r in doc["runtimes"])
    unknown = subprocess.run(cmd[:-1] + ["tensorrt", "--reference", str(ref)], capture_output=True, text=True)
    assert unknown.returncode == 2 and "tensorrt" in unknown.stderr


def test_verify_fails_with_exit_1_on_a_wrong_reference(exported, tmp_path):
    cut_path, ref, names = cut_pyramid(exported, "resnet18")
    data = dict(np.load(ref))
    data[f"level/{names[1]}"] = data[f"level/{names[1]}"] * 1.01
    bad = tmp_path / "bad.npz"
    np.savez(bad, **data)
    proc = subprocess.run([sys.executable, "-m", "graphfeat", "verify", str(cut_path), "--reference", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL" in proc.stdout and names[1] in proc.stdout


def test_verify_refuses_a_degenerate_reference(exported, tmp_path):
    cut_path, ref, names = cut_pyramid(exported, "resnet18")
    data = dict(np.load(ref))
    data[f"level/{names[0]}"] = np.zeros_like(data[f"level/{names[0]}"])
    zero = tmp_path / "zero.npz"
    np.savez(zero, **data)
    report = verify(cut_path, reference=zero)
    assert not report.ok and "degenerate" in report.levels[0].note


def test_verify_with_reference_needs_no_mindspore(exported):
    cut_path, ref, _ = cut_pyramid(exported, "resnet18")
    proc = subprocess.run([sys.executable, "-c", BLOCK_MINDSPORE + "\n", "verify", str(cut_path), "--reference",
                           str(ref)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "all levels pass" in proc.stdout
    needs = subprocess.run([sys.executable, "-c", BLOCK_MINDSPORE, "verify", str(cut_path), "--model", "resnet18"],
                           capture_output=True, text=True)
    assert needs.returncode == 2 and "graphfeat[mindspore]" in needs.stderr


def test_verify_model_from_checkpoint(tmp_path):
    """Weights from a saved .ckpt, exported and verified against MindSpore in a worker process."""
    ckpt = tmp_path / "r18.ckpt"
    ms.save_checkpoint(classifier("resnet18", seed=5), str(ckpt))
    onnx_path = tmp_path / "r18.onnx"
    exp = subprocess.run([sys.executable, "-m", "graphfeat", "export", "resnet18", "-o", str(onnx_path),
                          "--input-size", "64", "64", "--checkpoint", str(ckpt)], capture_output=True, text=True)
    assert exp.returncode == 0, exp.stderr
    cut = graphfeat.cut_file(onnx_path, tmp_path / "r18.pyr.onnx", layers=["layer2", "layer4"])
    ok = subprocess.run([sys.executable, "-m", "graphfeat", "verify", str(cut), "--model", "resnet18",
                         "--checkpoint", str(ckpt), "--batch", "2"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # the same file against the seeded (not the checkpoint) weights must fail
    wrong = subprocess.run([sys.executable, "-m", "graphfeat", "verify", str(cut), "--model", "resnet18",
                            "--seed", "0"], capture_output=True, text=True)
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr


def test_feature_pyramid_rejects_bad_input(exported):
    cut_path, _, _ = cut_pyramid(exported, "resnet18")
    pyramid = FeaturePyramid(cut_path)
    assert pyramid.feature_info.reduction() == [4, 8, 16, 32]
    with pytest.raises(GraphfeatError, match="rank 4"):
        pyramid(np.zeros((3, 64, 64), np.float32))
    with pytest.raises(GraphfeatError, match="float32"):
        pyramid(np.zeros((1, 3, 64, 64), np.float64))
    with pytest.raises(GraphfeatError, match="channels = 3, got 4"):
        pyramid(np.zeros((1, 4, 64, 64), np.float32))
    with pytest.raises(GraphfeatError, match="height = 64, got 32"):
        pyramid(np.zeros((1, 3, 32, 64), np.float32))
