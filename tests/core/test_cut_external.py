"""External data: weights never read, only needed tensors referenced/copied, hostile locations refused."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import onnx_fixtures  # noqa: F401  (first: puts the repository root on sys.path)
import pytest
from onnx import TensorProto, external_data_helper
from onnx_fixtures import cut_peak_growth_mb, expose, image, resnet_like, run, scale_and_head_model

import graphfeat
import graphfeat.onnxfile.save as gsave
from graphfeat.onnxfile.tensors import external_tensors
from graphfeat import GraphfeatError
from graphfeat.cli import main



def save_external(model: onnx.ModelProto, path: Path, location: str | None = None) -> Path:
    onnx.save(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
              location=location or path.name + ".data", size_threshold=0)  # fmt: skip
    return path


def ext_locations(model: onnx.ModelProto) -> set[str]:
    return {external_data_helper.ExternalDataInfo(t).location for t in external_tensors(model)}


def run_path(path: Path, x):
    return run(str(path), x)


@pytest.fixture
def ext_model(tmp_path):
    model, truth = resnet_like("mindspore")
    src = tmp_path / "src"
    src.mkdir()
    return model, truth, save_external(onnx.ModelProto.FromString(model.SerializeToString()), src / "resnet.onnx")


def test_same_directory_references_the_input_data(ext_model):
    model, truth, path = ext_model
    out = graphfeat.cut_file(path, layers=["layer2"])
    assert sorted(p.name for p in path.parent.iterdir()) == ["resnet.features.onnx", "resnet.onnx", "resnet.onnx.data"]
    result = onnx.load(out, load_external_data=False)
    assert ext_locations(result) == {"resnet.onnx.data"}
    assert not any(t.name.startswith("classifier") for t in result.graph.initializer)
    onnx.checker.check_model(str(out), full_check=True)
    x = image()
    np.testing.assert_allclose(run_path(out, x)["layer2"], run(expose(model, [truth["layer2"]]), x)[truth["layer2"]], rtol=1e-5)


def test_other_directory_copies_only_needed_ranges(ext_model, tmp_path):
    model, truth, path = ext_model
    dst_dir = tmp_path / "dst"
    dst_dir.mkdir()
    out = graphfeat.cut_file(path, dst_dir / "feat.onnx", layers=["layer1"])
    result = onnx.load(out, load_external_data=False)
    assert ext_locations(result) == {"feat.onnx.data"}
    needed = sum(int(external_data_helper.ExternalDataInfo(t).length) for t in external_tensors(result))
    data = dst_dir / "feat.onnx.data"
    assert data.stat().st_size == needed < (path.parent / "resnet.onnx.data").stat().st_size
    onnx.checker.check_model(str(out), full_check=True)
    x = image()
    np.testing.assert_allclose(run_path(out, x)["layer1"], run(expose(model, [truth["layer1"]]), x)[truth["layer1"]], rtol=1e-5)
    assert [p.name for p in dst_dir.iterdir() if p.name.endswith(".tmp")] == []


def test_api_cut_reads_only_the_kept_tensors(ext_model):
    model, truth, path = ext_model
    result = graphfeat.cut(path, layers=["layer1"])
    assert not external_tensors(result)  # self-contained
    x = image()
    np.testing.assert_allclose(run(result, x)["layer1"], run(expose(model, [truth["layer1"]]), x)[truth["layer1"]], rtol=1e-5)


def _point_all_at(model_path: Path, location: str) -> None:
    model = onnx.load(model_path, load_external_data=False)
    for t in external_tensors(model):
        for entry in t.external_data:
            if entry.key == "location":
                entry.value = location
    model_path.write_bytes(model.SerializeToString())


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink", "symlinked_dir", "hardlink", "missing", "short"])
def test_hostile_locations_are_refused(ext_model, tmp_path, kind, capsys):
    _, _, path = ext_model
    data = path.parent / "resnet.onnx.data"
    outside = tmp_path / "outside.data"
    outside.write_bytes(data.read_bytes())
    if kind == "absolute":
        location, word = str(outside), "absolute"
    elif kind == "dotdot":
        location, word = "../outside.data", "'..'"
    elif kind == "symlink":
        (path.parent / "link.data").symlink_to(outside)
        location, word = "link.data", "symlink"
    elif kind == "symlinked_dir":
        (path.parent / "d").symlink_to(tmp_path)
        location, word = "d/outside.data", "symlink"
    elif kind == "hardlink":
        os.link(data, path.parent / "hard.data")
        location, word = "hard.data", "hardlinked"
    elif kind == "missing":
        location, word = "gone.data", "not found"
    else:
        (path.parent / "short.data").write_bytes(data.read_bytes()[:100])
        location, word = "short.data", "truncated"
    _point_all_at(path, location)
    with pytest.raises(GraphfeatError, match=word) as err:
        graphfeat.cut_file(path, layers=["layer1"])
    assert location in str(err.value)
    assert main(["cut", str(path), "--layers", "layer1"]) == 2
    assert location in capsys.readouterr().err
    assert not path.with_name("resnet.features.onnx").exists()


def test_result_over_the_protobuf_limit_uses_external_data(tmp_path, monkeypatch):
    model, truth = resnet_like("mindspore")
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    monkeypatch.setattr(gsave, "PROTO_LIMIT", gsave.LIMIT_MARGIN + 1)  # pretend 2 GB is 1 byte of data
    out = graphfeat.cut_file(path, tmp_path / "big.onnx", layers=["layer3"])
    result = onnx.load(out, load_external_data=False)
    assert ext_locations(result) == {"big.onnx.data"}
    x = image()
    np.testing.assert_allclose(run_path(out, x)["layer3"], run(expose(model, [truth["layer3"]]), x)[truth["layer3"]], rtol=1e-5)


# -- a model with 256 MB of external weights, cut without reading them ------------
KEPT_MB, HEAD_MB = 96, 160


def _big_external_model(directory: Path) -> Path:
    """Conv stage reading a 96 MB parameter (through ReduceSum) + a 160 MB head; sparse data file."""
    small = onnx.numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "layer1.conv.weight")
    kept_n, head_n = KEPT_MB << 18, HEAD_MB << 18  # float32 elements
    tensors = []
    offset = 0
    for name, dims in (("layer1.scale.weight", [kept_n]), ("fc.weight", [head_n // 10, 10])):
        t = onnx.TensorProto(name=name, data_type=TensorProto.FLOAT, dims=dims)
        t.raw_data = b"\0"
        length = 4 * int(np.prod(dims))
        external_data_helper.set_external_data(t, "big.onnx.data", offset, length)
        t.ClearField("raw_data")
        tensors.append(t)
        offset += length
    model = scale_and_head_model([small, *tensors], head_n // 10)
    path = directory / "big.onnx"
    path.write_bytes(model.SerializeToString())
    with open(directory / "big.onnx.data", "wb") as f:
        f.truncate(offset)  # sparse: nothing on disk, reads return zeros
    return path


def test_large_external_model_is_cut_without_reading_weights(tmp_path):
    src_dir, dst_dir = tmp_path / "src", tmp_path / "dst"
    src_dir.mkdir()
    dst_dir.mkdir()
    path = _big_external_model(src_dir)
    for dst in (src_dir / "big.features.onnx", dst_dir / "feat.onnx"):  # reference in place / stream copy
        growth_mb = cut_peak_growth_mb(path, dst, ["layer1"])
        assert growth_mb < 48, f"peak RSS grew by {growth_mb:.0f} MB: weights were read into memory"
        result = onnx.load(dst, load_external_data=False)
        assert {t.name for t in external_tensors(result)} == {"layer1.scale.weight"}
        assert [o.name for o in result.graph.output] == ["layer1"]
    assert (dst_dir / "feat.onnx.data").stat().st_size == KEPT_MB << 20  # only the needed tensor was copied
    assert not (src_dir / "big.features.onnx.data").exists()  # beside the input: referenced, not copied
