"""Export every family to ONNX; the recorded feature tensors must equal MindSpore's levels."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest

pytest.importorskip("mindspore")

from mindspore import Tensor  # noqa: E402

from exporters._mindspore import compiled  # noqa: E402
from exporters.onnx_export import INPUT_NAME, OUTPUT_NAME, export_model  # noqa: E402
from graphfeat.errors import GraphfeatError  # noqa: E402
from graphfeat.levels import read_metadata, strip_metadata  # noqa: E402
from exporters.proof import prove_levels
from graphfeat.runtime import run_onnxruntime  # noqa: E402

from conftest import assert_close_rel, rand_images  # noqa: E402
from onnx_fixtures import BLOCK_MINDSPORE  # noqa: E402
from graphfeat.resolve import probe_input  # noqa: E402
from ms_helpers import classifier, features, levels, release_models, representatives  # noqa: E402

SIZE = (64, 64)


@pytest.fixture
def released():
    """After the test, its models, compiled graphs and their memory go (each family's in turn)."""
    yield
    release_models()


@pytest.mark.parametrize("name", representatives())
def test_export_matches_mindspore_at_batch_1_and_3(name, exported, released):
    path, ref_path, report = exported(name)
    # The ONNX side first, then MindSpore's: vgg11's file (0.5 GB) is not held beside its MindSpore models.
    # The checker takes the path: it parses the file itself, without a serialized copy of a loaded model.
    onnx.checker.check_model(str(path), full_check=True)
    model = onnx.load(path)
    record = read_metadata(model)
    assert record["model"] == name and record["input_size"] == list(SIZE)
    assert record["levels"] == report.levels
    assert model.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert model.producer_name == "graphfeat" and "MindSpore" in model.producer_version
    tensors = [lv["tensor"] for lv in record["levels"]]
    # batch 1: the probe and MindSpore's levels written by the export itself (a separate MindSpore run)
    ref = np.load(ref_path)
    got = run_onnxruntime(model, {INPUT_NAME: ref["input"]}, tensors)
    for lv in record["levels"]:
        assert_close_rel(got[lv["tensor"]], ref[f"level/{lv['name']}"], what=f"{name} {lv['name']} b1")
    # batch 3: a new input, MindSpore in this process; the levels from a GRAPH_MODE compile (the export's
    # own reference runs and the other tests' are eager), the logits eager
    x = rand_images(3, *SIZE, seed=3)
    got = run_onnxruntime(model, {INPUT_NAME: x}, [OUTPUT_NAME, *tensors])
    del model
    release_models()  # and the file's memory with them
    assert [lv["name"] for lv in record["levels"]] == features(name).feature_info.module_name()
    assert_close_rel(got[OUTPUT_NAME], classifier(name)(Tensor(x)).asnumpy(), what=f"{name} logits b3")
    with compiled():
        expected_levels = levels(features(name), x)
    for lv, expected in zip(record["levels"], expected_levels):
        assert_close_rel(got[lv["tensor"]], expected, what=f"{name} {lv['name']} b3")


def test_reference_npz_holds_probe_and_levels(exported):
    _, ref, report = exported("resnet18")
    data = np.load(ref)
    assert data["input"].shape == (3, 3, *SIZE)  # the probe, then two more distinct seeded images
    np.testing.assert_array_equal(data["input"][:1], probe_input(SIZE))
    assert not np.array_equal(data["input"][1], data["input"][2])
    for lv in report.levels:
        assert data[f"level/{lv['name']}"].shape[:2] == (3, lv["chs"])
    expected = levels(features("resnet18"), data["input"])
    np.testing.assert_allclose(data["level/layer4"], expected[-1], rtol=1e-5, atol=1e-5)


def test_corrupted_mapping_fails_the_proof(exported):
    path, ref, report = exported("resnet18")
    model, data = onnx.load(path), np.load(ref)
    names = [lv["name"] for lv in report.levels]
    expected = [data[f"level/{n}"] for n in names]
    tensors = [lv["tensor"] for lv in report.levels]
    prove_levels(model, {INPUT_NAME: data["input"]}, tensors, expected, names)  # the true mapping holds
    shifted = tensors[:]
    producer = next(n for n in model.graph.node if tensors[2] in n.output)
    shifted[2] = producer.input[0]  # layer2's residual sum before its last ReLU: same shape, other values
    with pytest.raises(GraphfeatError, match="'layer2'"):
        prove_levels(model, {INPUT_NAME: data["input"]}, shifted, expected, names)


def test_metadata_round_trips(exported, tmp_path):
    path, _, report = exported("resnet18")
    model = onnx.load(path)
    record = read_metadata(model)
    onnx.save(model, tmp_path / "copy.onnx")
    assert read_metadata(onnx.load(tmp_path / "copy.onnx")) == record
    strip_metadata(model)
    assert read_metadata(model) is None


def test_features_only_export(tmp_path):
    path = tmp_path / "r18_feat.onnx"
    report = export_model("resnet18", path, input_size=SIZE, features_only=True, out_indices=[1, -1])
    model = onnx.load(path)
    assert [o.name for o in model.graph.output] == ["layer1", "layer4"]
    record = read_metadata(model)
    assert [(lv["name"], lv["source_index"], lv["tensor"]) for lv in record["levels"]] == \
        [("layer1", 1, "layer1"), ("layer4", 4, "layer4")]
    x = rand_images(2, *SIZE, seed=5)
    got = run_onnxruntime(model, {INPUT_NAME: x})
    ref = levels(features("resnet18"), x)
    assert_close_rel(got["layer1"], ref[1], what="layer1")
    assert_close_rel(got["layer4"], ref[4], what="layer4")
    assert report.output_max_rel is None


def test_an_upgrade_that_changes_a_level_falls_back_to_opset_11(tmp_path, monkeypatch):
    """The level match runs on the upgraded graph; where a level matches nothing there, the export keeps the
    opset-11 graph, matches on it and says so. Here the upgrade is sabotaged (every Relu becomes a Sigmoid)."""
    import exporters.onnx_export as onnx_export

    real = onnx_export._upgrade_opset

    def sabotaged(model, opset):
        upgraded = real(model, opset)
        for node in upgraded.graph.node:
            if node.op_type == "Relu":
                node.op_type = "Sigmoid"
        return upgraded

    monkeypatch.setattr(onnx_export, "_upgrade_opset", sabotaged)
    path = tmp_path / "r18_opset11.onnx"
    report = export_model("resnet18", path, input_size=SIZE, features_only=True, out_indices=[1, -1])
    assert report.opset == 11 and any(n.startswith("kept opset 11") for n in report.notes), report.notes
    model = onnx.load(path)
    assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == 11
    assert not any(n.op_type == "Sigmoid" for n in model.graph.node)
    x = rand_images(2, *SIZE, seed=5)
    got = run_onnxruntime(model, {INPUT_NAME: x})
    ref = levels(features("resnet18"), x)
    assert_close_rel(got["layer1"], ref[1], what="layer1")
    assert_close_rel(got["layer4"], ref[4], what="layer4")


def test_export_refuses_to_overwrite(exported):
    path, _, _ = exported("resnet18")
    before = path.read_bytes()
    with pytest.raises(GraphfeatError, match="--force"):
        export_model("resnet18", path, input_size=SIZE)
    assert path.read_bytes() == before


def test_cli_export_runs_in_a_worker(tmp_path):
    out = tmp_path / "cli.onnx"
    proc = subprocess.run([sys.executable, "-m", "graphfeat", "export", "resnet18", "-o", str(out),
                           "--input-size", "64", "64", "--static-batch"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out}" in proc.stdout and "WARNING" not in proc.stdout + proc.stderr
    model = onnx.load(out)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    bad = subprocess.run([sys.executable, "-m", "graphfeat", "export", "resnet81"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown model 'resnet81'" in bad.stderr and "Traceback" not in bad.stderr
    assert not list(tmp_path.glob(".*tmp")), "no partial file may remain"


def test_cli_exports_several_models_in_parallel_workers(tmp_path):
    """``export A B C --jobs 2``: one progress line per model as each finishes, every good file written and
    proven, and a non-zero exit that names the model that failed."""
    names = ["resnet18", "mobilenet_v3_small_100", "resnet81"]
    proc = subprocess.run([sys.executable, "-m", "graphfeat", "export", *names, "--jobs", "2",
                           "--input-size", "64", "64"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    progress = [ln for ln in proc.stdout.splitlines() if ln.startswith("[")]
    assert sorted(ln[:5] for ln in progress) == ["[1/3]", "[2/3]", "[3/3]"]
    assert sum("resnet81: FAILED" in ln and "unknown model" in ln for ln in progress) == 1
    assert "with 2 worker(s)" in proc.stdout
    assert "1 of 3 exports failed: resnet81" in proc.stderr and "Traceback" not in proc.stderr
    for name in names[:2]:
        path = tmp_path / "models_onnx" / f"{name}.onnx"
        assert sum(f"wrote models_onnx/{name}.onnx" in ln for ln in progress) == 1
        model = onnx.load(path)
        record = read_metadata(model)
        assert record["model"] == name and record["input_size"] == [64, 64]
        x = rand_images(2, 64, 64, seed=4)
        got = run_onnxruntime(model, {INPUT_NAME: x}, [lv["tensor"] for lv in record["levels"]])
        for lv, expected in zip(record["levels"], levels(features(name), x)):
            assert_close_rel(got[lv["tensor"]], expected, what=f"{name} {lv['name']}")
    assert not (tmp_path / "models_onnx" / "resnet81.onnx").exists()




def test_export_without_mindspore_says_how_to_install(tmp_path):
    proc = subprocess.run([sys.executable, "-c", BLOCK_MINDSPORE, "export", "resnet18", "-o", str(tmp_path / "x.onnx")],
                          capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert "graphfeat[mindspore]" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "x.onnx").exists()


def _batch_model(body: list, extra_inits: list = ()) -> onnx.ModelProto:
    """images [batch, 3, 8, 8] -> out, through ``body``."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(body, "g", [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT,
                                                                        ["batch", 3, 8, 8])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], list(extra_inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_batch_proof_catches_images_that_mix():
    """A graph that is right at batch 1 but mixes the images of a batch fails the batch-2 proof."""
    from onnx import helper

    from exporters.onnx_export import _prove_batch

    probe = probe_input((8, 8))
    honest = _batch_model([helper.make_node("Relu", [INPUT_NAME], ["out"])])
    _prove_batch(honest, probe, ["out"], 1e-4)
    mixing = _batch_model([helper.make_node("ReduceMean", [INPUT_NAME], ["m"], axes=[0], keepdims=1),
                           helper.make_node("Add", [INPUT_NAME, "m"], ["out"])])
    with pytest.raises(GraphfeatError, match=r"does not hold at batch 2 \('out' image 0, 'out' image 1 differ"):
        _prove_batch(mixing, probe, ["out"], 1e-4)


def test_batch_proof_catches_a_baked_batch():
    from onnx import helper, numpy_helper

    from exporters.onnx_export import _prove_batch

    baked = _batch_model([helper.make_node("Reshape", [INPUT_NAME, "shape"], ["out"])],
                         [numpy_helper.from_array(np.array([1, 192], np.int64), "shape")])
    with pytest.raises(GraphfeatError, match="does not run at batch 2 .*--static-batch"):
        _prove_batch(baked, probe_input((8, 8)), ["out"], 1e-4)


def test_export_all_summary_table(exported):
    from dataclasses import asdict

    from graphfeat.cli._format import export_summary as summary_table

    _, _, report = exported("resnet18")
    table = summary_table([asdict(report)]).splitlines()
    assert table[0].startswith("| model | nodes | MiB |") and len(table) == 3
    cells = [c.strip() for c in table[2].strip("|").split("|")]
    assert cells[0] == "resnet18" and int(cells[1]) == report.nodes
    assert float(cells[5]) == pytest.approx(report.output_max_rel, rel=0.1) and float(cells[6]) < 1e-4
