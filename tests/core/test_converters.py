"""Files from real converters (tf2onnx, paddle2onnx, torch's two exporters, Ultralytics, MindSpore's own export),
cut and compared by value with the levels the framework itself computed.

The fixtures are committed in ``tests/data/converters/`` (``scripts/make_converter_fixtures.py`` makes them in
each framework's own venv); each ``.json`` says what the right level is at each stride and by which names a
user of that framework asks for it. Every level here is either right or refused: a wrong level fails.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import graphfeat
from graphfeat.errors import GraphfeatError
from onnx_fixtures import anonymize

DATA = Path(__file__).resolve().parents[1] / "data" / "converters"
FIXTURES = {p.stem: json.loads(p.read_text()) for p in sorted(DATA.glob("*.json"))}
#: fixtures whose names define other levels than the anonymous rule: MindCV's EfficientNet names its stage
#: outputs, and the rule on an inverted-residual net takes the next block's expansion activation
NAMED_CONVENTION = {"mindspore_mindcv_efficientnet_b0"}


def _values(fid: str) -> dict[str, np.ndarray]:
    fx = FIXTURES[fid]
    with np.load(DATA / f"{fx.get('values', fid)}.npz") as z:
        return dict(z)


def _nchw(value: np.ndarray, layout: str) -> np.ndarray:
    return value.transpose(0, 3, 1, 2) if layout == "nhwc" else value


def _run(model: onnx.ModelProto, x: np.ndarray) -> dict[str, np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {sess.get_inputs()[0].name: x})))


def _assert_level(actual: np.ndarray, expected: np.ndarray, fx: dict, what: str) -> None:
    assert float(expected.std()) > 1e-3, f"{what}: the reference carries no signal"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, the framework's {expected.shape}"
    tol = fx["tolerance"]
    np.testing.assert_allclose(actual, expected, rtol=tol["rtol"], atol=tol["atol"], err_msg=what)


def _by_stride(fid: str, group: str = "levels") -> list[dict]:
    return [lv for lv in FIXTURES[fid][group] if lv["strides"]]


def _check_strides(fid: str, model, *, neck: bool = False) -> None:
    fx, values = FIXTURES[fid], _values(fid)
    group = "neck" if neck else "levels"
    levels = _by_stride(fid, group)
    cut = graphfeat.cut(model, strides=[lv["stride"] for lv in levels], neck=neck)
    record = json.loads({p.key: p.value for p in cut.metadata_props}[graphfeat.METADATA_KEY])
    assert {lv["source"] for lv in record["levels"]} == {"neck" if neck else "backbone"}
    outs = _run(cut, values["input"])
    for lv in levels:
        expected = _nchw(values[f"{'neck' if neck else 'level'}.{lv['name']}"], lv["layout"])
        _assert_level(outs[f"stride{lv['stride']}"], expected, fx, f"{fid} stride {lv['stride']} ({lv['name']})")


def test_fixtures_are_small_and_complete():
    assert len(FIXTURES) >= 14
    total = sum(p.stat().st_size for p in DATA.iterdir())
    assert total < 24 * 2**20
    for fid, fx in FIXTURES.items():
        assert (DATA / f"{fid}.onnx").stat().st_size < 8 * 2**20
        assert _by_stride(fid), fid
        assert fx["logits_max_rel"] < 1e-4, f"{fid}: the converter's file does not compute the framework's output"


@pytest.mark.parametrize("fid", sorted(FIXTURES))
def test_strides_give_the_frameworks_levels(fid):
    _check_strides(fid, str(DATA / f"{fid}.onnx"))


@pytest.mark.parametrize("fid", sorted(set(FIXTURES) - NAMED_CONVENTION))
def test_strides_on_the_same_file_with_every_name_stripped(fid):
    anon, _ = anonymize(onnx.load(DATA / f"{fid}.onnx"))
    _check_strides(fid, anon)


@pytest.mark.parametrize("fid", sorted(f for f, fx in FIXTURES.items() if fx["neck"]))
def test_neck_gives_what_the_heads_read(fid):
    _check_strides(fid, str(DATA / f"{fid}.onnx"), neck=True)


@pytest.mark.parametrize("fid", sorted(f for f, fx in FIXTURES.items() if not fx["neck"]))
def test_neck_refused_without_one(fid):
    with pytest.raises(GraphfeatError, match="has no neck"):
        graphfeat.cut(str(DATA / f"{fid}.onnx"), strides=[8], neck=True)


NAMED = [(fid, lv["name"], name) for fid, fx in sorted(FIXTURES.items())
         for lv in fx["levels"] + fx["neck"] for name in lv["layer_names"]]


@pytest.mark.parametrize("fid,level,name", NAMED, ids=[f"{f}-{n}" for f, _, n in NAMED])
def test_layers_by_the_frameworks_names(fid, level, name):
    fx, values = FIXTURES[fid], _values(fid)
    lv = next(lv for lv in fx["levels"] + fx["neck"] if lv["name"] == level)
    key = f"{'neck' if lv in fx['neck'] else 'level'}.{level}"
    out = next(iter(_run(graphfeat.cut(str(DATA / f"{fid}.onnx"), layers=[name]), values["input"]).values()))
    expected = values[key]
    if out.shape != expected.shape and lv["layout"] == "nhwc":
        expected = _nchw(expected, "nhwc")  # the converter computes it channels-first
    _assert_level(out, expected, fx, f"{fid} --layers {name}")


@pytest.mark.parametrize("fid", sorted(f for f in FIXTURES if f.startswith("paddle2onnx")))
def test_layers_on_a_file_without_layer_names_point_to_strides(fid):
    with pytest.raises(GraphfeatError) as err:
        graphfeat.cut(str(DATA / f"{fid}.onnx"), layers=["layer1"])
    message = str(err.value)
    assert "--strides" in message and "no layer names" in message
