"""Hostile and broken inputs: every one is a GraphfeatError (CLI: exit 2, no traceback), nothing is lost.

External data follows onnx's CVEs (CVE-2022-25882, CVE-2024-27318: ``..`` and nested
``a/../../x``; CVE-2025-51480: writing through a location; CVE-2026-27489, -34446, -34447:
symlinks and hardlinks; CVE-2026-34445: injected external-data keys): graphfeat parses and
checks locations itself and never hands one to onnx's own loaders.
"""
from __future__ import annotations

import errno
import json
import os
import re
from pathlib import Path

import numpy as np
import onnx
import onnx_fixtures  # noqa: F401  (first: puts the repository root on sys.path)
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_fixtures import add_metadata, expose, image, resnet_like, run

import graphfeat
import graphfeat.onnxfile as gio
import graphfeat.onnxfile.external as gexternal
import graphfeat.onnxfile.fileio as fileio
import graphfeat.onnxfile.save as gsave
from graphfeat.onnxfile.tensors import external_tensors
from graphfeat import GraphfeatError
from graphfeat.cli import main
from graphfeat.levels import METADATA_KEY

ROOT = Path(__file__).resolve().parents[2]


# -- helpers -------------------------------------------------------------------------
def snapshot(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def assert_refused(path: Path, capsys, *fragments: str, args=("--layers", "layer1")) -> str:
    """``info`` and ``cut`` (API and CLI) all refuse ``path``; the message has every fragment."""
    before, files = snapshot(path), listing(path.parent)
    with pytest.raises(GraphfeatError) as err:
        graphfeat.feature_levels(path)
    message = str(err.value)
    with pytest.raises(GraphfeatError):
        graphfeat.cut(path, layers=["layer1"])
    with pytest.raises(GraphfeatError):
        graphfeat.cut_file(path, layers=["layer1"])
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    capsys.readouterr()
    assert main(["info", str(path)]) == 2
    assert main(["cut", str(path), *args]) == 2
    cli = capsys.readouterr()
    assert "Traceback" not in cli.err and cli.err.count("error:") == 2
    assert snapshot(path) == before and listing(path.parent) == files
    return message


def save_external(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
              location=path.name + ".data", size_threshold=0)  # fmt: skip
    return path


def set_entries(path: Path, entries: list[tuple[str, str]], which: str = "all") -> None:
    """Replace the external_data entries of every (or the first) external tensor of the file."""
    model = gio.load_model(path)
    tensors = external_tensors(model)
    for t in tensors if which == "all" else tensors[:1]:
        del t.external_data[:]
        for key, value in entries:
            t.external_data.add(key=key, value=value)
    path.write_bytes(model.SerializeToString())


@pytest.fixture
def ext_model(tmp_path):
    model, truth = resnet_like("mindspore")
    src = tmp_path / "src"
    src.mkdir()
    return model, truth, save_external(onnx.ModelProto.FromString(model.SerializeToString()), src / "m.onnx")


@pytest.fixture
def model_path(tmp_path):
    model, _ = resnet_like("mindspore")
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    return path


# -- external data: locations ------------------------------------------------------------------
LOCATIONS = {
    "absolute": ("{outside}", "absolute"),
    "etc_passwd": ("/etc/passwd", "absolute"),
    "dotdot": ("../outside.data", "'..'"),
    "nested_dotdot": ("sub/../../outside.data", "'..'"),  # CVE-2024-27318
    "nested_missing_dir": ("nowhere/../../outside.data", "'..'"),
    "dot_dotdot": ("./../outside.data", "'..'"),
    "windows_dotdot": ("..\\outside.data", "'..'"),
    "windows_nested": ("sub\\..\\..\\outside.data", "'..'"),
    "backslash": ("sub\\m.onnx.data", "backslashes are ambiguous"),
    "trailing_slash": ("m.onnx.data/", "does not name a file"),
    "drive": ("C:\\Windows\\win.ini", "absolute"),
    "drive_relative": ("C:outside.data", "absolute"),
    "unc": ("\\\\host\\share\\w.data", "absolute"),
    "nul": ("m.onnx.data\x00.png", "control characters"),
    "escape_sequence": ("\x1b[2Jm.onnx.data", "control characters"),
    "newline": ("m.onnx.data\n", "control characters"),
    "empty": ("", "names no location"),
    "dot": (".", "does not name a file"),
    "directory": ("sub", "not a regular file"),
    "directory_slash": ("sub/", "does not name a file"),
    "fifo": ("fifo.data", "not a regular file"),
    "device_symlink": ("zero.data", "symlink"),
    "symlink": ("link.data", "symlink"),
    "symlinked_dir": ("linkdir/outside.data", "symlink"),
    "symlink_inside": ("inner_link.data", "symlink"),
    "hardlink": ("hard.data", "hardlinked"),
    "missing": ("gone.data", "not found"),
    "not_a_directory": ("m.onnx.data/x", "cannot examine"),
    "too_long": ("x" * 300, "cannot examine"),
    "truncated": ("short.data", "truncated"),
}


@pytest.mark.parametrize("kind", sorted(LOCATIONS))
def test_hostile_external_location_is_refused(ext_model, tmp_path, kind, capsys):
    _, _, path = ext_model
    src = path.parent
    data = src / "m.onnx.data"
    outside = tmp_path / "outside.data"
    outside.write_bytes(data.read_bytes())
    (src / "sub").mkdir()
    (src / "link.data").symlink_to(outside)
    (src / "linkdir").symlink_to(tmp_path)
    (src / "inner_link.data").symlink_to(data)  # stays inside, still refused
    (src / "zero.data").symlink_to("/dev/zero")
    os.mkfifo(src / "fifo.data")
    os.link(outside, src / "hard.data")
    (src / "short.data").write_bytes(data.read_bytes()[:100])
    location, word = LOCATIONS[kind]
    location = location.format(outside=outside)
    set_entries(path, [("location", location), ("offset", "0")], which="first")
    outside_before = snapshot(outside)
    assert_refused(path, capsys, word, *([repr(location)] if location else []))
    assert snapshot(outside) == outside_before
    assert "\x1b" not in capsys.readouterr().err  # the CLI escapes what the file says


# -- external data: injected or malformed keys (CVE-2026-34445) ------------------------------------
ENTRIES = {
    "location_twice": ([("location", "m.onnx.data"), ("location", "../outside.data")], "twice"),
    "location_twice_reversed": ([("location", "../outside.data"), ("location", "m.onnx.data")], "twice"),
    "offset_twice": ([("location", "m.onnx.data"), ("offset", "0"), ("offset", "16")], "twice"),
    "offset_text": ([("location", "m.onnx.data"), ("offset", "abc")], "malformed external-data offset 'abc'"),
    "offset_negative": ([("location", "m.onnx.data"), ("offset", "-1")], "malformed external-data offset '-1'"),
    "offset_space": ([("location", "m.onnx.data"), ("offset", " 0")], "malformed"),
    "offset_underscore": ([("location", "m.onnx.data"), ("offset", "1_0")], "malformed"),
    "offset_unicode_digit": ([("location", "m.onnx.data"), ("offset", "\u0661")], "malformed"),
    "offset_hex": ([("location", "m.onnx.data"), ("offset", "0x10")], "malformed"),
    "length_negative": ([("location", "m.onnx.data"), ("length", "-4")], "malformed external-data length"),
    "length_huge": ([("location", "m.onnx.data"), ("length", "9" * 5000)], "malformed external-data length"),
    "length_past_end": ([("location", "m.onnx.data"), ("offset", "99999999999")], "truncated"),
    "length_mismatch": ([("location", "m.onnx.data"), ("offset", "0"), ("length", "4")], "need"),
    "basepath": ([("location", "m.onnx.data"), ("basepath", "/etc")], "unknown external-data key 'basepath'"),
    "dunder": ([("location", "m.onnx.data"), ("__class__", "x")], "unknown external-data key '__class__'"),
    "empty_key": ([("location", "m.onnx.data"), ("", "")], "unknown external-data key ''"),
    "no_location": ([("offset", "0"), ("length", "4")], "names no location"),
    "no_entries": ([], "names no location"),
}


@pytest.mark.parametrize("kind", sorted(ENTRIES))
def test_malformed_external_entries_are_refused(ext_model, kind, capsys, recwarn):
    _, _, path = ext_model
    entries, fragment = ENTRIES[kind]
    set_entries(path, entries, which="first")
    assert_refused(path, capsys, fragment)
    assert not [w for w in recwarn if "external data" in str(w.message)]  # onnx's ExternalDataInfo is never used


@pytest.mark.parametrize("field", ["key", "value"])
def test_external_entry_that_is_not_utf8_is_refused(ext_model, field, capsys):
    _, _, path = ext_model
    set_entries(path, [("location", "QQQQ.data")] if field == "value" else [("QQQQ", "m.onnx.data")], which="first")
    data = path.read_bytes()
    assert data.count(b"QQQQ") == 1
    path.write_bytes(data.replace(b"QQQQ", b"Q\xffQ\xfe"))
    message = assert_refused(path, capsys)
    assert "utf-8" in message.lower() and ("external-data entry" in message or "protobuf parse failed" in message), message


def test_checksum_is_accepted(ext_model):
    model, truth, path = ext_model
    loaded = gio.load_model(path)
    for t in external_tensors(loaded):
        t.external_data.add(key="checksum", value="not-verified")
    path.write_bytes(loaded.SerializeToString())
    x = image()
    result = graphfeat.cut(path, layers=["layer1"])
    np.testing.assert_allclose(run(result, x)["layer1"], run(expose(model, [truth["layer1"]]), x)[truth["layer1"]], rtol=1e-5)


@pytest.mark.parametrize("what", ["file", "directory"])
def test_swapped_in_symlink_after_validation_is_not_followed(ext_model, tmp_path, monkeypatch, what):
    """The re-open walks the path with openat + O_NOFOLLOW: a symlink swapped in after the check is refused."""
    _, _, path = ext_model
    sub = path.parent / "sub"
    sub.mkdir()
    (path.parent / "m.onnx.data").rename(sub / "m.onnx.data")
    set_entries_location(path, "sub/m.onnx.data")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "m.onnx.data").write_bytes((sub / "m.onnx.data").read_bytes())
    real = gexternal.open_checked

    def swap(rng):  # the lstat walk has passed; the attacker swaps before the open
        if what == "file" and not (sub / "m.onnx.data").is_symlink():
            (sub / "m.onnx.data").unlink()
            (sub / "m.onnx.data").symlink_to(elsewhere / "m.onnx.data")
        elif what == "directory" and not sub.is_symlink():
            sub.rename(path.parent / "sub_moved")
            sub.symlink_to(elsewhere)
        return real(rng)

    monkeypatch.setattr(gexternal, "open_checked", swap)
    with pytest.raises(GraphfeatError, match="cannot open external data"):
        graphfeat.cut(path, layers=["layer1"])


def set_entries_location(path: Path, location: str) -> None:
    model = onnx.load(path, load_external_data=False)  # the test's own file; graphfeat never calls this
    for t in external_tensors(model):
        for e in t.external_data:
            if e.key == "location":
                e.value = location
    path.write_bytes(model.SerializeToString())


# -- writing: destinations are never followed, nothing partial is left ---------------------------------
def test_symlinked_data_destination_is_refused(ext_model, tmp_path, capsys):
    _, _, path = ext_model
    dst_dir = tmp_path / "dst"
    dst_dir.mkdir()
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    (dst_dir / "out.onnx.data").symlink_to(victim)
    for force in ([], ["--force"]):
        assert main(["cut", str(path), "--layers", "layer1", "-o", str(dst_dir / "out.onnx"), *force]) == 2
        assert "symlink" in capsys.readouterr().err
    assert victim.read_bytes() == b"keep"
    assert listing(dst_dir) == ["out.onnx.data"]


def test_dangling_symlink_destination_is_refused(model_path, tmp_path, capsys):
    link = tmp_path / "out.onnx"
    link.symlink_to(tmp_path / "would_be_created")
    assert main(["cut", str(model_path), "--layers", "layer1", "-o", str(link), "--force"]) == 2
    assert "symlink" in capsys.readouterr().err
    assert not (tmp_path / "would_be_created").exists()


def test_existing_data_file_needs_force(ext_model, tmp_path, capsys):
    _, _, path = ext_model
    dst_dir = tmp_path / "dst"
    dst_dir.mkdir()
    (dst_dir / "out.onnx.data").write_bytes(b"precious")
    assert main(["cut", str(path), "--layers", "layer1", "-o", str(dst_dir / "out.onnx")]) == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert listing(dst_dir) == ["out.onnx.data"] and (dst_dir / "out.onnx.data").read_bytes() == b"precious"
    assert main(["cut", str(path), "--layers", "layer1", "-o", str(dst_dir / "out.onnx"), "--force"]) == 0
    onnx.checker.check_model(str(dst_dir / "out.onnx"), full_check=True)


@pytest.fixture
def copy_job(ext_model, tmp_path):
    """A cut whose result goes to another directory, so the needed weights are streamed to out.onnx.data."""
    _, _, path = ext_model
    dst_dir = tmp_path / "dst"
    dst_dir.mkdir()
    inputs = {p: snapshot(p) for p in path.parent.iterdir()}
    yield path, dst_dir
    assert {p: snapshot(p) for p in path.parent.iterdir()} == inputs  # the input is never touched
    assert listing(path.parent) == ["m.onnx", "m.onnx.data"]


@pytest.mark.parametrize("when", ["data", "model"])
def test_failed_write_leaves_nothing(copy_job, monkeypatch, when, capsys):
    path, dst_dir = copy_job
    real = fileio.write_all

    def boom(f, data):
        if when == "model" or len(data) < 1 << 20:  # model payload (or the first data chunk)
            f.write(bytes(data[:10]))
            raise OSError(errno.ENOSPC, "No space left on device")
        real(f, data)

    if when == "data":
        monkeypatch.setattr(os, "sendfile", lambda *a: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device")))
        monkeypatch.setattr(os, "pread", lambda fd, n, off: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device")))
    else:
        monkeypatch.setattr(fileio, "write_all", boom)
    with pytest.raises(OSError) as err:  # an OutputError: both a GraphfeatError and an OSError
        graphfeat.cut_file(path, dst_dir / "out.onnx", layers=["layer1"])
    assert isinstance(err.value, GraphfeatError) and err.value.errno == errno.ENOSPC
    assert listing(dst_dir) == []
    assert main(["cut", str(path), "--layers", "layer1", "-o", str(dst_dir / "out.onnx")]) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert listing(dst_dir) == []


def test_keyboard_interrupt_while_staging_leaves_nothing(copy_job, monkeypatch):
    path, dst_dir = copy_job
    real = gsave._copy_range_job
    calls = []

    def interrupted(rng):
        job = real(rng)

        def run_job(out):
            calls.append(1)
            if len(calls) == 3:
                raise KeyboardInterrupt
            return job(out)

        return run_job

    monkeypatch.setattr(gsave, "_copy_range_job", interrupted)
    with pytest.raises(KeyboardInterrupt):
        graphfeat.cut_file(path, dst_dir / "out.onnx", layers=["layer2"])
    assert listing(dst_dir) == []


def test_failure_between_the_two_renames_removes_the_new_data_file(copy_job, monkeypatch):
    path, dst_dir = copy_job
    real = os.replace
    calls = []

    def second_fails(a, b):
        calls.append(b)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(a, b)

    monkeypatch.setattr(os, "replace", second_fails)
    with pytest.raises(KeyboardInterrupt):
        graphfeat.cut_file(path, dst_dir / "out.onnx", layers=["layer1"])
    assert [Path(c).name for c in calls] == ["out.onnx.data", "out.onnx"]
    assert listing(dst_dir) == []


def test_failed_overwrite_keeps_the_old_output(model_path, monkeypatch):
    out = model_path.with_name("m.features.onnx")
    out.write_bytes(b"old result")
    before = snapshot(model_path)

    def boom(f, data):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(fileio, "write_all", boom)
    with pytest.raises(GraphfeatError, match="Input/output error"):
        graphfeat.cut_file(model_path, layers=["layer1"], force=True)
    assert out.read_bytes() == b"old result"
    assert snapshot(model_path) == before
    assert listing(model_path.parent) == ["m.features.onnx", "m.onnx"]


def test_unwritable_output_is_a_clean_error(model_path, tmp_path, capsys):
    assert main(["cut", str(model_path), "--layers", "layer1", "-o", str(tmp_path / ("x" * 300 + ".onnx"))]) == 2
    assert "File name too long" in capsys.readouterr().err
    with pytest.raises(GraphfeatError, match="NUL"):
        graphfeat.cut_file(model_path, tmp_path / "a\x00b.onnx", layers=["layer1"])
    assert listing(tmp_path) == ["m.onnx"]


# -- broken files and graphs -----------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["empty", "text", "truncated", "directory", "fifo", "device"])
def test_not_an_onnx_file(model_path, tmp_path, kind, capsys):
    target = {"device": Path("/dev/zero"), "directory": tmp_path / "d.onnx"}.get(kind, tmp_path / "bad.onnx")
    if kind == "empty":
        target.write_bytes(b"")
    elif kind == "text":
        target.write_text("ir_version: 8\ngraph { node { op_type: 'Relu' } }\n")
    elif kind == "truncated":
        target.write_bytes(model_path.read_bytes()[:-300])
    elif kind == "directory":
        target.mkdir()
    elif kind == "fifo":
        os.mkfifo(target)  # reading it would block forever
    word = {"directory": "is a directory", "fifo": "not a regular file", "device": "not a regular file"}.get(kind, "not a valid ONNX model")
    with pytest.raises(GraphfeatError, match=word):
        graphfeat.feature_levels(target)
    out = tmp_path / "out.onnx"
    for argv in (["info", str(target)], ["cut", str(target), "--layers", "layer1", "-o", str(out)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert word in err and "Traceback" not in err
    assert not out.exists()


def _edit(model_path: Path, edit) -> Path:
    model = onnx.load(model_path)
    edit(model)
    model_path.write_bytes(model.SerializeToString())
    return model_path


def _node_writing(model, name):
    return next(n for n in model.graph.node if name in n.output)


GRAPH_BREAKS = {
    "cycle": (lambda m: m.graph.node[1].input.__setitem__(0, m.graph.node[5].output[0]), "cycle"),
    "dangling_input": (lambda m: m.graph.node[3].input.__setitem__(0, "nobody_writes_this"), "'nobody_writes_this', which no node"),
    "duplicate_writer": (lambda m: m.graph.node[4].output.__setitem__(0, m.graph.node[2].output[0]), "written by two nodes"),
    "writes_an_initializer": (lambda m: m.graph.node[2].output.__setitem__(0, m.graph.initializer[0].name), "also written by"),
    "writes_the_input": (lambda m: m.graph.node[2].output.__setitem__(0, "images"), "also written by"),
    "undefined_output": (lambda m: setattr(m.graph.output[0], "name", "nothing"), "graph output 'nothing'"),
    "unknown_op": (lambda m: setattr(m.graph.node[2], "op_type", "FooBar"), "'FooBar' is not an operator of opset 17"),
    "op_newer_than_opset": (lambda m: setattr(m.graph.node[2], "op_type", "Gelu"), "'Gelu' is not an operator of opset 17"),
    "no_default_opset": (lambda m: setattr(m.opset_import[0], "domain", "other"), "imports no opset"),
    "no_outputs": (lambda m: m.graph.ClearField("output"), "no graph outputs"),
    "no_nodes": (lambda m: m.graph.ClearField("node"), "no graph nodes"),
}


@pytest.mark.parametrize("kind", sorted(GRAPH_BREAKS))
def test_broken_graph_is_refused(model_path, kind, capsys):
    edit, fragment = GRAPH_BREAKS[kind]
    model = onnx.load(model_path)
    edit(model)
    model_path.write_bytes(model.SerializeToString())
    assert_refused(model_path, capsys, fragment)
    with pytest.raises(GraphfeatError, match=re.escape(fragment)):  # the in-memory API too
        graphfeat.cut(model, layers=["layer1"])


NOT_UTF8 = {
    "op_type": (lambda m: setattr(m.graph.node[2], "op_type", "QQQQ"), "op type"),
    "node_name": (lambda m: setattr(m.graph.node[2], "name", "QQQQ"), "name"),
    "tensor_name": (lambda m: m.graph.node[3].input.__setitem__(0, "QQQQ"), "tensor name"),
}


@pytest.mark.parametrize("kind", sorted(NOT_UTF8))
def test_text_that_is_not_utf8_is_refused(model_path, kind, capsys):
    """protobuf hands such strings out as bytes; they must not reach code that expects text."""
    edit, fragment = NOT_UTF8[kind]
    model = onnx.load(model_path)
    edit(model)
    data = model.SerializeToString()
    assert data.count(b"QQQQ") == 1
    model_path.write_bytes(data.replace(b"QQQQ", b"Q\xffQ\xfe"))
    message = assert_refused(model_path, capsys)
    # protobuf's upb backend hands the string out as bytes and graphfeat names it; the pure-Python
    # backend (what MindSpore selects when imported first) already refuses it while parsing
    assert "utf-8" in message.lower() and (fragment in message or "protobuf parse failed" in message), message


def test_custom_domain_ops_are_allowed(tmp_path):
    """Foreign models carry runtime-specific ops; only the standard domains are checked."""
    model, _ = resnet_like("mindspore")
    head = next(n for n in model.graph.node if n.op_type == "MatMul")
    head.op_type, head.domain = "FusedMatMul", "com.microsoft"
    model.opset_import.add(domain="com.microsoft", version=1)
    assert [r.name for r in graphfeat.feature_levels(model)][-1] == "layer4"
    result = graphfeat.cut(model, layers=["layer2"])
    assert not any(n.domain for n in result.graph.node)


BAD_METADATA = {
    "not_json": ("{", "not valid JSON"),
    "deeply_nested": ("[" * 100000 + "]" * 100000, "cannot be read"),
    "huge_number": ('{"levels": [], "n": ' + "9" * 5000 + "}", "cannot be read"),
    "levels_not_a_list": ('{"levels": 3}', "'levels' list"),
    "negative_chs": ('{"levels": [{"name": "a", "tensor": "t", "chs": -1, "reduction": 1}]}', "chs=-1"),
    "stale_tensor": ('{"levels": [{"name": "layer1", "tensor": "gone", "chs": 8, "reduction": 4}]}', "stale"),
}


@pytest.mark.parametrize("kind", sorted(BAD_METADATA))
def test_corrupt_metadata_is_refused(model_path, kind, capsys):
    value, fragment = BAD_METADATA[kind]
    _edit(model_path, lambda m: m.metadata_props.add(key=METADATA_KEY, value=value))
    assert_refused(model_path, capsys, fragment)


def test_metadata_index_of_mixed_types_does_not_crash(tmp_path):
    model, truth = resnet_like("plain")
    add_metadata(model, [("layer1", truth["layer1"], 8, 4), ("layer2", truth["layer2"], 16, 8)])
    record = json.loads(model.metadata_props[-1].value)
    record["levels"][0]["index"] = "first"
    model.metadata_props[-1].value = json.dumps(record)
    result = graphfeat.cut(model, layers=["layer2", "layer1"])
    assert [o.name for o in result.graph.output] == ["layer1", "layer2"]  # topological order instead


# -- names ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--layers"], "list is empty"),
        (["--tensors"], "list is empty"),
        (["--indices"], "indices list is empty"),
        (["--layers", ""], "non-empty strings"),
        (["--layers", "layer1\x1b[31m"], "unknown layer 'layer1\\x1b[31m'"),
        (["--layers", "a\tb"], "unknown layer 'a\\tb'"),
        (["--layers", "../../etc/passwd"], "unknown layer '../../etc/passwd'"),
        (["--layers", "Ω層"], "unknown layer 'Ω層'"),
        (["--layers", "x" * 5000], "unknown layer"),
        (["--tensors", "\u202etensor"], "'\\u202etensor' is not in the graph"),
    ],
)
def test_odd_names_exit_2(model_path, args, fragment, capsys):
    assert main(["cut", str(model_path), *args]) == 2
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err and "\x1b" not in err
    assert listing(model_path.parent) == ["m.onnx"]


@pytest.mark.parametrize(
    "kwargs", [{"layers": []}, {"layers": [1]}, {"tensors": [None]}, {"indices": ["0"]}, {"tensors": 5}, {}, {"layers": ["a"], "indices": [0]}]
)
def test_bad_arguments_to_the_api(model_path, kwargs):
    with pytest.raises(GraphfeatError):
        graphfeat.cut(model_path, **kwargs)


@pytest.mark.parametrize("bad", [None, 3, b"m.onnx", onnx.ModelProto()])
def test_not_a_model(bad):
    with pytest.raises(GraphfeatError):
        graphfeat.feature_levels(bad)
    with pytest.raises(GraphfeatError):
        graphfeat.cut(bad, layers=["layer1"])


def test_info_table_escapes_names_from_the_file(tmp_path, capsys):
    model, truth = resnet_like("plain")
    hostile = "layer1\x1b]0;pwned\x07"
    add_metadata(model, [(hostile, truth["layer1"], 8, 4)])
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "layer1\\x1b]0;pwned\\x07" in out


# -- subgraphs on the path ---------------------------------------------------------------------------------
def _if_model() -> onnx.ModelProto:
    rng = np.random.default_rng(3)
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 8, 8])
    inits = [
        numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "stem.conv.weight"),
        numpy_helper.from_array(rng.normal(size=(4, 4, 1, 1)).astype(np.float32), "body.conv.weight"),
        numpy_helper.from_array(np.array(True), "flag"),
    ]
    out_t = helper.make_tensor_value_info("branch", TensorProto.FLOAT, [1, 4, 8, 8])
    local = [helper.make_node("Relu", ["s"], ["inner"]), helper.make_node("Neg", ["inner"], ["branch"])]
    then_g = helper.make_graph(local, "then", [], [out_t])
    else_g = helper.make_graph([helper.make_node("Sigmoid", ["s"], ["branch"])], "else", [], [out_t])
    nodes = [
        helper.make_node("Conv", ["images", "stem.conv.weight"], ["s"], pads=[1, 1, 1, 1], name="1Conv"),
        helper.make_node("If", ["flag"], ["b"], then_branch=then_g, else_branch=else_g, name="2If"),
        helper.make_node("Conv", ["b", "body.conv.weight"], ["y"], name="3Conv"),
        helper.make_node("Relu", ["y"], ["out"], name="4Relu"),
    ]
    graph = helper.make_graph(nodes, "if_net", [x], [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4, 8, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("layers", [["stem"], ["body"], ["stem", "body"]])
def test_if_on_the_path_is_cut_correctly(layers):
    model = _if_model()
    result = graphfeat.cut(model, layers=layers)
    onnx.checker.check_model(result, full_check=True)
    x = np.random.default_rng(0).normal(size=(1, 3, 8, 8)).astype(np.float32)
    truth = {"stem": "s", "body": "out"}
    expected = run(expose(model, [truth[n] for n in layers]), x)
    got = run(result, x)
    for name in layers:
        np.testing.assert_allclose(got[name], expected[truth[name]], rtol=1e-6)


def test_tensor_inside_a_subgraph_is_refused_by_name():
    with pytest.raises(GraphfeatError, match="'inner' is not in the graph"):
        graphfeat.cut(_if_model(), tensors=["inner"])


# -- onnx itself ------------------------------------------------------------------------------------------
def test_onnx_has_the_external_data_fixes():
    """onnx >= 1.21.0 fixes CVE-2026-27489/-34445/-34446/-34447 (and the older traversal CVEs)."""
    major, minor = (int(p) for p in onnx.__version__.split(".")[:2])
    assert (major, minor) >= (1, 21), onnx.__version__


def test_graphfeat_never_uses_onnx_external_data_helpers():
    """Loading, copying and saving external data is graphfeat.onnxfile's own code; onnx's helpers follow
    whatever the file says (and with an empty base directory, symlinks too)."""
    forbidden = re.compile(
        r"\b(load_external_data_for_model|load_external_data_for_tensor|save_external_data|"
        r"convert_model_to_external_data|write_external_data_tensors|ExternalDataInfo)\b|"
        r"\bonnx\.(load|save|load_model|save_model|load_from_string)\("
    )
    hits = [
        f"{source.name}:{k}: {line.strip()}"
        for source in (ROOT / "graphfeat").glob("*.py")
        for k, line in enumerate(source.read_text().splitlines(), 1)
        if forbidden.search(line)
    ]
    assert hits == []
    checker_calls = [s.relative_to(ROOT).as_posix() for s in (ROOT / "graphfeat").rglob("*.py")
                     if "checker.check_model(str(" in s.read_text()]
    assert checker_calls == ["graphfeat/graph/check.py"]  # only on the weight-free skeleton in a private temp directory
