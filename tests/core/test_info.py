"""``graphfeat info``: table, JSON, structural listing, pyramid plot."""
from __future__ import annotations

import builtins
import json

import onnx
import onnx_fixtures  # noqa: F401  (first: puts the repository root on sys.path)
import pytest
from onnx_fixtures import add_metadata, resnet_like

import graphfeat
from graphfeat.cli import main

KEYS = ["index", "name", "chs", "reduction", "tensor", "shape", "resolved_by", "stride", "layout", "note"]


@pytest.fixture
def meta_path(tmp_path):
    model, truth = resnet_like("plain")
    add_metadata(model, [(f"layer{i}", truth[f"layer{i}"], c, 2 ** (i + 1)) for i, c in zip(range(1, 5), (8, 16, 24, 32))])
    path = tmp_path / "meta.onnx"
    onnx.save(model, path)
    return path


def test_info_json_from_metadata(meta_path, capsys):
    assert main(["info", str(meta_path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [list(row) for row in doc["layers"]] == [KEYS + ["source", "pick"]] * 4  # source, pick: on detectors
    first = doc["layers"][0]
    assert (first["index"], first["name"], first["chs"], first["reduction"], first["resolved_by"]) == (0, "layer1", 8, 4, "metadata")
    assert [(r["stride"], r["layout"], r["note"]) for r in doc["layers"]] == [(2 ** (i + 1), "nchw", "") for i in range(1, 5)]
    assert doc["candidates"] == []
    assert first["shape"] == ["batch", 8, 16, 16]


def test_info_table(meta_path, capsys):
    assert main(["info", str(meta_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == KEYS
    assert lines[1].split()[:4] == ["0", "layer1", "8", "4"] and "[batch, 8, 16, 16]" in lines[1]
    assert len(lines) == 5


def test_info_without_metadata_lists_structural_layers(tmp_path, capsys):
    model, _ = resnet_like("mindspore")
    path = tmp_path / "ms.onnx"
    onnx.save(model, path)
    assert main(["info", str(path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["layers"]
    assert [(r["name"], r["chs"], r["reduction"], r["resolved_by"]) for r in rows] == [
        ("conv1", 8, 2, "parameters"), ("bn1", 8, 2, "parameters"), ("layer1", 8, 4, "parameters"),
        ("layer2", 16, 8, "parameters"), ("layer3", 24, 16, "parameters"), ("layer4", 32, 32, "parameters"),
    ]  # fmt: skip
    assert graphfeat.feature_info(path).reduction() == [2, 2, 4, 8, 16, 32]


def test_info_dynamic_size_takes_the_measured_stride(tmp_path, capsys):
    """With symbolic H/W no static shape gives the reduction; the stride measured at two probe sizes does."""
    model, _ = resnet_like("dynamo")
    for k in (2, 3):
        model.graph.input[0].type.tensor_type.shape.dim[k].dim_param = "hw"
    del model.graph.value_info[:]
    path = tmp_path / "dyn.onnx"
    onnx.save(model, path)
    assert main(["info", str(path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["layers"]
    layer1 = next(r for r in rows if r["name"] == "layer1")
    assert (layer1["chs"], layer1["reduction"], layer1["stride"], layer1["resolved_by"]) == (8, 4, 4, "scope")
    assert not any(isinstance(d, int) for d in layer1["shape"][2:])  # the file's own shape stays symbolic


def test_info_bad_file(tmp_path, capsys):
    bad = tmp_path / "x.onnx"
    bad.write_bytes(b"\x08")
    assert main(["info", str(bad)]) == 2
    assert "not a valid ONNX model" in capsys.readouterr().err


def test_info_plot_without_matplotlib(meta_path, tmp_path, monkeypatch, capsys):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("no matplotlib")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    assert main(["info", str(meta_path), "--plot", str(tmp_path / "p.png")]) == 2
    assert "install graphfeat[plot]" in capsys.readouterr().err
