"""Name resolution: each strategy, each model scenario, refusals instead of guesses."""
from __future__ import annotations

import onnx_fixtures  # noqa: F401  (first: puts the repository root on sys.path)
import pytest
from onnx_fixtures import add_metadata, features_like, hrnet_like, resnet_like

from graphfeat import GraphfeatError
from graphfeat.graph import GraphIndex
from graphfeat.metadata import strip_metadata
from graphfeat.modules import full_paths
from graphfeat.params import op_types_for
from graphfeat.resolve import Resolver
from graphfeat.scope import node_scopes

SCOPED = ("torchscript", "dynamo", "namespace")
BY_STYLE = {"torchscript": "scope", "dynamo": "scope", "namespace": "scope", "mindspore": "parameters"}


def resolver(model):
    return Resolver(GraphIndex(model))


@pytest.mark.parametrize("style", [*SCOPED, "mindspore"])
def test_resnet_stages_and_stem(style):
    model, truth = resnet_like(style)
    r = resolver(model)
    names = ["conv1", "bn1", "relu", "layer1", "layer2", "layer3", "layer4", "layer1.0", "layer2.1", "layer4.0"]
    names.append("max_pool" if style == "mindspore" else "maxpool")
    for name in names:
        res = r.resolve(name)
        assert res.tensor == truth[name], name
        assert res.resolved_by == BY_STYLE[style]


@pytest.mark.parametrize("style", [*SCOPED, "mindspore"])
def test_flattened_sequential_dotted_names(style):
    model, truth = features_like(style)
    r = resolver(model)
    for name, tensor in truth.items():
        assert r.resolve(name).tensor == tensor, name


@pytest.mark.parametrize("style", [*SCOPED, "mindspore"])
def test_multi_branch_resolves_branches_and_refuses_the_stage(style):
    model, truth = hrnet_like(style)
    r = resolver(model)
    for name in ("stage1.branches.0", "stage1.branches.1", "stage1.fuse_layers.1.0"):
        assert r.resolve(name).tensor == truth[name]
    with pytest.raises(GraphfeatError, match="ambiguous") as err:
        r.resolve("stage1")
    assert "Candidates" in str(err.value)


def test_multi_branch_upsample_only_scopes_can_attribute():
    scoped, truth = hrnet_like("dynamo")
    assert resolver(scoped).resolve("stage1.fuse_layers.0.1").tensor == truth["stage1.fuse_layers.0.1"]
    bare, truth = hrnet_like("mindspore")
    with pytest.raises(GraphfeatError, match="Resize") as err:
        resolver(bare).resolve("stage1.fuse_layers.0.1")
    assert truth["stage1.fuse_layers.0.1"] in str(err.value)  # listed among the candidates


def test_metadata_wins_and_reports_itself():
    model, truth = resnet_like("plain")  # no scopes, anonymous initializers
    add_metadata(model, [("layer2", truth["layer2"], 16, 8), ("layer3", truth["layer3"], 24, 16)])
    r = resolver(model)
    res = r.resolve("layer3")
    assert (res.tensor, res.resolved_by) == (truth["layer3"], "metadata")
    assert [lv.name for lv in r.levels()] == ["layer2", "layer3"]


def test_plain_file_without_metadata_knows_nothing():
    model, _ = resnet_like("plain")
    with pytest.raises(GraphfeatError, match="unknown layer 'layer1'"):
        resolver(model).resolve("layer1")


def test_stale_metadata_is_an_error():
    model, _ = resnet_like("plain")
    add_metadata(model, [("layer1", "no_such_tensor", 8, 4)])
    with pytest.raises(GraphfeatError, match="stale"):
        resolver(model).resolve("layer1")


def test_unknown_name_lists_layers_and_suggests():
    model, _ = resnet_like("mindspore")
    with pytest.raises(GraphfeatError) as err:
        resolver(model).resolve("layr2")
    msg = str(err.value)
    assert "Available layers: conv1, bn1, layer1, layer2, layer3, layer4" in msg
    assert "Did you mean 'layer2'" in msg


def test_parameter_free_module_called_twice_is_refused():
    model, _ = resnet_like("mindspore")
    with pytest.raises(GraphfeatError, match="ambiguous") as err:
        resolver(model).resolve("layer1.0.relu")  # the block applies its relu twice
    assert str(err.value).count("Relu") >= 2


def test_structural_listing_matches_feature_order():
    model, _ = resnet_like("mindspore")
    assert [r.name for r in resolver(model).levels()] == ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4"]
    model, _ = resnet_like("torchscript")
    assert [r.name for r in resolver(model).levels()] == [
        "conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4",
    ]  # fmt: skip
    model, _ = features_like("mindspore")
    names = [r.name for r in resolver(model).levels()]
    assert names[:2] == ["features.0", "features.1"] and names[-1] == "features.9"


def test_copy_ops_prefer_the_earliest_tensor():
    from onnx import helper

    model, truth = resnet_like("mindspore")
    # layer4's value passes through an Identity and a Dropout before the head
    head = next(n for n in model.graph.node if truth["layer4"] in n.input and n.op_type == "ReduceMean")
    model.graph.node.extend(
        [
            helper.make_node("Identity", [truth["layer4"]], ["l4_copy"], name="copy"),
            helper.make_node("Dropout", ["l4_copy"], ["l4_drop"], name="drop"),
        ]
    )
    head.input[0] = "l4_drop"
    nodes = list(model.graph.node)
    nodes.insert(nodes.index(head), nodes.pop())
    nodes.insert(nodes.index(head), nodes.pop())
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    assert resolver(model).resolve("layer4").tensor == truth["layer4"]


def test_scope_parsing_forms():
    from onnx import helper

    node = helper.make_node("Conv", ["x", "w"], ["y"], name="/layer1/layer1.0/conv1/Conv")
    assert node_scopes(node) == ["layer1", "layer1.0", "layer1.0.conv1"]
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="node_conv2d_3")
    node.metadata_props.add(key="pkg.torch.onnx.name_scopes", value="['', 'features', 'features.3', 'conv2d_3']")
    assert node_scopes(node) == ["features", "features.3"]
    assert full_paths(["layer1", "0", "conv1"]) == ["layer1", "layer1.0", "layer1.0.conv1"]
    assert node_scopes(helper.make_node("Relu", ["x"], ["y"], name="2Relu")) == []


def test_op_aliases():
    assert "maxpool" in op_types_for("max_pool")
    assert "relu" in op_types_for("act1")
    assert "globalaveragepool" in op_types_for("pool")
    assert op_types_for("relu") == {"relu"}


def test_strip_metadata_falls_back_to_structure():
    model, truth = resnet_like("mindspore")
    add_metadata(model, [("layer1", truth["layer1"], 8, 4)])
    strip_metadata(model)
    assert resolver(model).resolve("layer1").resolved_by == "parameters"
