"""Name resolution: each strategy, each model scenario, refusals instead of guesses."""
from __future__ import annotations

import onnx_fixtures  # noqa: F401  (first: puts the repository root on sys.path)
import pytest
from onnx_fixtures import add_metadata, features_like, hrnet_like, resnet_like

from graphfeat import GraphfeatError
from graphfeat.graph import GraphIndex
from graphfeat.levels import strip_metadata
from graphfeat.resolve.modules import full_paths
from graphfeat.resolve.params import op_types_for
from graphfeat.resolve import Resolver
from graphfeat.resolve.scope import node_scopes

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


@pytest.mark.parametrize("style", ["torchscript", "mindspore"])
def test_a_strategy_is_built_only_when_the_ones_before_it_do_not_know_the_name(style, monkeypatch):
    """The parameter strategy (an owner map of every initializer) is built only for a name the scopes
    do not resolve: resolving a scoped export's stages never builds it, a MindSpore-style export's does."""
    import graphfeat.resolve.resolver as resolver_module

    built = []
    real = resolver_module.ParameterStrategy
    monkeypatch.setattr(resolver_module, "ParameterStrategy", lambda index: built.append(1) or real(index))
    model, truth = resnet_like(style)
    r = resolver(model)
    assert [r.resolve(n).tensor for n in ("layer1", "layer4")] == [truth["layer1"], truth["layer4"]]
    assert len(built) == (0 if style == "torchscript" else 1)
    list(r.structural())
    list(r.structural())
    assert len(built) == 1  # listing them all builds each once


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


# -- parameter ownership on MindSpore-style exports: what a module returns -------------------------
def _scale(b, x: str, c: int, module: str) -> str:
    """A layer-scale ``gamma_ * x`` owned by ``module`` (ConvNeXt)."""
    import numpy as np

    g = b.param(module, "gamma_", np.full((1, 1, 1, c), 0.3))
    return b.op("Mul", [g, x], module)


def _hswish(b, x: str, scope: str) -> str:
    """HSwish as MindSpore exports it: ``x * clip(x + 3, 0, 6) / 6``."""
    import numpy as np
    from onnx import numpy_helper

    for name, value in (("c3", 3.0), ("c0", 0.0), ("c6", 6.0)):
        if name not in {t.name for t in b.inits}:
            b.inits.append(numpy_helper.from_array(np.array(value, np.float32), name))
    clip = b.op("Clip", [b.op("Add", [x, "c3"], scope), "c0", "c6"], scope)
    return b.op("Div", [b.op("Mul", [x, clip], scope), "c6"], scope)


def flat_activations_like():
    """``features``: conv, bn, HSwish, conv, bn, HSwish, ReLU, MaxPool; then a parameter-free
    adaptive pool and a classifier (the last three children own no parameters)."""
    from onnx_fixtures import Builder

    b = Builder("mindspore", seed=3)
    truth = {}
    x = b.bn(b.conv("images", 3, 8, "features.0", s=2), 8, "features.1")
    truth["features.2"] = x = _hswish(b, x, "features.2")
    x = b.bn(b.conv(x, 8, 8, "features.3"), 8, "features.4")
    truth["features.5"] = x = _hswish(b, x, "features.5")
    truth["features.6"] = x = b.relu(x, "features.6")
    truth["features.7"] = x = b.op("MaxPool", [x], "features.7", kernel_shape=[2, 2], strides=[2, 2])
    logits = b.head(x, 8, 10, "classifier")
    return b.model([logits], "flat_activations_like"), truth


def test_parameter_free_children_are_whole_activations_and_a_trailing_pool():
    model, truth = flat_activations_like()
    r = resolver(model)
    for name in ("features.2", "features.5", "features.6", "features.7"):
        res = r.resolve(name)
        assert (res.tensor, res.resolved_by) == (truth[name], "parameters"), name
    with pytest.raises(GraphfeatError, match="MaxPool"):
        r.resolve("features")  # the pool may be the container's last child or its parent's op
    with pytest.raises(GraphfeatError, match="only 3 parameter-free children"):
        r.resolve("features.8")  # the head's pooling is no lone local resampling op


def test_several_missing_children_must_match_one_to_one():
    from onnx_fixtures import Builder

    b = Builder("mindspore", seed=4)
    x = b.conv("images", 3, 8, "features.0", s=2)
    x = _hswish(b, x, "features.1")  # four ops, one activation: two children cannot be placed
    x = b.conv(x, 8, 8, "features.3")
    model = b.model([b.head(x, 8, 10, "classifier")])
    with pytest.raises(GraphfeatError, match="one-to-one") as err:
        resolver(model).resolve("features.2")
    assert "Candidates" in str(err.value)


def convnext_like():
    """A stage of two channels-last blocks: conv, transpose, dense, layer scale, transpose back, residual."""
    from onnx_fixtures import Builder

    b = Builder("mindspore", seed=5)
    truth = {}
    x = b.conv("images", 3, 8, "feature.0", k=3, s=4, bias=True)
    for j in range(2):
        name = f"feature.1.{j}"
        y = b.conv(x, 8, 8, f"{name}.dwconv", bias=True)
        y = b.op("Transpose", [y], name, perm=[0, 2, 3, 1])
        y = _scale(b, b.relu(y, f"{name}.act"), 8, name)
        y = b.op("Transpose", [y], name, perm=[0, 3, 1, 2])
        truth[name] = x = b.add(x, y, name)
    truth["feature.1"] = x
    logits = b.head(x, 8, 10, "classifier")
    return b.model([logits], "convnext_like"), truth


def test_block_ending_in_layer_scale_transpose_and_residual():
    model, truth = convnext_like()
    r = resolver(model)
    for name in ("feature.1", "feature.1.0", "feature.1.1"):
        assert r.resolve(name).tensor == truth[name], name


def repvgg_like():
    """Blocks summing three branches ``(dense + 1x1) + identity-BN``, then ReLU."""
    from onnx_fixtures import Builder

    b = Builder("mindspore", seed=6)
    truth = {}
    x = b.relu(b.bn(b.conv("images", 3, 8, "stage0.rbr_dense.0", s=2), 8, "stage0.rbr_dense.1"), "stage0")
    for j in range(2):
        name = f"stage1.{j}"
        dense = b.bn(b.conv(x, 8, 8, f"{name}.rbr_dense.0"), 8, f"{name}.rbr_dense.1")
        one = b.bn(b.conv(x, 8, 8, f"{name}.rbr_1x1.0", k=1), 8, f"{name}.rbr_1x1.1")
        ident = b.bn(x, 8, f"{name}.rbr_identity")
        truth[name] = x = b.relu(b.add(b.add(dense, one, name), ident, name), f"{name}.nonlinearity")
    truth["stage1"] = x
    logits = b.head(x, 8, 10, "classifier")
    return b.model([logits], "repvgg_like"), truth


def test_three_branch_sum_then_activation():
    model, truth = repvgg_like()
    r = resolver(model)
    for name in ("stage1", "stage1.0", "stage1.1"):
        assert r.resolve(name).tensor == truth[name], name
    assert [lv.name for lv in r.levels()][-1] == "stage1"


def test_an_exit_summed_into_two_places_is_not_a_closing_merge():
    from onnx_fixtures import Builder

    b = Builder("mindspore", seed=7)
    stem = b.conv("images", 3, 8, "stem", s=2)
    x = b.bn(b.conv(stem, 8, 8, "block.conv"), 8, "block.bn")
    left, right = b.add(x, stem, ""), b.add(x, b.relu(stem, ""), "")
    out = b.add(b.conv(left, 8, 8, "left"), b.conv(right, 8, 8, "right"), "")
    model = b.model([b.head(out, 8, 10, "classifier")])
    assert resolver(model).resolve("block").tensor == x


def test_partial_residual_slice_add_concat():
    """ReXNet: ``concat(y[:, :c] + x, y[:, c:])``; the block returns the concat, not ``y``."""
    import numpy as np
    from onnx import numpy_helper
    from onnx_fixtures import Builder

    b = Builder("mindspore", seed=8)
    for name, value in (("s0", [0]), ("s8", [8]), ("s12", [12]), ("ax", [1])):
        b.inits.append(numpy_helper.from_array(np.array(value, np.int64), name))
    x = b.relu(b.bn(b.conv("images", 3, 8, "stem", s=2), 8, "stem.bn"), "stem.act")
    y = b.bn(b.conv(b.relu(b.conv(x, 8, 16, "features.0.conv_exp", k=1), ""), 16, 12, "features.0.conv_pwl"),
             12, "features.0.bn")
    head = b.add(b.op("Slice", [y, "s0", "s8", "ax"], "features.0"), x, "features.0")
    out = b.op("Concat", [head, b.op("Slice", [y, "s8", "s12", "ax"], "features.0")], "features.0", axis=1)
    model = b.model([b.head(b.conv(out, 12, 8, "features.1"), 8, 10, "classifier")])
    assert resolver(model).resolve("features.0").tensor == out
