"""verify on real fp16-converted and QDQ-quantised copies of small hand-built pyramids (no MindSpore).

Each case runs the real converter (onnxconverter-common) or the real ORT quantiser, then the real
runtimes; the reference is either an npz written here from the fp32 model or the fp32 original itself
(``--against``). Every check is one that a wrong implementation fails.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest

from onnx_fixtures import add_metadata, expose, quantize_qdq, resnet_like, run

import graphfeat
from graphfeat.errors import GraphfeatError
from graphfeat.levels import read_metadata
from graphfeat.graph import is_quantized
from graphfeat.runtime import (DEFAULT_MIN_COSINE, DEFAULT_MIN_SQNR, DEFAULT_RTOLS, FeaturePyramid, ProviderWarning,
                               level_precisions, verify)

LEVELS = ["layer1", "layer2", "layer3", "layer4"]
ROOT = Path(__file__).resolve().parents[2]


def _need_fp16(files) -> None:
    if files["fp16"] is None:
        pytest.skip("onnxconverter-common is not installed")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "graphfeat", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """fp32 original with metadata, its cut, an npz reference with 3 distinct images, and converted copies."""
    d = tmp_path_factory.mktemp("verify_core")
    model, truth = resnet_like("plain")
    model = add_metadata(model, [(n, truth[n], c, r) for n, c, r in
                                 zip(LEVELS, (8, 16, 24, 32), (4, 8, 16, 32))])
    original = d / "net.onnx"
    onnx.save(model, original)
    cut = d / "net.features.onnx"
    onnx.save(graphfeat.cut(original, layers=LEVELS), cut)
    x = np.random.default_rng(7).standard_normal((3, 3, 64, 64)).astype(np.float32)
    values = run(expose(model, [truth[n] for n in LEVELS]), x)
    ref = d / "net.npz"
    np.savez(ref, input=x, **{f"level/{n}": values[truth[n]] for n in LEVELS})
    onnx_fp32 = onnx.load(cut)

    fp16 = d / "net.fp16.onnx"  # fp16 inside and at the outputs (keep_io_types=False: fp16 input too)
    try:
        from onnxconverter_common import float16
    except ImportError:  # not (yet) in the `test` extra: the fp16 cases skip, the others run
        fp16 = None
    else:
        onnx.save(float16.convert_float_to_float16(onnx.load(cut), keep_io_types=False), fp16)

    qdq = d / "net.qdq.onnx"
    quantize_qdq(cut, qdq, per_channel=True, seed=11)
    tampered = d / "net.tampered.onnx"  # one convolution's weights doubled: a wrong file, not a rounding
    bad = onnx.load(cut)
    conv = [n for n in bad.graph.node if n.op_type == "Conv"][6]
    init = next(t for t in bad.graph.initializer if t.name == conv.input[1])
    init.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(init) * 2.0, init.name))
    onnx.save(bad, tampered)
    return {"dir": d, "original": original, "cut": cut, "ref": ref, "fp16": fp16, "qdq": qdq,
            "tampered": tampered, "x": x, "fp32_model": onnx_fp32}


def test_precision_detection(files):
    _need_fp16(files)
    fp32, fp16, qdq = (onnx.load(files[k]) for k in ("cut", "fp16", "qdq"))
    outs = lambda m: [o.name for o in m.graph.output]  # noqa: E731
    assert {p.compute for p in level_precisions(fp32, outs(fp32)).values()} == {"float32"}
    p16 = level_precisions(fp16, outs(fp16))
    assert {(p.dtype, p.compute, p.quantized) for p in p16.values()} == {("float16", "float16", False)}
    pq = level_precisions(qdq, outs(qdq))
    assert all(p.quantized for p in pq.values())
    assert is_quantized(qdq) and not is_quantized(fp32) and not is_quantized(fp16)


def test_fp32_default_is_1e4_and_fp16_default_is_looser(files):
    _need_fp16(files)
    r32 = verify(files["cut"], reference=files["ref"])
    assert r32.ok and all(m.criterion == "rtol 0.0001 (float32)" for m in r32.levels)
    r16 = verify(files["fp16"], reference=files["ref"])
    assert r16.ok, [(m.name, m.max_rel, m.note) for m in r16.levels]
    assert all(m.dtype == "float16" and m.criterion == f"rtol {DEFAULT_RTOLS['float16']:g} (float16)"
               for m in r16.levels)
    worst = max(m.max_rel for m in r16.levels)
    assert 1e-4 < worst < DEFAULT_RTOLS["float16"]  # real fp16 rounding: over the fp32 tolerance, under fp16's
    # an explicit --rtol still overrides: fp16 fails at the fp32 tolerance
    strict = verify(files["fp16"], reference=files["ref"], rtol=1e-4)
    assert not strict.ok and all(m.criterion == "rtol 0.0001 (--rtol given)" for m in strict.levels)


def test_qdq_judged_by_cosine_and_sqnr(files):
    r = verify(files["qdq"], reference=files["ref"])
    assert r.quantized and r.ok, [(m.name, m.cosine, m.sqnr, m.note) for m in r.levels]
    for m in r.levels:
        assert m.criterion == f"cosine >= {DEFAULT_MIN_COSINE:g} and SQNR >= {DEFAULT_MIN_SQNR:g} dB (quantized)"
        assert m.max_rel > DEFAULT_RTOLS["float16"]  # elementwise it would fail: it is not the criterion
        assert DEFAULT_MIN_SQNR < m.sqnr < 60 and DEFAULT_MIN_COSINE < m.cosine < 0.99999
    tight = verify(files["qdq"], reference=files["ref"], min_sqnr=80.0)
    assert not tight.ok and all("SQNR" in m.note for m in tight.levels)
    both = verify(files["qdq"], reference=files["ref"], rtol=1e-4)
    assert not both.ok and all("rtol" in m.criterion and "cosine" in m.criterion for m in both.levels)


def test_against_original_passes_for_copies_and_fails_for_a_tampered_one(files):
    _need_fp16(files)
    for key in ("cut", "fp16", "qdq"):
        r = verify(files[key], against=files["original"], batch=2)
        assert r.ok, (key, [(m.name, m.max_rel, m.note) for m in r.levels])
        assert r.images == 2 and r.source.startswith("original ")
    bad = verify(files["tampered"], against=files["original"])
    assert not bad.ok and bad.levels[0].ok  # the doubled conv is after layer1
    # the CLI: exit codes 0 / 1, JSON fields; --against excludes --reference
    ok = _cli("verify", files["fp16"], "--against", files["original"], "--json")
    assert ok.returncode == 0, ok.stderr
    doc = json.loads(ok.stdout)
    assert doc["providers"] == ["CPUExecutionProvider"] and doc["source"].startswith("original")
    assert {lv["dtype"] for lv in doc["levels"]} == {"float16"}
    assert all(lv["criterion"] == "rtol 0.02 (float16)" for lv in doc["levels"])
    fail = _cli("verify", files["tampered"], "--against", files["original"])
    assert fail.returncode == 1 and "FAIL" in fail.stdout
    both = _cli("verify", files["cut"], "--against", files["original"], "--reference", files["ref"])
    assert both.returncode == 2 and "not allowed with" in both.stderr


def test_against_a_file_without_the_level_is_refused(files, tmp_path):
    other, truth = resnet_like("plain", seed=3)
    other = add_metadata(other, [("relu", truth["relu"], 8, 2)])
    path = tmp_path / "other.onnx"
    onnx.save(other, path)
    with pytest.raises(GraphfeatError, match="has no level layer1"):
        verify(files["cut"], against=path)


def test_providers_reported_warned_and_strict(files):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        p = FeaturePyramid(files["cut"], providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert p.providers == ["CPUExecutionProvider"]
    assert [w for w in caught if issubclass(w.category, ProviderWarning) and "CUDAExecutionProvider" in str(w.message)]
    with pytest.raises(GraphfeatError, match="CUDAExecutionProvider is not active"):
        FeaturePyramid(files["cut"], providers=["CUDAExecutionProvider"], strict_providers=True)
    assert FeaturePyramid(files["cut"], runtime="reference").providers == ["onnx.reference"]
    warn = _cli("verify", files["cut"], "--reference", files["ref"], "--providers", "CUDAExecutionProvider", "--json")
    assert warn.returncode == 0
    lines = [ln for ln in warn.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "warning" in lines[0] and "CUDAExecutionProvider" in lines[0]
    doc = json.loads(warn.stdout)
    assert doc["requested_providers"] == ["CUDAExecutionProvider"] and doc["providers"] == ["CPUExecutionProvider"]
    strict = _cli("verify", files["cut"], "--reference", files["ref"], "--providers", "CUDAExecutionProvider",
                  "--strict-providers")
    assert strict.returncode == 2 and "not active" in strict.stderr and not strict.stdout


def test_reference_images_distinct_first_n_then_tiled_with_a_note(files):
    r = verify(files["cut"], reference=files["ref"])
    assert r.input_shape[0] == 3 and r.images == 3 and not r.notes
    r2 = verify(files["cut"], reference=files["ref"], batch=2)
    assert r2.input_shape[0] == 2 and r2.images == 2 and not r2.notes
    r5 = verify(files["cut"], reference=files["ref"], batch=5)
    assert r5.ok and r5.input_shape[0] == 5 and r5.images == 3
    assert any("3 distinct images" in n for n in r5.notes)
    table = _cli("verify", files["cut"], "--reference", files["ref"], "--batch", "5")
    assert table.returncode == 0 and "note: the reference holds 3 distinct images" in table.stdout
    # an old one-image reference still works, at batch 1 and tiled
    old = files["dir"] / "old.npz"
    data = np.load(files["ref"])
    np.savez(old, **{k: data[k][:1] for k in data.files})
    assert verify(files["cut"], reference=old).images == 1
    r4 = verify(files["cut"], reference=old, batch=4)
    assert r4.ok and r4.images == 1 and r4.notes


def test_model_images_are_distinct(files, monkeypatch):
    """--model draws a seeded batch: every image different (the MindSpore side is stubbed by the fp32 model)."""
    from graphfeat.runtime import verification

    model = onnx.load(files["original"])
    tensors = {lv["name"]: lv["tensor"] for lv in read_metadata(model)["levels"]}

    def fake(name, names, x, checkpoint, seed):
        out = run(expose(model, [tensors[n] for n in names]), x)
        return [out[tensors[n]] for n in names]

    monkeypatch.setattr(verification, "mindspore_levels", fake)
    r = verify(files["cut"], model="stub", batch=4)
    assert r.ok and r.images == 4


def test_run_time_size_errors_are_graphfeat_errors(tmp_path):
    """A dynamic-size file at a size its branches cannot meet: one clear GraphfeatError, not an ORT traceback."""
    from onnx_fixtures import hrnet_like

    model, truth = hrnet_like("plain")
    # the fused stride-4 branch adds the upsampled stride-8 one: at 68 px they are 17 and 2 x 9 = 18
    add = next(n for n in model.graph.node if n.op_type == "Add" and truth["stage1.fuse_layers.0.1"] in n.input)
    fused = next(n for n in model.graph.node if n.op_type == "Relu" and add.output[0] in n.input).output[0]
    model = add_metadata(model, [("fused", fused, 8, 4), ("down", truth["stage1.fuse_layers.1.0"], 16, 8)])
    for k, name in ((2, "h"), (3, "w")):
        model.graph.input[0].type.tensor_type.shape.dim[k].Clear()
        model.graph.input[0].type.tensor_type.shape.dim[k].dim_param = name
    del model.graph.value_info[:]
    path = tmp_path / "hr.onnx"
    onnx.save(model, path)
    cut = tmp_path / "hr.features.onnx"
    onnx.save(graphfeat.cut(path, tensors=[fused, truth["stage1.fuse_layers.1.0"]]), cut)
    raw = onnx.load(cut)
    del raw.metadata_props[:]  # a dynamic-size cut by tensor leaves chs/reduction open: record them
    outs = [o.name for o in raw.graph.output]
    onnx.save(add_metadata(raw, [("fused", outs[0], 8, 4), ("down", outs[1], 16, 8)]), cut)
    pyramid = FeaturePyramid(cut)
    ok = pyramid(np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32))
    assert [v.shape[2] for v in ok.values()] == [16, 8]
    with pytest.raises(GraphfeatError, match="68x68 is not a multiple of the deepest stride 8"):
        pyramid(np.ones((1, 3, 68, 68), np.float32))
    bad = _cli("verify", cut, "--against", path, "--input-size", "68", "68")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "stride 8" in bad.stderr


def test_the_runner_exposes_intermediate_tensors_without_touching_the_model():
    """``graphfeat.graph.ort_runner`` (what every proof and probe run uses instead of a copy of the model):
    its session's outputs are exactly the named tensors (each once), the model stays byte for byte what it
    was, and the values equal those of an exposed copy."""
    from onnx_fixtures import image

    from graphfeat.graph import ort_runner
    from graphfeat.runtime import run_onnxruntime

    model, truth = resnet_like("plain")
    before = model.SerializeToString()
    names = [truth["layer2"], truth["layer4"], model.graph.output[0].name]
    got = ort_runner(model, [*names, names[0]])({model.graph.input[0].name: image()})
    assert list(got) == names and model.SerializeToString() == before
    want = run(expose(model, names[:2]), image())  # ORT's full optimisation: other roundings than "probe"
    for n in names[:2]:
        np.testing.assert_allclose(got[n], want[n], rtol=1e-5, atol=1e-5 * float(np.abs(want[n]).max()))
    values = run_onnxruntime(model, {model.graph.input[0].name: image()}, names[1:])
    assert model.SerializeToString() == before and sorted(values) == sorted(names[1:])


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino", "reference"])
def test_feature_pyramid_reads_external_weights_from_the_file(files, tmp_path, runtime):
    """The runtime loads the file itself (its weights never pass through Python): a cut whose weights sit in
    a side file gives the values of the same cut held in memory, on every runtime."""
    if runtime == "openvino":
        pytest.importorskip("openvino")
    from graphfeat.runtime import session

    model = onnx.load(files["cut"])
    path = tmp_path / "ext.onnx"
    onnx.save(onnx.load(files["cut"]), path, save_as_external_data=True, location="ext.onnx.data", size_threshold=0)
    assert path.stat().st_size * 5 < (tmp_path / "ext.onnx.data").stat().st_size  # the weights are outside
    x = np.random.default_rng(5).standard_normal((2, 3, 64, 64)).astype(np.float32)
    got = FeaturePyramid(path, runtime=runtime)(x)
    expected = session(model, runtime)({model.graph.input[0].name: x})
    for name, tensor in zip(LEVELS, (lv["tensor"] for lv in read_metadata(model)["levels"])):
        assert float(np.abs(expected[tensor]).std()) > 1e-3
        np.testing.assert_array_equal(got[name], expected[tensor], err_msg=f"{runtime} {name}")


def test_feature_pyramid_refuses_a_hostile_external_location_before_the_runtime_reads_it(files, tmp_path):
    """graphfeat's checks run on a path given to ``FeaturePyramid`` and to ``runtime.session`` alike."""
    from graphfeat.runtime import session

    model = onnx.load(files["cut"])
    outside = tmp_path / "outside.data"
    inner = tmp_path / "inner"
    inner.mkdir()
    path = inner / "ext.onnx"
    onnx.save(model, path, save_as_external_data=True, location="ext.onnx.data", size_threshold=0)
    (inner / "ext.onnx.data").rename(outside)
    hostile = onnx.load(path, load_external_data=False)
    for tensor in hostile.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../outside.data"
    path.write_bytes(hostile.SerializeToString())
    for load in (FeaturePyramid, session):
        with pytest.raises(GraphfeatError, match=r"'\.\.'") as err:
            load(path)
        assert "../outside.data" in str(err.value)


def test_feature_pyramid_and_verify_give_onnx_runtime_the_path(files, monkeypatch):
    """What keeps the weights out of Python: ONNX Runtime gets the file's path, not serialized bytes."""
    import graphfeat.runtime.sessions as sessions

    sources = []
    real = sessions.ort_session
    monkeypatch.setattr(sessions, "ort_session", lambda source, *a, **k: sources.append(source) or real(source, *a, **k))
    FeaturePyramid(files["cut"])
    verify(files["cut"], reference=files["ref"])
    assert [os.fspath(s) for s in sources] == [os.fspath(files["cut"])] * 2


def test_a_model_in_memory_reaches_onnx_runtime_as_a_graph_and_its_weight_arrays(monkeypatch, tmp_path):
    """``runtime.session(proto)`` serializes the graph alone and hands ORT the large weights as arrays (no
    serialized copy for ORT to parse again); the values are exactly those of the same model read from a file.
    ``prepack=False`` (an export's proofs, one-shot runs: the ``proof`` policy) turns ORT's weight pre-packing
    off: its matrix products may round differently, but stay far inside the proofs' tolerance."""
    import graphfeat.graph.probe as probe
    import graphfeat.runtime.sessions as sessions
    from onnx import TensorProto, helper, numpy_helper

    from graphfeat.runtime import run_onnxruntime, session

    rng = np.random.default_rng(3)
    weights = {"W": rng.standard_normal((256, 512)), "B": rng.standard_normal((384, 512)),
               "C": rng.standard_normal((16, 3, 3, 3)), "small": rng.standard_normal((8, 64))}
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()]
    nodes = [helper.make_node("MatMul", ["x", "W"], ["m"]), helper.make_node("Gemm", ["m", "B"], ["g"], transB=1),
             helper.make_node("MatMul", ["small", "g"], ["s"], name="tiny"),
             helper.make_node("Conv", ["img", "C"], ["c"], pads=[1, 1, 1, 1])]
    graph = helper.make_graph(nodes, "mm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, 256]),
                                            helper.make_tensor_value_info("img", TensorProto.FLOAT, [2, 3, 32, 32])],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("s", "c")], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    feeds = {"x": rng.standard_normal((64, 256)).astype(np.float32),
             "img": rng.standard_normal((2, 3, 32, 32)).astype(np.float32)}
    calls = []
    real = sessions.ort_session
    for module in (sessions, probe):
        monkeypatch.setattr(module, "ort_session",
                            lambda source, *a, **k: calls.append((source, a, k)) or real(source, *a, **k))

    default = session(model)(feeds)
    source, args, kwargs = calls[-1]
    assert isinstance(source, bytes) and len(source) < 8192  # the graph and C, "small": W and B hold 1.3 MB
    assert sorted(args[1]) == ["B", "W"] and args[0] == "deploy"  # C and "small" (512 values) stay inline
    onnx.save(model, tmp_path / "mm.onnx")
    from_file = session(tmp_path / "mm.onnx")(feeds)
    for name in ("s", "c"):
        assert float(np.abs(default[name]).std()) > 1.0
        np.testing.assert_array_equal(default[name], from_file[name], err_msg=name)

    one_shot = session(model, prepack=False)(feeds)
    assert calls[-1][1][0] == "proof"
    once = run_onnxruntime(model, feeds, ["g"])
    assert calls[-1][1][0] == "proof"
    for name in ("s", "c"):
        scale = float(np.abs(default[name]).max())
        assert float(np.abs(one_shot[name] - default[name]).max()) <= 1e-5 * scale, name
    want = (feeds["x"].astype(np.float64) @ weights["W"].astype(np.float32)) @ weights["B"].astype(np.float32).T
    assert float(np.abs(once["g"] - want).max()) <= 1e-5 * float(np.abs(want).max())


def test_first_line_of_an_exception_never_fails():
    """Every error graphfeat re-raises from a library keeps one line of it; an empty message gives the type."""
    from graphfeat.errors import first_line

    assert first_line(RuntimeError("")) == "RuntimeError"
    assert first_line(RuntimeError("\n  \n")) == "RuntimeError"
    assert first_line(ValueError("\n first \nsecond")) == "first"
    assert first_line(ValueError("x" * 500), limit=10) == "x" * 10


def test_the_reference_runtime_reads_an_opset_11_batchnorm_in_inference_mode(tmp_path):
    """A one-output BatchNormalization before opset 14 uses its running statistics: onnx.reference alone
    would normalise with the batch's (a wrong level, 1e-1 off at layer4), so graphfeat corrects that op."""
    from converter_fixtures import DATA, FIXTURES, assert_level, values_of

    fid = "mindspore_mindcv_resnet18"
    src = DATA / f"{fid}.onnx"
    model = onnx.load(src)
    assert FIXTURES[fid]["onnx_opset"] == 11 and any(n.op_type == "BatchNormalization" for n in model.graph.node)
    names = ["layer1", "layer4"]
    cut = graphfeat.cut_file(src, tmp_path / "cut.onnx", layers=names)
    values = values_of(fid)
    got = graphfeat.FeaturePyramid(cut, runtime="reference")(values["input"])
    for name in names:
        assert_level(got[name], values[f"level.{name}"], FIXTURES[fid], f"{fid} {name} on onnx.reference")
