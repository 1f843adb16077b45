"""The real-converter fixtures of ``tests/data/converters/`` and how a test checks a cut of one against the
framework's own values (used by the core suite and by the toolchain suite, which runs the tools on them)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

import graphfeat

DATA = Path(__file__).resolve().parent / "data" / "converters"
#: fixture id -> its record (what the file is, the right level at each stride, the names a user types)
FIXTURES = {p.stem: json.loads(p.read_text()) for p in sorted(DATA.glob("*.json"))}


def values_of(fid: str) -> dict[str, np.ndarray]:
    fx = FIXTURES[fid]
    with np.load(DATA / f"{fx.get('values', fid)}.npz") as z:
        return dict(z)


def nchw(value: np.ndarray, layout: str) -> np.ndarray:
    return value.transpose(0, 3, 1, 2) if layout == "nhwc" else value


def run_all(model: onnx.ModelProto, x: np.ndarray) -> dict[str, np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {sess.get_inputs()[0].name: x})))


def assert_level(actual: np.ndarray, expected: np.ndarray, fx: dict, what: str) -> None:
    assert float(expected.std()) > 1e-3, f"{what}: the reference carries no signal"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, the framework's {expected.shape}"
    tol = fx["tolerance"]
    np.testing.assert_allclose(actual, expected, rtol=tol["rtol"], atol=tol["atol"], err_msg=what)


def by_stride(fid: str, group: str = "levels") -> list[dict]:
    return [lv for lv in FIXTURES[fid][group] if lv["strides"]]


def check_strides(fid: str, model, *, neck: bool = False) -> None:
    """Cut ``model`` (a path or a proto of fixture ``fid``) at the fixture's strides (the neck's with ``neck``)
    and compare every output with the framework's own value."""
    fx, values = FIXTURES[fid], values_of(fid)
    group = "neck" if neck else "levels"
    levels = by_stride(fid, group)
    cut = graphfeat.cut(model, strides=[lv["stride"] for lv in levels], neck=neck)
    record = json.loads({p.key: p.value for p in cut.metadata_props}[graphfeat.METADATA_KEY])
    assert {lv["source"] for lv in record["levels"]} == {"neck" if neck else "backbone"}
    outs = run_all(cut, values["input"])
    for lv in levels:
        expected = nchw(values[f"{'neck' if neck else 'level'}.{lv['name']}"], lv["layout"])
        assert_level(outs[f"stride{lv['stride']}"], expected, fx, f"{fid} stride {lv['stride']} ({lv['name']})")
