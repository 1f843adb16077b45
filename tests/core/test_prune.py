"""cleanup from the cut's own GraphIndex (the renames set_outputs returns, nodes it appended) against a
fresh walk of the edited graph: the same model, byte for byte.

Every case edits two copies the same way with :func:`set_outputs`; one is cleaned up from the index
taken before the edit, the other from scratch. Cases: random DAGs with random outputs (renames,
outputs named after internal tensors, which moves those aside, a tensor serving two outputs, kept
outputs), the fixture backbones, and a subgraph reading a renamed tensor from the outer scope.
"""
from __future__ import annotations

import numpy as np
import onnx
import onnx_fixtures  # noqa: F401  (first: puts the repository root on sys.path)
import pytest
from onnx import TensorProto, helper
from onnx_fixtures import hrnet_like, resnet_like
from test_trunk import _random_dag

from graphfeat.graph import GraphIndex, cleanup, set_outputs
from graphfeat.graph.prune import needed_tensors


def _both_ways(model: onnx.ModelProto, pairs, keep_existing: bool = False) -> tuple[bytes, bytes]:
    """``model`` edited and cleaned up from the index, and the same edit cleaned up from scratch."""
    results = []
    for from_index in (True, False):
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        index = GraphIndex(copy)
        renamed = set_outputs(copy, index, pairs, keep_existing=keep_existing)
        if from_index:
            cleanup(copy, index=index, renamed=renamed)
        else:
            cleanup(copy)
        results.append(copy.SerializeToString())
    return results[0], results[1]


def _random_pairs(model: onnx.ModelProto, rng: np.random.Generator) -> list[tuple[str, str]]:
    """1-3 outputs on random computed tensors: some renamed, some named after another internal tensor,
    some keeping their own name, one tensor possibly serving two outputs."""
    index = GraphIndex(model)
    computed = sorted(t for t in index.producer if t not in index.outputs)
    if not computed:
        return []
    pairs: list[tuple[str, str]] = []
    for k in range(int(rng.integers(1, 4))):
        tensor = computed[int(rng.integers(0, len(computed)))]
        kind = rng.random()
        if kind < 0.3:
            name = computed[int(rng.integers(0, len(computed)))]  # an internal name: moved aside
        elif kind < 0.5:
            name = tensor
        else:
            name = f"level{k}"
        if all(name != out for out, _ in pairs):
            pairs.append((name, tensor))
    return pairs


@pytest.mark.parametrize("seed", range(150))
def test_cleanup_from_the_index_is_a_fresh_walk_on_random_dags(seed):
    model = _random_dag(seed)
    rng = np.random.default_rng(seed)
    pairs = _random_pairs(model, rng)
    if not pairs:
        pytest.skip("no computed tensor")
    keep = bool(rng.random() < 0.3)
    try:
        from_index, fresh = _both_ways(model, pairs, keep_existing=keep)
    except Exception as exc:  # an edit set_outputs refuses is refused both ways
        assert type(exc).__name__ == "GraphfeatError", exc
        return
    assert from_index == fresh


@pytest.mark.parametrize("build", [resnet_like, hrnet_like])
@pytest.mark.parametrize("style", ["mindspore", "torchscript"])
def test_cleanup_from_the_index_is_a_fresh_walk_on_backbones(build, style):
    model, truth = build(style)
    tensors = list(dict.fromkeys(truth.values()))
    for pairs in ([(name, truth[name]) for name in list(truth)[-3:]],  # renamed to the module names
                  [(tensors[0], tensors[0]), ("twice", tensors[0])],  # kept name, then an Identity
                  [(tensors[1], tensors[-1])]):  # an internal name: that tensor moves aside
        from_index, fresh = _both_ways(model, pairs)
        assert from_index == fresh, pairs
        assert len(onnx.ModelProto.FromString(from_index).graph.node) < len(model.graph.node)


def test_cleanup_from_the_index_follows_a_renamed_outer_reference():
    then = helper.make_graph([helper.make_node("Relu", ["a"], ["t"])], "then", [],
                             [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)])
    other = helper.make_graph([helper.make_node("Neg", ["a"], ["e"])], "else", [],
                              [helper.make_tensor_value_info("e", TensorProto.FLOAT, None)])
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="first"),
        helper.make_node("ReduceSum", ["a"], ["s"], name="sum", keepdims=0),
        helper.make_node("Greater", ["s", "zero"], ["cond"], name="cmp"),
        helper.make_node("If", ["cond"], ["y"], name="branch", then_branch=then, else_branch=other),
        helper.make_node("Sigmoid", ["y"], ["head"], name="head"),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("head", TensorProto.FLOAT, None)],
                              [helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for pairs in ([("feat", "a"), ("out", "y")], [("feat", "a")], [("out", "y")]):
        from_index, fresh = _both_ways(model, pairs)
        assert from_index == fresh, pairs


def test_needed_tensors_from_the_index_sees_the_renames():
    model, truth = resnet_like("mindspore")
    index = GraphIndex(model)
    renamed = set_outputs(model, index, [("layer2", truth["layer2"])])
    assert renamed == {truth["layer2"]: "layer2"}
    needed, live = needed_tensors(model.graph, index, renamed)
    assert (needed, live) == needed_tensors(model.graph)
    assert "layer2" in needed and truth["layer2"] not in needed
