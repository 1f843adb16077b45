"""GraphIndex.bottlenecks (the trunk, networkx's dominators of the sink) against the trunk's definition.

Every graph is built with onnx.helper: random DAGs (with constants, dead branches, several inputs and
outputs, multi-output nodes) and the shapes the stride rule meets (a chain, residual blocks, parallel
branches). The reference is the definition, by brute force: a node is on the trunk iff removing it
from the networkx view leaves no path from ``SOURCE`` to ``SINK``.
"""
from __future__ import annotations

import networkx as nx
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from graphfeat.graph import SINK, SOURCE, GraphIndex


def _dominator_chain(index: GraphIndex) -> set[int]:
    """The reference: the data nodes whose removal cuts every SOURCE -> SINK path of the networkx view."""
    g = index.nx_graph
    if not nx.has_path(g, SOURCE, SINK):
        return set()
    return {v for v in g if v not in (SOURCE, SINK) and not nx.has_path(nx.restricted_view(g, [v], []), SOURCE, SINK)}


def _model(nodes, inputs, outputs, inits=()) -> onnx.ModelProto:
    vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1]) for n in inputs]
    out = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs]
    init = [helper.make_tensor(n, TensorProto.FLOAT, [1], [1.0]) for n in inits]
    graph = helper.make_graph(nodes, "g", vi, out, init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _random_dag(seed: int) -> onnx.ModelProto:
    """Nodes reading 1-3 earlier tensors (graph inputs, a constant, earlier outputs), often the previous one
    (long chains with skips), some with two outputs; 1-3 graph outputs, sometimes a constant or an input."""
    rng = np.random.default_rng(seed)
    inputs = [f"in{k}" for k in range(rng.integers(1, 3))]
    tensors = list(inputs)
    nodes = [helper.make_node("Identity", ["c0"], ["k0"], name="const")]  # constant-only node
    consts = ["c0", "k0"]
    for i in range(int(rng.integers(3, 40))):
        reads = {tensors[-1]} if rng.random() < 0.7 else set()
        reads |= {tensors[int(rng.integers(0, len(tensors)))] for _ in range(int(rng.integers(0, 3)))}
        if rng.random() < 0.3:
            reads.add(consts[int(rng.integers(0, 2))])
        reads = sorted(reads) or [tensors[-1]]
        outs = [f"t{i}"] if rng.random() < 0.85 else [f"t{i}", f"t{i}b"]
        op = "Sum" if len(outs) == 1 else "Split"
        if op == "Split":
            reads = reads[:1]
        nodes.append(helper.make_node(op, reads, outs, name=f"n{i}"))
        tensors.extend(outs)
    outputs = {tensors[-1]}
    outputs |= {tensors[int(rng.integers(len(inputs), len(tensors)))] for _ in range(int(rng.integers(0, 3)))}
    if rng.random() < 0.1:
        outputs.add("k0")
    if rng.random() < 0.05:
        outputs.add(inputs[0])
    return _model(nodes, inputs, sorted(outputs), inits=["c0"])


@pytest.mark.parametrize("seed", range(300))
def test_trunk_is_the_definition_on_random_dags(seed):
    index = GraphIndex(_random_dag(seed))
    assert index.bottlenecks == _dominator_chain(index)


def _chain_with_branches() -> onnx.ModelProto:
    """stem -> residual block -> two parallel branches that merge -> head, with a dead branch."""
    n = [
        helper.make_node("Relu", ["x"], ["stem"], name="stem"),
        helper.make_node("Relu", ["stem"], ["a"], name="a"),
        helper.make_node("Add", ["a", "stem"], ["res"], name="res"),  # the shortcut jumps over 'a'
        helper.make_node("Relu", ["res"], ["b1"], name="b1"),
        helper.make_node("Relu", ["res"], ["b2"], name="b2"),
        helper.make_node("Relu", ["b2"], ["b2b"], name="b2b"),
        helper.make_node("Add", ["b1", "b2b"], ["merge"], name="merge"),
        helper.make_node("Relu", ["b1"], ["dead"], name="dead"),  # reaches no output
        helper.make_node("Relu", ["merge"], ["y"], name="head"),
    ]
    return _model(n, ["x"], ["y"])


def test_trunk_on_residual_and_parallel_branches():
    index = GraphIndex(_chain_with_branches())
    names = {index.nodes[i].name for i in index.bottlenecks}
    assert names == {"stem", "res", "merge", "head"}
    assert index.bottlenecks == _dominator_chain(index)


def test_trunk_with_an_input_as_output_or_only_constant_outputs():
    n = [helper.make_node("Relu", ["x"], ["y"], name="r"), helper.make_node("Identity", ["c"], ["k"], name="k")]
    for outputs in (["x", "y"], ["k"], ["y", "k"]):
        index = GraphIndex(_model(n, ["x"], outputs, inits=["c"]))
        assert index.bottlenecks == _dominator_chain(index), outputs
