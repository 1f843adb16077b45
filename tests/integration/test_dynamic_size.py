"""``export --dynamic-size``: one file for every input size the strides divide.

Every family is exported with batch, height and width free (probe 64x64, proven
against MindSpore at 64x96 too), cut to its pyramid, and verified at two more
sizes (96x96 and 64x128) against MindSpore, through FeaturePyramid.
"""
from __future__ import annotations

import subprocess
import sys

import onnx
import pytest

pytest.importorskip("mindspore")

import exporters  # noqa: E402
import graphfeat  # noqa: E402
from exporters.catalog import DYNAMIC_SIZE_LIMITS  # noqa: E402
from graphfeat import FeaturePyramid  # noqa: E402
from graphfeat.errors import GraphfeatError  # noqa: E402
from graphfeat.levels import read_metadata  # noqa: E402
from graphfeat.runtime import export_in_worker  # noqa: E402

from conftest import assert_close_rel, rand_images  # noqa: E402
from ms_helpers import features, levels, representatives  # noqa: E402

PROBE, SECOND = (64, 64), (64, 96)
OTHER_SIZES = [(96, 96), (64, 128)]
#: families whose classifier keeps the probe size (the README's "dynamic size" column, from
#: exporters.catalog): their features-only export is freed instead, the classifier is refused (test below)
REFUSED = [n for n in representatives() if DYNAMIC_SIZE_LIMITS.get(exporters.model_family(n), "").startswith("no")]
FEATURES_ONLY = {n for n in representatives() if exporters.model_family(n) in DYNAMIC_SIZE_LIMITS} - set(REFUSED)


@pytest.fixture
def dynamic_exports(exported):
    """``dynamic_exports(name)``: ``(path, report)`` of the model's dynamic-size export (once per test run)."""
    def get(name):
        path, _, report = exported(name, PROBE, dynamic_size=True, second_size=SECOND,
                                   features_only=name in FEATURES_ONLY)
        return path, report

    return get


@pytest.mark.parametrize("name", [n for n in representatives() if n not in REFUSED])
def test_dynamic_size_export_holds_at_other_sizes(dynamic_exports, name, tmp_path):
    path, report = dynamic_exports(name)
    assert report.dynamic_size and report.second_size == list(SECOND) and report.second_size_worst_rel < 1e-4
    model = onnx.load(path)
    record = read_metadata(model)
    assert record["input"]["shape"] == ["batch", 3, "height", "width"]
    assert record["dynamic_size"] is True and record["proven_sizes"] == [list(PROBE), list(SECOND)]
    info = graphfeat.feature_info(path)
    names = [info.module_name(i) for i in info.pyramid_indices()]
    cut = tmp_path / f"{name}.pyramid.onnx"
    graphfeat.cut_file(path, cut, layers=names)
    pyramid = FeaturePyramid(cut)
    ref_model = features(name)
    all_names = ref_model.feature_info.module_name()
    for h, w in OTHER_SIZES:
        x = rand_images(2, h, w, seed=h + w)
        got = pyramid(x)
        expected = dict(zip(all_names, levels(ref_model, x)))
        for n in names:
            assert_close_rel(got[n], expected[n], what=f"{name} {n} at {h}x{w}")


def test_verify_cli_at_another_size(dynamic_exports, tmp_path):
    path, _ = dynamic_exports("resnet18")
    cut = tmp_path / "r18.cut.onnx"
    graphfeat.cut_file(path, cut, layers=["layer2", "layer4"])
    proc = subprocess.run([sys.executable, "-m", "graphfeat", "verify", str(cut), "--model", "resnet18",
                           "--input-size", "96", "128", "--batch", "2"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_family_that_cannot_be_freed_is_refused_with_the_reason(tmp_path):
    out = tmp_path / "vgg11.onnx"
    # in a worker, as `graphfeat export` runs it (vgg11's 133M parameters stay out of this process)
    with pytest.raises(GraphfeatError, match=r"input size cannot be freed: at 64x96 .*Slice"):
        export_in_worker("vgg11", out, input_size=PROBE, dynamic_size=True, second_size=SECOND)
    assert not out.exists() and not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", REFUSED)
def test_a_family_whose_size_is_fixed_at_build_is_refused_with_the_reason(name, tmp_path):
    """The families the catalog says "no" for refuse before exporting, in one line with the reason."""
    out = tmp_path / f"{name}.onnx"
    with pytest.raises(GraphfeatError, match="--dynamic-size") as err:
        export_in_worker(name, out, input_size=PROBE, dynamic_size=True, second_size=SECOND, features_only=True)
    assert "\n" not in str(err.value) and not out.exists() and not list(tmp_path.iterdir())


def test_dynamic_size_cli_flags(tmp_path):
    out = tmp_path / "never.onnx"
    proc = subprocess.run([sys.executable, "-m", "graphfeat", "export", "resnet18", "-o", str(out),
                           "--second-size", "64", "96"], capture_output=True, text=True)
    assert proc.returncode == 2 and "add --dynamic-size" in proc.stderr and not out.exists()
    proc = subprocess.run([sys.executable, "-m", "graphfeat", "export", "resnet18", "-o", str(out), "--dynamic-size",
                           "--static-batch"], capture_output=True, text=True)
    assert proc.returncode == 2 and "drop --static-batch" in proc.stderr and not out.exists()
