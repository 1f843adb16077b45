"""Files from real converters (tf2onnx, paddle2onnx, torch's two exporters, Ultralytics, MindSpore's own export),
cut and compared by value with the levels the framework itself computed.

The fixtures are committed in ``tests/data/converters/`` (``scripts/make_converter_fixtures.py`` makes them in
each framework's own venv); each ``.json`` says what the right level is at each stride and by which names a
user of that framework asks for it. Every level here is either right or refused: a wrong level fails.
"""
from __future__ import annotations

import json

import onnx
import pytest

import graphfeat
from converter_fixtures import DATA, FIXTURES, assert_level, by_stride, check_strides, nchw, run_all, values_of
from graphfeat.errors import GraphfeatError
from onnx_fixtures import anonymize

#: fixtures whose names define other levels than the anonymous rule: MindCV's EfficientNet names its stage
#: outputs, and the rule on an inverted-residual net takes the next block's expansion activation
NAMED_CONVENTION = {"mindspore_mindcv_efficientnet_b0"}


def test_fixtures_are_small_and_complete():
    assert len(FIXTURES) >= 14
    total = sum(p.stat().st_size for p in DATA.iterdir())
    assert total < 24 * 2**20
    for fid, fx in FIXTURES.items():
        assert (DATA / f"{fid}.onnx").stat().st_size < 8 * 2**20
        assert by_stride(fid), fid
        assert fx["logits_max_rel"] < 1e-4, f"{fid}: the converter's file does not compute the framework's output"


@pytest.mark.parametrize("fid", sorted(FIXTURES))
def test_strides_give_the_frameworks_levels(fid):
    check_strides(fid, str(DATA / f"{fid}.onnx"))


@pytest.mark.parametrize("fid", sorted(set(FIXTURES) - NAMED_CONVENTION))
def test_strides_on_the_same_file_with_every_name_stripped(fid):
    anon, _ = anonymize(onnx.load(DATA / f"{fid}.onnx"))
    check_strides(fid, anon)


@pytest.mark.parametrize("fid", sorted(f for f, fx in FIXTURES.items() if fx["neck"]))
def test_neck_gives_what_the_heads_read(fid):
    check_strides(fid, str(DATA / f"{fid}.onnx"), neck=True)


@pytest.mark.parametrize("fid", sorted(f for f, fx in FIXTURES.items() if not fx["neck"]))
def test_neck_refused_without_one(fid):
    with pytest.raises(GraphfeatError, match="has no neck"):
        graphfeat.cut(str(DATA / f"{fid}.onnx"), strides=[8], neck=True)


NAMED = [(fid, lv["name"], name) for fid, fx in sorted(FIXTURES.items())
         for lv in fx["levels"] + fx["neck"] for name in lv["layer_names"]]


@pytest.mark.parametrize("fid,level,name", NAMED, ids=[f"{f}-{n}" for f, _, n in NAMED])
def test_layers_by_the_frameworks_names(fid, level, name):
    fx, values = FIXTURES[fid], values_of(fid)
    lv = next(lv for lv in fx["levels"] + fx["neck"] if lv["name"] == level)
    key = f"{'neck' if lv in fx['neck'] else 'level'}.{level}"
    out = next(iter(run_all(graphfeat.cut(str(DATA / f"{fid}.onnx"), layers=[name]), values["input"]).values()))
    expected = values[key]
    if out.shape != expected.shape and lv["layout"] == "nhwc":
        expected = nchw(expected, "nhwc")  # the converter computes it channels-first
    assert_level(out, expected, fx, f"{fid} --layers {name}")


KERAS_FORMS = ["resnet_1/conv3_block2_out_1", "conv3_block2_out_1", "resnet/conv3_block2_out", "conv3_block2_out"]


@pytest.mark.parametrize("name", KERAS_FORMS)
def test_keras_names_with_or_without_call_suffixes_and_model_scope(name):
    """Keras 3 adds ``_1`` to a layer's scope and tf2onnx keeps the model's scope: every form a user may copy
    from Keras or from the graph resolves to the same tensor."""
    fid = "tf2onnx_keras_resnet"
    cut = graphfeat.cut(str(DATA / f"{fid}.onnx"), layers=[name])
    assert [o.name for o in cut.graph.output] == [name]
    values = values_of(fid)
    out = next(iter(run_all(cut, values["input"]).values()))
    assert_level(out, nchw(values["level.conv3_block2_out"], "nhwc"), FIXTURES[fid], name)


def test_tf2onnx_layers_are_listed():
    rows = graphfeat.feature_levels(str(DATA / "tf2onnx_keras_resnet.onnx"))
    names = [r.name for r in rows]
    assert {"conv1_relu", "conv2_block2_out", "conv5_block2_out"} <= set(names)
    assert {r.resolved_by for r in rows} == {"tf-scope"}


@pytest.mark.parametrize("fid", sorted(f for f in FIXTURES if f.startswith("paddle2onnx")))
def test_layers_on_a_file_without_layer_names_point_to_strides(fid):
    with pytest.raises(GraphfeatError) as err:
        graphfeat.cut(str(DATA / f"{fid}.onnx"), layers=["layer1"])
    message = str(err.value)
    assert "--strides" in message and "no layer names" in message


def test_a_named_level_is_carried_through_its_activation_and_says_so():
    """MindSpore's export names bn1 by its parameters, not the ReLU after it (MindCV's level ``relu``)."""
    cut = graphfeat.cut(str(DATA / "mindspore_mindcv_resnet18.onnx"), strides=[2, 4])
    levels = {lv["name"]: lv for lv in json.loads(
        {p.key: p.value for p in cut.metadata_props}[graphfeat.METADATA_KEY])["levels"]}
    assert levels["stride2"]["after_layer"] == "bn1" and "layer" not in levels["stride2"]
    assert levels["stride4"]["layer"] == "layer1" and "after_layer" not in levels["stride4"]
