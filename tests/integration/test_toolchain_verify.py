"""The pyramid survives the deployment toolchain (#17, verify side): real exports, converted to fp16 and
quantised to QDQ int8 with the real tools, verify against their MindSpore reference with the new
defaults, and against their original file; a tampered copy fails."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest

import graphfeat
from graphfeat.runtime import verify

MODELS = ["resnet18", "mobilenet_v3_large_100"]


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "graphfeat", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def copies(exported, tmp_path_factory):
    pytest.importorskip("onnxconverter_common")
    from onnxconverter_common import float16
    from onnx_fixtures import quantize_qdq

    cache = {}

    def get(name):
        if name in cache:
            return cache[name]
        path, ref, _ = exported(name)
        d = tmp_path_factory.mktemp(name)
        cut = d / "cut.onnx"
        onnx.save(graphfeat.cut(path, strides=[4, 8, 16, 32]), cut)
        fp16 = d / "fp16.onnx"  # convert the whole export (fp16 inside, fp32 at its I/O), then cut
        onnx.save(float16.convert_float_to_float16(onnx.load(path), keep_io_types=True), d / "full16.onnx")
        onnx.save(graphfeat.cut(d / "full16.onnx", strides=[4, 8, 16, 32]), fp16)

        qdq = d / "qdq.onnx"
        quantize_qdq(cut, qdq, per_channel=True, seed=5)
        tampered = d / "tampered.onnx"
        bad = onnx.load(cut)
        conv = [n for n in bad.graph.node if n.op_type == "Conv"][len(bad.graph.node) // 6]
        w = next(t for t in bad.graph.initializer if t.name == conv.input[1])
        w.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(w) * 1.5, w.name))
        onnx.save(bad, tampered)
        cache[name] = dict(original=path, ref=ref, cut=cut, fp16=fp16, qdq=qdq, tampered=tampered)
        return cache[name]

    return get


@pytest.mark.parametrize("name", MODELS)
def test_fp16_and_qdq_copies_verify_against_the_reference(copies, name):
    f = copies(name)
    r16 = verify(f["fp16"], reference=f["ref"])
    assert r16.ok, [(m.name, m.max_rel, m.note) for m in r16.levels]
    assert all(m.criterion.endswith("(float16)") and m.max_rel > 1e-4 for m in r16.levels)
    rq = verify(f["qdq"], reference=f["ref"])
    assert rq.ok and rq.quantized, [(m.name, m.cosine, m.sqnr) for m in rq.levels]
    assert all("cosine" in m.criterion and m.cosine < 0.99999 for m in rq.levels)
    # the same fp16 file at the fp32 tolerance fails: the defaults, not luck, let it pass
    assert not verify(f["fp16"], reference=f["ref"], rtol=1e-4).ok


@pytest.mark.parametrize("name", MODELS)
def test_against_the_original(copies, name):
    f = copies(name)
    for key in ("fp16", "qdq"):
        proc = _cli("verify", f[key], "--against", f["original"], "--batch", "2", "--json")
        assert proc.returncode == 0, (key, proc.stdout[-2000:], proc.stderr)
        doc = json.loads(proc.stdout)
        assert doc["distinct_images"] == 2 and doc["providers"] == ["CPUExecutionProvider"]
    bad = _cli("verify", f["tampered"], "--against", f["original"])
    assert bad.returncode == 1 and "FAIL" in bad.stdout, bad.stdout
