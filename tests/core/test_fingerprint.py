"""Levels found again by value (fingerprints), contrib-op typing and declared float16 types. No MindSpore."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphfeat.errors import GraphfeatError
from graphfeat.graph.probe import run_tensors
from graphfeat.levels import LevelRecord, build_record, write_metadata
from graphfeat.resolve import producer_op, probe_input, sketch
from graphfeat.graph import GraphIndex
from graphfeat.surgery import cut
from graphfeat.info import feature_levels

SEED = 5


def _backbone(scale: float = 1.0) -> onnx.ModelProto:
    """x -> Conv -> BN -> Relu (level 'stem') -> Conv -> Relu (level 'deep') -> Mul(scale) -> logits."""
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    w2 = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
    inits = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2"),
             numpy_helper.from_array(np.full(8, 1.5, np.float32), "g"),
             numpy_helper.from_array(np.full(8, 0.1, np.float32), "b"),
             numpy_helper.from_array(np.zeros(8, np.float32), "m"),
             numpy_helper.from_array(np.ones(8, np.float32), "v"),
             numpy_helper.from_array(np.array(scale, np.float32), "s")]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("BatchNormalization", ["c1", "g", "b", "m", "v"], ["bn1"]),
             helper.make_node("Relu", ["bn1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("Mul", ["r2", "s"], ["logits"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 32, 32])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model = onnx.shape_inference.infer_shapes(model)
    _record(model, {"stem": "r1", "deep": "r2"})
    return model


def _record(model: onnx.ModelProto, levels: dict[str, str], fingerprints: bool = True) -> None:
    probe = probe_input((32, 32), seed=SEED)
    got = run_tensors(model, {"x": probe}, list(levels.values()))
    index = GraphIndex(model)
    rows = []
    for k, (name, tensor) in enumerate(levels.items()):
        row = {"index": k, "name": name, "chs": 8, "reduction": 2 * (k + 1), "tensor": tensor}
        if fingerprints:
            row["fingerprint"] = sketch(got[tensor], producer_op(index, tensor))
        rows.append(row)
    write_metadata(model, build_record([LevelRecord.from_dict(row) for row in rows],
                                       input={"name": "x", "shape": ["batch", 3, 32, 32]},
                                       input_size=[32, 32], probe_seed=SEED))


def _rename(model: onnx.ModelProto, old: str, new: str) -> None:
    for node in model.graph.node:
        node.input[:] = [new if i == old else i for i in node.input]
        node.output[:] = [new if o == old else o for o in node.output]
    for vi in model.graph.value_info:
        if vi.name == old:
            vi.name = new


def _levels(model):
    return json.loads(next(p.value for p in model.metadata_props if p.key.startswith("graphfeat.")))["levels"]


def test_sketch_is_small_and_deterministic():
    values = np.random.default_rng(1).standard_normal((1, 64, 16, 16)).astype(np.float32)
    fp = sketch(values, "Relu")
    assert fp == sketch(values.copy(), "Relu")
    assert len(json.dumps(fp)) < 800 and fp["shape"] == [64, 16, 16] and len(fp["samples"]) == 32


def test_exact_names_need_no_run(monkeypatch):
    import graphfeat.resolve.fingerprint as fingerprint

    monkeypatch.setattr(fingerprint, "run_tensors", lambda *a, **k: pytest.fail("ran the model"))
    out = cut(_backbone(), layers=["stem", "deep"])
    assert [lv.get("resolved_by", "metadata") for lv in _levels(out)] == ["metadata", "metadata"]


def test_renamed_level_is_found_by_fingerprint_in_one_run(monkeypatch):
    import graphfeat.resolve.fingerprint as fingerprint

    model = _backbone()
    _rename(model, "r1", "renamed_by_a_tool")
    _rename(model, "r2", "also_renamed")
    runs = []
    real = fingerprint.run_tensors
    monkeypatch.setattr(fingerprint, "run_tensors", lambda *a, **k: runs.append(1) or real(*a, **k))
    out = cut(model, layers=["stem", "deep"])
    assert len(runs) == 1
    levels = _levels(out)
    assert [lv["resolved_by"] for lv in levels] == ["fingerprint", "fingerprint"]
    assert [lv["recorded_tensor"] for lv in levels] == ["r1", "r2"]
    rows = feature_levels(model)
    assert [(r.tensor, r.resolved_by) for r in rows] == [("renamed_by_a_tool", "fingerprint"),
                                                          ("also_renamed", "fingerprint")]


def test_a_tensor_whose_op_changed_is_not_used_silently():
    model = _backbone()
    # a tool reuses the name 'r1' for the pre-activation (Relu dropped): the value no longer matches
    relu = next(n for n in model.graph.node if n.output[0] == "r1")
    model.graph.node.remove(relu)
    _rename(model, "bn1", "r1")
    with pytest.raises(GraphfeatError, match="no longer computes it.*no tensor of this file matches level 'stem'"):
        cut(model, layers=["stem"])


def test_stale_without_fingerprint_is_refused_with_hint():
    model = _backbone()
    del model.metadata_props[:]
    _record(model, {"stem": "r1", "deep": "r2"}, fingerprints=False)
    _rename(model, "r1", "gone")
    with pytest.raises(GraphfeatError, match="stale.*--reference"):
        cut(model, layers=["stem"])


def test_ambiguous_match_is_refused_naming_both():
    model = _backbone()
    # a second tensor equal to the level up to float noise, but not a copy of it
    model.graph.initializer.append(numpy_helper.from_array(np.array(1 + 1e-7, np.float32), "eps"))
    model.graph.node.insert(3, helper.make_node("Mul", ["r1", "eps"], ["r1_twin"]))
    model.graph.node.append(helper.make_node("Add", ["r1_twin", "r1_twin"], ["extra"]))
    model.graph.output.append(helper.make_tensor_value_info("extra", TensorProto.FLOAT, None))
    _rename(model, "r1", "renamed")
    with pytest.raises(GraphfeatError, match=r"several distinct tensors.*'(renamed|r1_twin)'.*'(renamed|r1_twin)'"):
        cut(model, layers=["stem"])


def test_contrib_ops_are_typed_checked_and_run(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    src, dst = tmp_path / "m.onnx", tmp_path / "m.ort.onnx"
    onnx.save(_backbone(), str(src))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = str(dst)
    ort.InferenceSession(str(src), so, providers=["CPUExecutionProvider"])
    optimized = onnx.load(str(dst))
    assert any(n.domain == "com.microsoft" for n in optimized.graph.node)
    out = cut(optimized, layers=["stem", "deep"])
    assert all(vi.type.tensor_type.elem_type == TensorProto.FLOAT for vi in out.graph.output)
    probe = probe_input((32, 32), seed=3)
    got = ort.InferenceSession(out.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": probe})
    want = run_tensors(_backbone(), {"x": probe}, ["r1", "r2"])
    np.testing.assert_allclose(got[0], want["r1"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got[1], want["r2"], rtol=1e-4, atol=1e-4)


def test_declared_float16_output_stays_float16():
    model = _backbone()
    # x -> Cast(fp16) -> Relu -> 'half' (declared float16) -> Cast(fp32) -> Add into logits
    model.graph.node.extend([
        helper.make_node("Cast", ["x"], ["x16"], to=TensorProto.FLOAT16),
        helper.make_node("Relu", ["x16"], ["half"]),
        helper.make_node("Cast", ["half"], ["half32"], to=TensorProto.FLOAT),
    ])
    model.graph.output.append(helper.make_tensor_value_info("half32", TensorProto.FLOAT, None))
    model.graph.value_info.append(helper.make_tensor_value_info("half", TensorProto.FLOAT16, ["batch", 3, 32, 32]))
    out = cut(model, tensors=["half"])
    assert out.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT16


def test_probe_run_hands_large_weights_to_ort_as_arrays_and_leaves_the_model_alone():
    from graphfeat.graph.probe import SHARE_MIN_ELEMENTS, session_model

    rng = np.random.default_rng(2)
    w = rng.standard_normal((64, 64)).astype(np.float32)  # raw_data
    w2 = rng.standard_normal((64, 32)).astype(np.float32)  # float_data, as onnxsim writes
    b = rng.standard_normal(64).astype(np.float32)  # small: stays in the bytes
    w2_proto = helper.make_tensor("w2", TensorProto.FLOAT, w2.shape, w2.ravel().tolist())
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "b"], ["hb"]),
             helper.make_node("MatMul", ["hb", "w2"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32])],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b"), w2_proto])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    before = model.SerializeToString()
    data, arrays = session_model(model, ["hb", "y"])
    assert sorted(arrays) == ["w", "w2"] and w.size >= SHARE_MIN_ELEMENTS
    assert len(data) < w.nbytes  # the graph and the small tensor only
    x = rng.standard_normal((1, 64)).astype(np.float32)
    got = run_tensors(model, {"x": x}, ["hb", "y"])
    np.testing.assert_allclose(got["hb"], x @ w + b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got["y"], (x @ w + b) @ w2, rtol=1e-4, atol=1e-4)
    assert model.SerializeToString() == before


@pytest.mark.parametrize("batch", ["batch", 1])
def test_only_tensors_of_a_stale_levels_shape_are_exposed(monkeypatch, batch):
    """``batch`` 1: the input is declared at the probe's shape, so the index's own types are used."""
    import graphfeat.resolve.fingerprint as fingerprint

    model = _backbone()
    model.graph.input[0].type.tensor_type.shape.dim[0].Clear()
    if batch == 1:
        model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    else:
        model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = batch
    _rename(model, "r1", "renamed")  # 'stem' (8x16x16) is stale; 'deep' (8x8x8) keeps its name
    exposed = []
    real = fingerprint.run_tensors
    monkeypatch.setattr(fingerprint, "run_tensors", lambda m, f, names: exposed.extend(names) or real(m, f, names))
    out = cut(model, layers=["stem", "deep"])
    assert sorted(exposed) == ["bn1", "c1", "renamed"]
    assert [lv.get("resolved_by", "metadata") for lv in _levels(out)] == ["fingerprint", "metadata"]


def test_the_value_run_uses_the_resolvers_graph_when_it_holds_every_weight():
    from graphfeat.resolve import Resolver, ValueFinder

    model = _backbone()
    _rename(model, "r1", "renamed")
    index = GraphIndex(model)
    finder = ValueFinder(index, lambda: pytest.fail("loaded the weights again"))
    assert Resolver(index, finder).resolve("stem").tensor == "renamed"
    skeleton = onnx.ModelProto()
    skeleton.CopyFrom(model)
    next(t for t in skeleton.graph.initializer if t.name == "w2").ClearField("raw_data")  # deferred, as load_skeleton does
    loads = []
    index = GraphIndex(skeleton)
    finder = ValueFinder(index, lambda: loads.append(1) or model)
    assert Resolver(index, finder).resolve("stem").tensor == "renamed" and loads == [1]


def test_renamed_levels_of_an_external_data_file_are_found_by_fingerprint(tmp_path):
    """The file's weights live in a side file: the value run reads them (``load_with_weights``; ONNX Runtime,
    handed the model's bytes, cannot find the file), finds both renamed levels, and the cut's outputs are the
    recorded levels' values. ``info`` finds them the same way."""
    from graphfeat.surgery import cut_file

    model = _backbone()
    probe = probe_input((32, 32), seed=SEED)
    expected = run_tensors(model, {"x": probe}, ["r1", "r2"])
    _rename(model, "r1", "renamed_by_a_tool")
    _rename(model, "r2", "also_renamed")
    src = tmp_path / "backbone.onnx"
    onnx.save(model, src, save_as_external_data=True, all_tensors_to_one_file=True, location="backbone.weights",
              size_threshold=0)
    assert not any(t.raw_data for t in onnx.load(src, load_external_data=False).graph.initializer)
    assert [(r.tensor, r.resolved_by) for r in feature_levels(src)] == [("renamed_by_a_tool", "fingerprint"),
                                                                        ("also_renamed", "fingerprint")]
    dst = cut_file(src, tmp_path / "features.onnx", layers=["stem", "deep"])
    out = onnx.load(dst)  # its external weights resolved next to it
    assert [o.name for o in out.graph.output] == ["stem", "deep"]
    assert [lv["resolved_by"] for lv in _levels(out)] == ["fingerprint", "fingerprint"]
    got = run_tensors(out, {"x": probe}, ["stem", "deep"])
    for name, tensor in (("stem", "r1"), ("deep", "r2")):
        assert expected[tensor].std() > 0.1
        np.testing.assert_array_equal(got[name], expected[tensor])
