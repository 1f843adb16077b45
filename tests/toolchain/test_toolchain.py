"""The pyramid survives the deployment toolchain (#17): every family x tool cell passes or is refused clearly.

Each cell: the tool runs on a 64x64 export, then ``graphfeat info`` and ``cut --layers`` (every level), and
the cut's levels are compared with the export's reference ``.npz`` (thresholds in ``matrix.py``).
resnet18 stands in for resnet50 (the same residual levels, a quarter of the cost).
"""
from __future__ import annotations

import json

import onnx
import pytest

for _tool in ("mindspore", "onnxsim", "onnxslim", "onnxoptimizer", "onnxconverter_common"):
    pytest.importorskip(_tool, reason=f"the toolchain matrix needs {_tool} (pip install graphfeat[toolchain])")

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from matrix import DROPS_METADATA, evaluate  # noqa: E402
from tools import TOOLS  # noqa: E402

import graphfeat.resolve.fingerprint as fingerprint  # noqa: E402
from graphfeat.cli import main  # noqa: E402
from graphfeat.errors import GraphfeatError  # noqa: E402
from graphfeat.surgery import cut_file  # noqa: E402

#: hrnet_w18 first: its cells run the tools longest; collected last, they would leave one pytest-xdist worker
#: running alone at the suite's end
FAMILIES = ["hrnet_w18", "efficientnet_b0", "resnet18", "convnext_tiny"]
#: the cells graphfeat refuses, and what the refusal says
REFUSED = {
    # onnxconverter-common leaves float16 value_info on the Casts it puts around the LayerNormalization
    # it keeps in float32: the file is invalid (ONNX Runtime refuses to load it too)
    ("convnext_tiny", "fp16"): "the input file is not a valid model before the cut",
}
#: cells where a tool renames level tensors, so the levels must be found again by fingerprint
BY_FINGERPRINT = {("efficientnet_b0", t) for t in ("onnxsim", "onnxoptimizer", "ort_extended")}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("toolchain")


#: cells of the full matrix only (``--runslow``): hrnet_w18's two longest, which the other families cover
SLOW = {("hrnet_w18", "onnxoptimizer"), ("hrnet_w18", "qdq_int8")}


def _cells() -> list:
    return [pytest.param(f, t, marks=pytest.mark.slow) if (f, t) in SLOW else (f, t) for f in FAMILIES for t in TOOLS]


@pytest.mark.parametrize(("family", "tool"), _cells())
def test_cell(exported, work, family, tool):
    path, ref, _ = exported(family)
    cell = evaluate(tool, path, ref, work)
    if (family, tool) in REFUSED:
        assert cell.status == "refused" and REFUSED[family, tool] in cell.message, cell
    else:
        assert cell.status == "ok", cell.message
    if (family, tool) in BY_FINGERPRINT:
        assert "fingerprint" in cell.resolved_by, cell
    if tool in DROPS_METADATA:
        assert cell.resolved_by == ("reference",)


def _levels(path) -> list[dict]:
    model = onnx.load(str(path))
    return json.loads(next(p.value for p in model.metadata_props if p.key.startswith("graphfeat.")))["levels"]


def _simplified(exported, work):
    path, ref, _ = exported("efficientnet_b0")
    dst = work / "efficientnet_b0.onnxsim.onnx"
    if not dst.exists():
        TOOLS["onnxsim"][0](path, dst)
    return path, ref, dst


def test_one_forward_pass_finds_every_renamed_level(exported, work, monkeypatch):
    _, _, sim = _simplified(exported, work)
    runs = []
    real = fingerprint.run_tensors
    monkeypatch.setattr(fingerprint, "run_tensors", lambda *a, **k: runs.append(1) or real(*a, **k))
    out = cut_file(sim, work / "one-pass.onnx", indices=list(range(9)), force=True)
    assert len(runs) == 1
    renamed = [lv for lv in _levels(out) if lv.get("resolved_by") == "fingerprint"]
    assert renamed and all(lv["recorded_tensor"] != lv["tensor"] for lv in renamed)


def test_stale_level_without_fingerprint_is_refused_with_a_hint(exported, work):
    _, ref, sim = _simplified(exported, work)
    model = onnx.load(str(sim))
    prop = next(p for p in model.metadata_props if p.key == "graphfeat.feature_info")
    record = json.loads(prop.value)
    for lv in record["levels"]:
        lv.pop("fingerprint")
    prop.value = json.dumps(record)
    bare = work / "no-fingerprints.onnx"
    onnx.save(model, str(bare))
    with pytest.raises(GraphfeatError, match=r"stale.*--reference REF.npz.*--like ORIGINAL.onnx"):
        cut_file(bare, work / "x.onnx", layers=["features.3"], force=True)
    # the reference, or the original file, finds it by value
    for opt in ({"reference": ref}, {"like": exported("efficientnet_b0")[0]}):
        out = cut_file(bare, work / "x.onnx", layers=["features.3"], force=True, **opt)
        level = _levels(out)[0]
        assert level["resolved_by"] == "reference"


def test_cli_info_and_cut_with_reference(exported, work, capsys):
    path, ref, _ = exported("resnet18")
    bare = work / "resnet18.bare.onnx"
    TOOLS["no_metadata"][0](path, bare)
    assert main(["info", str(bare), "--json", "--reference", str(ref)]) == 0
    rows = json.loads(capsys.readouterr().out)["layers"]
    assert [r["name"] for r in rows] == ["relu", "layer1", "layer2", "layer3", "layer4"]
    assert {r["resolved_by"] for r in rows} == {"reference"}
    assert main(["cut", str(bare), "--layers", "layer1", "layer4", "--reference", str(ref), "-o",
                 str(work / "r.onnx"), "--force"]) == 0


def test_fused_away_level_is_refused(exported, work):
    """ORT EXTENDED fuses Conv+Relu of resnet18's stem: the level 'relu' survives (FusedConv's output keeps
    its name and value); a level recorded at the conv *before* the activation no longer exists."""
    path, _, _ = exported("resnet18")
    model = onnx.load(str(path))
    prop = next(p for p in model.metadata_props if p.key == "graphfeat.feature_info")
    record = json.loads(prop.value)
    relu = next(n for n in model.graph.node if n.output[0] == record["levels"][0]["tensor"])
    bn = relu.input[0]  # the stem's pre-activation: BatchNorm output
    from graphfeat.graph import GraphIndex
    from graphfeat.resolve import producer_op, sketch
    from graphfeat.graph.probe import run_tensors
    from graphfeat.resolve import probe_input

    values = run_tensors(model, {"images": probe_input((64, 64))}, [bn])[bn]
    record["levels"][0]["tensor"] = bn
    record["levels"][0]["fingerprint"] = sketch(values, producer_op(GraphIndex(model), bn))
    prop.value = json.dumps(record)
    pre = work / "resnet18.preact.onnx"
    onnx.save(model, str(pre))
    opt = work / "resnet18.preact.ort.onnx"
    TOOLS["ort_extended"][0](pre, opt)
    with pytest.raises(GraphfeatError, match="no tensor of this file matches level 'relu'.*fused away"):
        cut_file(opt, work / "y.onnx", layers=["relu"], force=True)
