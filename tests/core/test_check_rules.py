"""The cut's check rules (graphfeat.graph.check_model): what the input already guaranteed is not re-run.

Rule 1, the input's strict inference stands for the result's: when the stride analysis (or ``levels()``)
already ran a strict inference of the input and it passed, the cut adds no inference of its own. Each
case proves the result passes ``onnx.checker.check_model(full_check=True)``, and that a broken input is
still caught (it fails the strict inference, so the rule does not apply and the result is checked).
"""
from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper
from test_strides import small_cnn, swin_like

import graphfeat
from graphfeat.errors import GraphfeatError
from graphfeat.graph import check as check_module


@pytest.fixture
def inferences():
    """The ``strict`` flag of every onnx shape inference graphfeat ran since the test began, in order (read
    from graphfeat's own log of them)."""
    start = check_module.INFERENCES.total
    return lambda: check_module.INFERENCES.since(start)


def _saved(model: onnx.ModelProto, tmp_path) -> str:
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    return str(path)


def _declare(model: onnx.ModelProto, tensor: str, elem_type: int) -> onnx.ModelProto:
    """``model`` with a value_info entry giving ``tensor`` the element type ``elem_type``."""
    model.graph.value_info.append(helper.make_tensor_value_info(tensor, elem_type, None))
    return model


def test_strides_cut_reuses_the_inputs_strict_inference(tmp_path, inferences):
    model, _, _ = small_cnn()
    cut = graphfeat.cut(_saved(model, tmp_path), strides=[4, 8, 16, 32])
    assert inferences() == [True]  # the analysis' strict inference of the input, and no other
    onnx.checker.check_model(cut, full_check=True)
    assert [o.type.tensor_type.elem_type for o in cut.graph.output] == [TensorProto.FLOAT] * 4


def test_a_layers_cut_still_infers_the_result(tmp_path, inferences):
    model, stages, _ = small_cnn()
    cut = graphfeat.cut(_saved(model, tmp_path), tensors=[stages[8]])
    assert inferences() == [True]  # no analysis ran: the result is inferred strictly, as before the rule
    onnx.checker.check_model(cut, full_check=True)


def test_a_broken_kept_tensor_is_still_caught(tmp_path, inferences):
    """A value_info that contradicts inference on a tensor the cut keeps: the input fails the strict
    inference, so the rule does not apply, and the result's own check refuses it."""
    model, stages, _ = small_cnn()
    _declare(model, stages[4], TensorProto.INT64)
    with pytest.raises(GraphfeatError, match="shape inference"):
        graphfeat.cut(_saved(model, tmp_path), strides=[8, 16, 32])
    assert inferences()[:2] == [True, False]  # strict failed, best effort for the analysis
    assert True in inferences()[2:]  # then the result was inferred strictly


def test_a_broken_head_does_not_block_the_cut(tmp_path, inferences):
    """The same contradiction in the head the cut removes: the input fails, the result passes (as before)."""
    model, _, head = small_cnn()
    _declare(model, head[0], TensorProto.INT64)  # the pooled tensor
    cut = graphfeat.cut(_saved(model, tmp_path), strides=[4, 8, 16, 32])
    assert inferences()[:2] == [True, False] and inferences()[2:] == [True]
    onnx.checker.check_model(cut, full_check=True)


def test_conversion_nodes_are_inferred_on_the_result(tmp_path, inferences):
    """--layout nchw adds Transposes the input's inference never saw: the result is inferred strictly."""
    model, _, _ = swin_like()
    cut = graphfeat.cut(_saved(model, tmp_path), strides=[4, 8], layout="nchw")
    assert inferences() == [True, True]
    onnx.checker.check_model(cut, full_check=True)
    native = graphfeat.cut(_saved(model, tmp_path), strides=[4, 8], layout="native")
    assert inferences() == [True, True, True]  # native adds nothing: the rule applies again
    onnx.checker.check_model(native, full_check=True)


def test_a_layers_cut_of_a_file_with_metadata_reuses_the_inference(tmp_path, inferences):
    """Resolving recorded levels reads their shapes (the input's inference): the check reuses it."""
    from onnx_fixtures import add_metadata, resnet_like

    model, truth = resnet_like("plain")
    add_metadata(model, [(f"layer{i}", truth[f"layer{i}"], c, 2 ** (i + 1)) for i, c in zip(range(1, 5), (8, 16, 24, 32))])
    cut = graphfeat.cut(_saved(model, tmp_path), layers=["layer2", "layer4"])
    assert inferences() == [True]
    onnx.checker.check_model(cut, full_check=True)
    broken = _declare(model, truth["layer1"], TensorProto.INT64)  # kept by the cut: still refused
    with pytest.raises(GraphfeatError, match="shape inference"):
        graphfeat.cut(_saved(broken, tmp_path), layers=["layer2", "layer4"])
