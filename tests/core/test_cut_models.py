"""Cuts of the three model scenarios: valid, runnable, same values, head pruned, metadata rewritten."""
from __future__ import annotations

import json

import numpy as np
import onnx
import onnx_fixtures  # noqa: F401  (first: puts the repository root on sys.path)
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_fixtures import (
    add_metadata,
    expose,
    features_like,
    hrnet_like,
    image,
    resnet_like,
    run,
)

import graphfeat
from graphfeat.levels import METADATA_KEY, PARTIAL_KEY, read_metadata
from graphfeat.graph import cleanup

CASES = [
    (resnet_like, ["layer1", "layer2", "layer3", "layer4"]),
    (features_like, ["features.3", "features.6", "features.9"]),
    (hrnet_like, ["stage1.branches.0", "stage1.branches.1"]),
]


def assert_valid_and_equal(original, result, truth_by_output, x=None):
    """full_check passes, ORT runs it, and each output equals the tensor in the original graph."""
    onnx.checker.check_model(result, full_check=True)
    x = image() if x is None else x
    ref = run(expose(original, list(truth_by_output.values())), x)
    got = run(result, x)
    assert list(got) == list(truth_by_output)
    for out, tensor in truth_by_output.items():
        np.testing.assert_allclose(got[out], ref[tensor], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("style", ["torchscript", "dynamo", "namespace", "mindspore"])
@pytest.mark.parametrize("build,names", CASES, ids=["resnet", "features", "hrnet"])
def test_cut_by_structure(build, names, style):
    model, truth = build(style)
    result = graphfeat.cut(model, layers=list(reversed(names)))  # output order follows the features
    assert_valid_and_equal(model, result, {n: truth[n] for n in names})
    for out in result.graph.output:
        dims = out.type.tensor_type.shape.dim
        assert len(dims) == 4 and dims[0].dim_param  # batch stays symbolic
        assert all(d.HasField("dim_value") for d in dims[1:])


@pytest.mark.parametrize("build,names", CASES, ids=["resnet", "features", "hrnet"])
def test_cut_by_metadata(build, names):
    model, truth = build("plain")
    levels = [(n, truth[n], 8, 4 * 2**i) for i, n in enumerate(names)]
    add_metadata(model, levels)
    result = graphfeat.cut(model, indices=[0, -1])
    assert_valid_and_equal(model, result, {names[0]: truth[names[0]], names[-1]: truth[names[-1]]})
    record = read_metadata(result)
    assert [(lv["index"], lv["name"], lv["source_index"], lv["tensor"]) for lv in record["levels"]] == [
        (0, names[0], 0, names[0]),
        (1, names[-1], len(names) - 1, names[-1]),
    ]
    assert [lv.name for lv in graphfeat.feature_levels(result)] == [names[0], names[-1]]


def test_pruning_removes_the_head():
    model, _ = resnet_like("mindspore")
    result = graphfeat.cut(model, layers=["layer2"])
    assert len(result.graph.node) < len(model.graph.node)
    kept = {t.name for t in result.graph.initializer}
    assert not any(name.startswith(("classifier.", "layer3.", "layer4.")) for name in kept)
    assert any(name.startswith("layer2.") for name in kept)
    assert {n.op_type for n in result.graph.node}.isdisjoint({"ReduceMean", "MatMul"})
    assert all(v.name in {o for n in result.graph.node for o in n.output} for v in result.graph.value_info)


def test_cleanup_is_idempotent():
    model, _ = resnet_like("dynamo")
    once = graphfeat.cut(model, layers=["layer3"])
    before = once.SerializeToString()
    cleanup(once)
    cleanup(once)
    assert once.SerializeToString() == before


def test_keep_outputs_and_tensor_order():
    model, truth = resnet_like("mindspore")
    original = model.graph.output[0].name
    result = graphfeat.cut(model, layers=["layer1"], keep_outputs=True)
    assert [o.name for o in result.graph.output] == ["layer1", original]
    assert_valid_and_equal(model, result, {"layer1": truth["layer1"], original: original})
    picked = [truth["layer3"], truth["layer1"]]
    result = graphfeat.cut(model, tensors=picked)
    assert [o.name for o in result.graph.output] == picked  # --tensors keeps the given order and names
    assert_valid_and_equal(model, result, {t: t for t in picked})


def test_cut_without_metadata_records_levels():
    model, truth = resnet_like("mindspore")
    result = graphfeat.cut(model, layers=["layer2", "layer4"])
    record = read_metadata(result)
    assert [(lv["name"], lv["chs"], lv["reduction"], lv["tensor"]) for lv in record["levels"]] == [
        ("layer2", 16, 8, "layer2"),
        ("layer4", 32, 32, "layer4"),
    ]
    assert record["input"]["shape"] == ["batch", 3, 64, 64]
    assert graphfeat.feature_info(result).channels() == [16, 32]
    # a re-cut of the result resolves by that metadata
    again = graphfeat.cut(result, layers=["layer4"])
    assert graphfeat.feature_levels(again)[0].resolved_by == "metadata"
    assert_valid_and_equal(model, again, {"layer4": truth["layer4"]})


def test_unknown_dims_go_to_the_partial_record():
    model, _ = resnet_like("mindspore")
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "height"  # spatial size now dynamic
    del model.graph.value_info[:]
    for out in model.graph.output:
        out.type.tensor_type.ClearField("shape")
    result = graphfeat.cut(model, layers=["layer1", "layer2"])
    assert read_metadata(result) is None
    partial = json.loads(next(p.value for p in result.metadata_props if p.key == PARTIAL_KEY))
    assert [(lv["name"], lv["chs"], lv["reduction"]) for lv in partial["levels"]] == [
        ("layer1", 8, None),
        ("layer2", 16, None),
    ]
    rows = graphfeat.feature_levels(result)
    assert [(r.name, r.reduction, r.resolved_by) for r in rows] == [("layer1", None, "metadata"), ("layer2", None, "metadata")]
    with pytest.raises(graphfeat.GraphfeatError, match="unknown"):
        graphfeat.feature_info(result)
    assert METADATA_KEY not in {p.key for p in result.metadata_props}


def test_layer_name_colliding_with_a_tensor_name():
    model, truth = resnet_like("mindspore")
    victim = truth["layer1.0"]  # an internal tensor now named like the layer we ask for
    for node in model.graph.node:
        node.input[:] = ["layer2" if n == victim else n for n in node.input]
        node.output[:] = ["layer2" if n == victim else n for n in node.output]
    for vi in model.graph.value_info:
        if vi.name == victim:
            vi.name = "layer2"
    result = graphfeat.cut(model, layers=["layer2"])
    assert [o.name for o in result.graph.output] == ["layer2"]
    assert_valid_and_equal(model, result, {"layer2": truth["layer2"]})


def test_two_layers_on_one_tensor():
    model, truth = resnet_like("mindspore")
    result = graphfeat.cut(model, layers=["layer4", "layer4.0"])
    # same tensor: ties keep the requested order
    assert_valid_and_equal(model, result, {"layer4": truth["layer4"], "layer4.0": truth["layer4"]})


def test_subgraph_outer_scope_references_are_kept():
    """An If branch reading an outer tensor keeps that tensor's producer alive."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    w = numpy_helper.from_array(np.full((4,), 2.0, np.float32), "scale.weight")
    flag = numpy_helper.from_array(np.array(True), "flag")
    then_g = helper.make_graph(
        [helper.make_node("Mul", ["hidden", "scale.weight"], ["then_out"])], "then", [],
        [helper.make_tensor_value_info("then_out", TensorProto.FLOAT, ["batch", 4])],
    )  # fmt: skip
    else_g = helper.make_graph(
        [helper.make_node("Identity", ["hidden"], ["else_out"])], "else", [],
        [helper.make_tensor_value_info("else_out", TensorProto.FLOAT, ["batch", 4])],
    )  # fmt: skip
    nodes = [
        helper.make_node("Relu", ["x"], ["hidden"], name="hidden_relu"),
        helper.make_node("Neg", ["x"], ["unused"], name="dead"),
        helper.make_node("If", ["flag"], ["branch"], then_branch=then_g, else_branch=else_g, name="if"),
        helper.make_node("Sigmoid", ["branch"], ["y"], name="head"),
    ]
    graph = helper.make_graph(
        nodes, "g", [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])], [w, flag]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    result = graphfeat.cut(model, tensors=["branch"])
    assert [n.name for n in result.graph.node] == ["hidden_relu", "if"]
    assert {t.name for t in result.graph.initializer} == {"scale.weight", "flag"}
    xin = np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32)
    got = run(result, xin)
    np.testing.assert_allclose(got["branch"], np.maximum(xin, 0) * 2.0)
    onnx.checker.check_model(result, full_check=True)


def test_unused_local_functions_are_removed():
    model, _ = resnet_like("mindspore")
    fn = helper.make_function("custom.dom", "Unused", ["a"], ["b"], [helper.make_node("Relu", ["a"], ["b"])],
                              [helper.make_opsetid("", 17)])  # fmt: skip
    model.functions.append(fn)
    model.opset_import.append(helper.make_opsetid("custom.dom", 1))
    result = graphfeat.cut(model, layers=["layer1"])
    assert len(result.functions) == 0
    assert {(o.domain, o.version) for o in result.opset_import} == {(o.domain, o.version) for o in model.opset_import}
    assert result.ir_version == model.ir_version
