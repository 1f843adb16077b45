"""MindCV's own models, exported as user cells: MindCV's classes, parameter names and checkpoints.

Each model is built by ``mindcv.create_model(name, pretrained=False)``, its
BatchNorm statistics calibrated on a seeded batch (as ``exporters/init.py`` does
for the zoo: MindCV's random init leaves deep levels degenerate), saved as a
MindCV checkpoint, and loaded into a fresh MindCV model with MindSpore's own
``load_checkpoint`` + ``load_param_into_net``. The expected levels come from
MindCV's OWN ``features_only=True`` wrapper with the same checkpoint.

ResNet and EfficientNet blocks end with ``out += identity``, which ``import exporters``
compiles as ``Add`` (``exporters/_mindspore.py``: MindSpore's ``JIT_ENABLE_AUGASSIGN_INPLACE=0``,
process-wide); their expected levels come from a process left at MindSpore's default, in-place
``+=`` (``InplaceAddExt``), so the export is checked against MindCV as MindSpore runs it by default.
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
mindcv = pytest.importorskip("mindcv")

import mindspore as ms  # noqa: E402
from mindspore import Tensor  # noqa: E402

import exporters  # noqa: E402
from exporters.init import calibrate_batchnorm  # noqa: E402
from exporters.onnx_export import INPUT_NAME, export_model  # noqa: E402
from graphfeat.errors import GraphfeatError  # noqa: E402
from graphfeat.levels import read_metadata  # noqa: E402
from graphfeat.runtime import run_onnxruntime  # noqa: E402

from conftest import assert_close_rel, rand_images  # noqa: E402

SIZE = (64, 64)
#: MindCV families that export on MindSpore 2.10 (scenario, class)
WORKING = {
    "repvgg_a0": (1, "mindcv.models.repvgg:RepVGG"),
    "convnext_tiny": (2, "mindcv.models.convnext:ConvNeXt"),
    "mobilenet_v2_100": (2, "mindcv.models.mobilenetv2:MobileNetV2"),
    "resnet18": (1, "mindcv.models.resnet:ResNet"),
    "efficientnet_b0": (2, "mindcv.models.efficientnet:EfficientNet"),
    "mobilenet_v3_small_100": (2, "mindcv.models.mobilenetv3:MobileNetV3"),
}
#: families whose layers MindSpore's ONNX exporter lacks: exported as exportable substitutes (exporters.cells)
SUBSTITUTED = {"mobilenet_v3_small_100": {"mindspore.nn.layer.activation:HSwish": "exporters.models.layers:HSwish",
                                          "mindspore.nn.layer.activation:HSigmoid": "exporters.models.layers:HSigmoid"}}
#: families whose blocks use a tensor ``+=`` (expected levels computed with MindSpore's default in-place ``+=``)
AUGASSIGN = {"resnet18", "efficientnet_b0"}
#: MindCV's features_only levels in a fresh process at MindSpore's default JIT_ENABLE_AUGASSIGN_INPLACE=1
INPLACE_REFERENCE = textwrap.dedent('''
    import sys
    import numpy as np
    import exporters  # the oneDNN cap and GRAPH_MODE; it sets JIT_ENABLE_AUGASSIGN_INPLACE=0, undone below
    from mindspore.graph._parse import compile_config
    compile_config.JIT_ENABLE_AUGASSIGN_INPLACE = "1"  # read at the first compile, which is below
    import mindcv
    import mindspore as ms
    from mindspore import Tensor, nn

    class Aug(nn.Cell):
        def construct(self, x):
            y = x * 2
            y += x
            return y

    try:  # proof that this process compiles `+=` in place (MindSpore's default), so its ONNX export fails
        ms.onnx.export(Aug(), Tensor(np.ones((1, 2), np.float32)), file_name=sys.argv[4])
        sys.exit("the in-place reference process compiled += as Add")
    except Exception as exc:
        assert "InplaceAddExt" in str(exc), exc
    name, ckpt, io = sys.argv[1:4]
    n = len(mindcv.create_model(name, pretrained=False).feature_info)
    feats = mindcv.create_model(name, pretrained=False, features_only=True, out_indices=list(range(n)))
    exporters.load_checkpoint_into(feats, ckpt, auto_mapping=True)
    feats.set_train(False)
    with np.load(io) as z:
        x = z["x"]
    np.savez(io, *[o.asnumpy() for o in feats(Tensor(x))])
''')
FACTORY = textwrap.dedent('''
    import mindcv
    import mindspore as ms


    def make(name, checkpoint):
        net = mindcv.create_model(name, pretrained=False)
        not_loaded, _ = ms.load_param_into_net(net, ms.load_checkpoint(checkpoint), strict_load=True)
        assert not not_loaded, not_loaded
        net.set_train(False)
        return net
''')


def _mindcv_checkpoint(name: str, path) -> None:
    ms.set_seed(0)
    net = mindcv.create_model(name, pretrained=False)
    calibrate_batchnorm(net, np.random.default_rng(0))
    ms.save_checkpoint(net, str(path))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("mindcv")
    (root / "mcvcells.py").write_text(FACTORY, encoding="utf-8")
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = root / f"{name}.ckpt"
            _mindcv_checkpoint(name, cache[name])
        return root, cache[name]

    return get


def fresh_loaded(name, ckpt):
    ms.set_seed(123)  # other random weights: everything must come from the checkpoint
    net = mindcv.create_model(name, pretrained=False)
    not_loaded, _ = ms.load_param_into_net(net, ms.load_checkpoint(str(ckpt)), strict_load=True)
    assert not not_loaded
    net.set_train(False)
    return net


def mindcv_levels(name, ckpt, x):
    """MindCV's own features_only wrapper over every level, with the same checkpoint (classifier names are
    mapped onto the flattened names of scenario 2 by the deterministic flatten rule); for a family that
    uses ``+=``, in a fresh process at MindSpore's default in-place ``+=``."""
    if name in AUGASSIGN:
        return _inplace_levels(name, ckpt, x)
    n = len(mindcv.create_model(name, pretrained=False).feature_info)
    feats = mindcv.create_model(name, pretrained=False, features_only=True, out_indices=list(range(n)))
    exporters.load_checkpoint_into(feats, str(ckpt), auto_mapping=True)
    feats.set_train(False)
    return [o.asnumpy() for o in feats(Tensor(x))]


def _inplace_levels(name, ckpt, x):
    root = os.path.dirname(str(ckpt))
    script, io = os.path.join(root, "inplace_reference.py"), os.path.join(root, f"{name}.levels.npz")
    with open(script, "w", encoding="utf-8") as f:  # MindSpore compiles only source it can read from a file
        f.write(INPLACE_REFERENCE)
    np.savez(io, x=x)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, script, name, str(ckpt), io, io + ".aug.onnx"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with np.load(io) as z:
        return [z[f"arr_{i}"] for i in range(len(z.files))]


@pytest.mark.parametrize("name", sorted(WORKING))
def test_mindcv_model_exports_via_cli_cut_and_verified(checkpoints, tmp_path, name):
    root, ckpt = checkpoints(name)
    out = tmp_path / f"{name}.onnx"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", ""), os.getcwd()]))
    proc = subprocess.run([sys.executable, "-m", "graphfeat", "export", "--cell", "mcvcells:make", "--cell-kwargs",
                           json.dumps({"name": name, "checkpoint": str(ckpt)}), "-o", str(out),
                           "--input-size", *map(str, SIZE)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    record = read_metadata(onnx.load(out))
    assert record["model"] == WORKING[name][1] and record["cell_factory"] == "mcvcells:make"
    assert {sub["replaced"]: sub["with"] for sub in record.get("substitutions", [])} == SUBSTITUTED.get(name, {})
    names = [lv["name"] for lv in record["levels"]]
    assert names == [e["name"] for e in mindcv.create_model(name, pretrained=False).feature_info]
    cut = tmp_path / f"{name}.cut.onnx"
    proc = subprocess.run([sys.executable, "-m", "graphfeat", "cut", str(out), "--layers", *names, "-o", str(cut)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    x = rand_images(2, *SIZE, seed=11)
    pyramid = __import__("graphfeat").FeaturePyramid(cut)
    got = pyramid(x)
    for level, want in zip(names, mindcv_levels(name, ckpt, x)):
        assert float(want.std()) > 1e-3, f"{name} {level}: no signal (std {want.std():.3g})"
        assert_close_rel(got[level], want, rtol=1e-4, what=f"{name} {level}")


def test_mindcv_scenario_2_via_api_keeps_mindcv_names_and_frees_the_size(checkpoints, tmp_path):
    name = "mobilenet_v2_100"
    _, ckpt = checkpoints(name)
    net = fresh_loaded(name, ckpt)
    assert net.flatten_sequential
    before = [p.name for p in net.get_parameters()]
    assert set(before) <= set(ms.load_checkpoint(str(ckpt)))  # MindCV's own parameter names
    report = export_model(net, tmp_path / "m.onnx", input_size=SIZE, dynamic_size=True, second_size=(64, 96))
    assert [p.name for p in net.get_parameters()] == before
    assert report.model == WORKING[name][1] and report.dynamic_size and report.second_size_worst_rel < 1e-4
    model = onnx.load(tmp_path / "m.onnx")
    record = read_metadata(model)
    assert record["input"]["shape"] == ["batch", 3, "height", "width"]
    x = rand_images(1, 96, 128, seed=12)  # a third size
    tensors = [lv["tensor"] for lv in record["levels"]]
    got = run_onnxruntime(model, {INPUT_NAME: x}, tensors)
    for lv, want in zip(record["levels"], mindcv_levels(name, ckpt, x)):
        assert_close_rel(got[lv["tensor"]], want, what=f"{name} {lv['name']} at 96x128")


def _hard_activations(net):
    return [(n, type(c)) for n, c in net.cells_and_names() if isinstance(c, (ms.nn.HSwish, ms.nn.HSigmoid))]


def test_mindcv_hswish_is_substituted_in_the_exported_copy_only_and_recorded(checkpoints, tmp_path):
    """MindSpore's exporter lacks nn.HSwish / nn.HSigmoid: the export compiles a copy with exportable
    equivalents, records where, and leaves the user's cell (its cells and parameter names) as it was."""
    name = "mobilenet_v3_small_100"
    _, ckpt = checkpoints(name)
    net = fresh_loaded(name, ckpt)
    cells_before = [(n, id(c)) for n, c in net.cells_and_names()]
    hard, params = _hard_activations(net), [p.name for p in net.get_parameters()]
    report = export_model(net, tmp_path / "m.onnx", input_size=SIZE)
    assert [(n, id(c)) for n, c in net.cells_and_names()] == cells_before and _hard_activations(net) == hard
    assert [p.name for p in net.get_parameters()] == params
    model = onnx.load(tmp_path / "m.onnx")
    assert set(params) <= {t.name for t in model.graph.initializer}  # MindCV's parameter names, unchanged
    record = read_metadata(model)
    recorded = sorted((c, sub["replaced"].rsplit(":", 1)[1]) for sub in record["substitutions"] for c in sub["cells"])
    assert recorded == sorted((n, cls.__name__) for n, cls in hard)
    assert [n for n in report.notes if "HSwish" in n or "HSigmoid" in n] == report.notes[:2]
    assert report.worst_level_max_rel < 1e-4 and report.output_max_rel < 1e-4


def test_mindcv_substitution_is_proven_against_the_original_cell(checkpoints, tmp_path, monkeypatch):
    """The proof runs the user's cell, not the exported copy: a substitute computing other values is refused."""
    import exporters.cells
    from exporters.models import layers

    name = "mobilenet_v3_small_100"
    _, ckpt = checkpoints(name)
    monkeypatch.setitem(exporters.cells.EXPORTABLE_SUBSTITUTES, ms.nn.HSwish, layers.HSigmoid)
    with pytest.raises(GraphfeatError, match="no ONNX tensor equals the MindSpore output"):
        export_model(fresh_loaded(name, ckpt), tmp_path / "x.onnx", input_size=SIZE)
    assert not (tmp_path / "x.onnx").exists()


def test_mindcv_hrnet_classifier_carries_no_feature_info(tmp_path):
    net = mindcv.create_model("hrnet_w32", pretrained=False)
    with pytest.raises(GraphfeatError, match="has no feature_info.*docs/adding-a-backbone.md"):
        export_model(net, tmp_path / "x.onnx", input_size=SIZE)


def test_mindcv_rexnet_does_not_build_on_this_mindspore():
    """MindCV 0.3.0's ReXNet initialiser reads an uninitialised tensor on MindSpore 2.10 (README)."""
    with pytest.raises(RuntimeError, match="uninitialized"):
        mindcv.create_model("rexnet_09", pretrained=False)
