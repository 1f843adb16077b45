"""The ``graphfeat cut`` command: defaults, safety and every error path (exit code 2, no partial file)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import onnx
import onnx_fixtures  # noqa: F401  (first: puts the repository root on sys.path)
import pytest
from onnx_fixtures import resnet_like

import graphfeat
from graphfeat.cli import VERBS, main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def model_path(tmp_path):
    model, _ = resnet_like("mindspore")
    path = tmp_path / "resnet.onnx"
    onnx.save(model, path)
    return path


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_cut_default_output(model_path, capsys):
    assert main(["cut", str(model_path), "--layers", "layer1", "layer3"]) == 0
    out = model_path.with_name("resnet.features.onnx")
    assert out.exists() and f"wrote {out}" in capsys.readouterr().out
    result = onnx.load(out)
    onnx.checker.check_model(result, full_check=True)
    assert [o.name for o in result.graph.output] == ["layer1", "layer3"]
    assert leftovers(model_path.parent) == []


def test_cut_indices_and_output(model_path, tmp_path):
    out = tmp_path / "sub.onnx"
    assert main(["cut", str(model_path), "--indices", "-2", "-1", "-o", str(out)]) == 0
    assert [o.name for o in onnx.load(out).graph.output] == ["layer3", "layer4"]


def test_refuses_to_overwrite_without_force(model_path, capsys):
    out = model_path.with_name("resnet.features.onnx")
    out.write_bytes(b"precious")
    assert main(["cut", str(model_path), "--layers", "layer1"]) == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert out.read_bytes() == b"precious"
    assert main(["cut", str(model_path), "--layers", "layer1", "--force"]) == 0
    assert onnx.load(out).graph.output[0].name == "layer1"


def test_output_equal_to_input(model_path, capsys):
    before = model_path.read_bytes()
    assert main(["cut", str(model_path), "--layers", "layer1", "-o", str(model_path)]) == 2
    assert "refusing to overwrite the input" in capsys.readouterr().err
    assert model_path.read_bytes() == before
    assert main(["cut", str(model_path), "--layers", "layer1", "-o", str(model_path), "--force"]) == 0
    assert onnx.load(model_path).graph.output[0].name == "layer1"
    assert leftovers(model_path.parent) == []


def test_symlinked_destination_is_refused(model_path, tmp_path, capsys):
    target = tmp_path / "elsewhere.onnx"
    target.write_bytes(b"keep")
    link = tmp_path / "link.onnx"
    link.symlink_to(target)
    assert main(["cut", str(model_path), "--layers", "layer1", "-o", str(link), "--force"]) == 2
    assert "symlink" in capsys.readouterr().err
    assert target.read_bytes() == b"keep"


@pytest.mark.parametrize(
    "args,message",
    [
        (["--layers", "layr1"], "unknown layer 'layr1'"),
        (["--layers"], "list is empty"),
        (["--indices", "9"], "out of range"),
        (["--tensors", "images"], "graph input"),
        (["--tensors", "nope"], "not in the graph"),
        (["--tensors", "layer1.0.conv1.weight"], "constant"),
        (["--layers", "layer1", "layer1"], "twice"),
    ],
)
def test_bad_names_exit_2(model_path, args, message, capsys):
    assert main(["cut", str(model_path), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not model_path.with_name("resnet.features.onnx").exists()
    assert leftovers(model_path.parent) == []


def test_unknown_layer_suggests_closest(model_path, capsys):
    assert main(["cut", str(model_path), "--layers", "layr2"]) == 2
    err = capsys.readouterr().err
    assert "Available layers: conv1, bn1, layer1, layer2, layer3, layer4" in err
    assert "Did you mean 'layer2'" in err


def test_name_resolving_to_graph_input(tmp_path, capsys):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    # the stem is an Identity of the input: its value is the input itself
    node = helper.make_node("Identity", ["x"], ["stem_out"], name="/stem/Identity")
    relu = helper.make_node("Relu", ["stem_out"], ["y"], name="/body/Relu")
    graph = helper.make_graph([node, relu], "g", [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    assert main(["cut", str(path), "--tensors", "x"]) == 2
    assert "graph input" in capsys.readouterr().err


@pytest.mark.parametrize("content", [b"", b"this is not onnx at all \x00\xff" * 10, "truncated"])
def test_not_onnx_or_truncated(model_path, tmp_path, content, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(model_path.read_bytes()[: len(model_path.read_bytes()) // 2] if content == "truncated" else content)
    assert main(["cut", str(bad), "--layers", "layer1"]) == 2
    err = capsys.readouterr().err
    assert "not a valid ONNX model" in err and "Traceback" not in err
    assert not (tmp_path / "bad.features.onnx").exists()
    assert leftovers(tmp_path) == []


def test_missing_input_and_directory(tmp_path, capsys):
    assert main(["cut", str(tmp_path / "none.onnx"), "--layers", "a"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["cut", str(tmp_path), "--layers", "a", "-o", str(tmp_path / "x.onnx")]) == 2
    assert "directory" in capsys.readouterr().err


def test_no_partial_file_when_saving_fails(model_path, monkeypatch):
    import graphfeat.onnxfile.fileio as fileio

    def boom(f, data):
        f.write(data[:10])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio, "write_all", boom)
    with pytest.raises(OSError):
        graphfeat.cut_file(model_path, layers=["layer1"])
    assert not model_path.with_name("resnet.features.onnx").exists()
    assert leftovers(model_path.parent) == []


def test_every_verb_is_listed_in_the_help(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    listed = re.findall(r"^    (\w+) ", capsys.readouterr().out, flags=re.M)  # a verb, then its help
    assert listed[:len(VERBS)] == list(VERBS)


def test_python_dash_m(model_path):
    proc = subprocess.run(
        [sys.executable, "-m", "graphfeat", "cut", str(model_path), "--layers", "nope"],
        cwd=ROOT, capture_output=True, text=True, check=False, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.returncode == 2 and "unknown layer 'nope'" in proc.stderr
