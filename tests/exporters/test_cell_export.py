"""Bring your own network: ``export_model(cell)`` and ``graphfeat export --cell package.module:factory``.

A user-style module (scenarios 1, 2 and 3, and broken cells) is written into
tmp_path and put on PYTHONPATH; the export runs in the worker as for the zoo.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import pytest

pytest.importorskip("mindspore")

from mindspore import Tensor  # noqa: E402

from exporters.onnx_export import INPUT_NAME, export_model  # noqa: E402
from graphfeat.errors import GraphfeatError  # noqa: E402
from graphfeat.levels import read_metadata  # noqa: E402
from graphfeat.runtime import run_onnxruntime  # noqa: E402

from conftest import assert_close_rel, rand_images  # noqa: E402

USER_MODULE = textwrap.dedent('''
    """A user's own networks, outside graphfeat (the docs/adding-a-backbone.md examples, seeded)."""
    import numpy as np
    import mindspore as ms
    from mindspore import Tensor, nn, ops


    def conv_bn_relu(cin, cout, stride=1):
        return nn.SequentialCell([nn.Conv2d(cin, cout, 3, stride=stride, pad_mode="pad", padding=1),
                                  nn.BatchNorm2d(cout), nn.ReLU()])


    class Stages(nn.Cell):
        def __init__(self, num_classes=10):
            super().__init__()
            self.stem = conv_bn_relu(3, 8, 2)
            self.feature_info = [dict(chs=8, reduction=2, name="stem")]
            self.layer1 = nn.SequentialCell([conv_bn_relu(8, 16, 2), conv_bn_relu(16, 16)])
            self.feature_info.append(dict(chs=16, reduction=4, name="layer1"))
            self.layer2 = conv_bn_relu(16, 32, 2)
            self.feature_info.append(dict(chs=32, reduction=8, name="layer2"))
            self.pool = ops.ReduceMean(keep_dims=False)
            self.classifier = nn.Dense(32, num_classes)

        def construct(self, x):
            x = self.layer2(self.layer1(self.stem(x)))
            return self.classifier(self.pool(x, (2, 3)))


    class Flat(nn.Cell):
        def __init__(self, num_classes=10):
            super().__init__()
            layers = [conv_bn_relu(3, 8, 2)]
            self.feature_info = [dict(chs=8, reduction=2, name="features.0")]
            layers += [conv_bn_relu(8, 16, 2), conv_bn_relu(16, 16)]
            self.feature_info.append(dict(chs=16, reduction=4, name="features.2"))
            self.flatten_sequential = True
            self.features = nn.SequentialCell(layers)
            self.pool = ops.ReduceMean(keep_dims=False)
            self.classifier = nn.Dense(16, num_classes)

        def construct(self, x):
            return self.classifier(self.pool(self.features(x), (2, 3)))


    class TwoBranch(nn.Cell):
        def __init__(self, num_classes=10):
            super().__init__()
            self.stem = conv_bn_relu(3, 8, 2)
            self.branch_a = conv_bn_relu(8, 8)
            self.branch_b = conv_bn_relu(8, 16, 2)
            self.fuse = conv_bn_relu(8, 16, 2)
            self.pool = ops.ReduceMean(keep_dims=False)
            self.classifier = nn.Dense(16, num_classes)

        def forward_levels(self, x):
            x = self.stem(x)
            a = self.branch_a(x)
            return a, self.branch_b(x) + self.fuse(a)

        def construct(self, x):
            return self.classifier(self.pool(self.forward_levels(x)[1], (2, 3)))


    class TwoBranchFeatures(TwoBranch):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.is_rewritten = True
            self.feature_info = [dict(chs=8, reduction=2, name="branch_a"), dict(chs=16, reduction=4, name="fused")]

        def construct(self, x):
            return self.forward_levels(x)


    class NoInfo(Stages):
        def __init__(self):
            super().__init__()
            self.feature_info = []


    class Misordered(Stages):
        """layer2's feature_info names a cell that construct never returns as such."""
        def construct(self, x):
            x = self.layer2(self.layer1(self.stem(x)) * 2.0)
            return self.classifier(self.pool(x, (2, 3)))


    def _seeded(cell, seed):
        rng = np.random.default_rng(seed)
        for p in cell.get_parameters():
            if "moving_variance" in p.name:
                continue
            p.set_data(Tensor(rng.normal(0, 0.3, p.shape).astype(np.float32)))
        cell.set_train(False)
        return cell


    def make(kind="Stages", seed=0, **kwargs):
        return _seeded(globals()[kind](**kwargs), seed)


    def broken(**kwargs):
        raise ValueError("no weights at /nowhere.ckpt")
''')

SIZE = (64, 64)


@pytest.fixture(scope="module")
def user_module(tmp_path_factory):
    root = tmp_path_factory.mktemp("usercode")
    (root / "usercells.py").write_text(USER_MODULE, encoding="utf-8")
    sys.path.insert(0, str(root))
    import usercells

    yield root, usercells
    sys.path.remove(str(root))


def run_export(root, *argv, cwd=None):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", ""), os.getcwd()]))
    return subprocess.run([sys.executable, "-m", "graphfeat", "export", *map(str, argv)], capture_output=True,
                          text=True, env=env, cwd=cwd)


def expected_levels(cell, x):
    from exporters import FeatureExtractWrapper
    from exporters.cells import parameter_names_kept

    with parameter_names_kept(cell):
        wrapper = cell if getattr(cell, "is_rewritten", False) else FeatureExtractWrapper(cell)
    out = wrapper(Tensor(x))
    return [o.asnumpy() for o in (out if isinstance(out, tuple) else (out,))]


@pytest.mark.parametrize("kind,scenario_names", [
    ("Stages", ["stem", "layer1", "layer2"]),
    ("TwoBranchFeatures", ["branch_a", "fused"]),
])
def test_cli_exports_a_user_cell(user_module, tmp_path, kind, scenario_names):
    root, usercells = user_module
    out, ref = tmp_path / f"{kind}.onnx", tmp_path / f"{kind}.npz"
    proc = run_export(root, "--cell", "usercells:make", "--cell-kwargs", json.dumps({"kind": kind, "seed": 1}),
                      "-o", out, "--input-size", *SIZE, "--reference", ref)
    assert proc.returncode == 0, proc.stderr
    record = read_metadata(onnx.load(out))
    assert record["model"] == f"usercells:{kind}" and record["cell_factory"] == "usercells:make"
    assert record["seed"] is None and [lv["name"] for lv in record["levels"]] == scenario_names
    assert record["features_only"] is (kind == "TwoBranchFeatures")
    # an independent MindSpore run of the same cell, on a new input at batch 2
    cell = usercells.make(kind=kind, seed=1)
    x = rand_images(2, *SIZE, seed=5)
    got = run_onnxruntime(onnx.load(out), {INPUT_NAME: x}, [lv["tensor"] for lv in record["levels"]])
    for lv, want in zip(record["levels"], expected_levels(cell, x)):
        assert float(want.std()) > 1e-3
        assert_close_rel(got[lv["tensor"]], want, what=f"{kind} {lv['name']}")
    cut = tmp_path / f"{kind}.cut.onnx"
    proc = subprocess.run([sys.executable, "-m", "graphfeat", "cut", str(out), "--layers", *scenario_names,
                           "-o", str(cut)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([sys.executable, "-m", "graphfeat", "verify", str(cut), "--reference", str(ref)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_api_exports_a_flattened_cell_and_keeps_its_names(user_module, tmp_path):
    _, usercells = user_module
    cell = usercells.make(kind="Flat", seed=2)
    names_before = [p.name for p in cell.get_parameters()]
    report = export_model(cell, tmp_path / "flat.onnx", input_size=SIZE)
    assert [p.name for p in cell.get_parameters()] == names_before  # wrapping renamed nothing for good
    assert report.model == "usercells:Flat" and report.output_max_rel is not None
    record = read_metadata(onnx.load(tmp_path / "flat.onnx"))
    assert [lv["name"] for lv in record["levels"]] == ["features.0", "features.2"]
    inits = {t.name for t in onnx.load(tmp_path / "flat.onnx").graph.initializer}
    assert not any(n.startswith("features_") for n in inits)
    # features_only with out_indices: the wrapper of the user's cell
    report = export_model(cell, tmp_path / "flat_last.onnx", input_size=SIZE, features_only=True, out_indices=[-1])
    assert [lv["name"] for lv in report.levels] == ["features.2"] and report.levels[0]["source_index"] == 1


def test_api_accepts_a_create_model_features_only_cell(tmp_path):
    import exporters

    feats = exporters.create_model("resnet18", features_only=True, out_indices=[1, 3], seed=0)
    report = export_model(feats, tmp_path / "r18.onnx", input_size=SIZE)
    assert report.model == "exporters.models.resnet:ResNet"
    assert [lv["name"] for lv in report.levels] == ["layer1", "layer3"]
    assert [lv["source_index"] for lv in report.levels] == [1, 3]


@pytest.mark.parametrize("argv,message", [
    (["--cell", "usercells:broken"], "the factory usercells:broken raised ValueError: no weights at /nowhere.ckpt"),
    (["--cell", "usercells:make", "--cell-kwargs", '{"kind": "NoInfo"}'], "NoInfo has no feature_info"),
    (["--cell", "usercells:make", "--cell-kwargs", '{"kind": "Misordered"}'], "'layer2'"),
    (["--cell", "nosuchmodule:make"], "cannot import 'nosuchmodule'"),
    (["--cell", "usercells:make", "--cell-kwargs", "[1]"], "must be a JSON object"),
    (["--cell", "usercells"], "must be package.module:factory"),
])
def test_cell_errors_exit_2_with_one_line_and_no_file(user_module, tmp_path, argv, message):
    root, _ = user_module
    out = tmp_path / "never.onnx"
    proc = run_export(root, *argv, "-o", out, "--input-size", *SIZE)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    if "feature_info" in message:
        assert "docs/adding-a-backbone.md" in lines[0]
    if "'layer2'" in message:
        assert "no ONNX tensor equals" in lines[0]
    assert not out.exists() and not list(tmp_path.iterdir())


def test_api_refuses_what_is_not_a_cell(tmp_path):
    with pytest.raises(GraphfeatError, match="feature protocol"):
        export_model(object(), tmp_path / "x.onnx", input_size=SIZE)
    assert not (tmp_path / "x.onnx").exists()


def test_worker_reports_a_factory_that_returns_no_cell(user_module, tmp_path):
    root, _ = user_module
    (root / "notacell.py").write_text("def make():\n    return 42\n", encoding="utf-8")
    proc = run_export(root, "--cell", "notacell:make", "-o", tmp_path / "n.onnx")
    assert proc.returncode == 2 and "returned int, not a mindspore.nn.Cell" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    np.testing.assert_equal(list(tmp_path.iterdir()), [])
