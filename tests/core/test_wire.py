"""Embedded weights stay in the file: ``cut_file`` streams them into the result, byte-identical to
an in-memory cut, and anything the wire scan does not handle falls back to a plain parse."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import onnx
import onnx_fixtures  # noqa: F401  (first: puts the repository root on sys.path)
import pytest
from onnx import numpy_helper
from onnx_fixtures import cut_peak_growth_mb, expose, image, resnet_like, run, scale_and_head_model

import graphfeat
from graphfeat import GraphfeatError
from graphfeat import cut_model
from graphfeat.onnxfile import load_model, load_skeleton, materialize_deferred, save_model
from graphfeat.onnxfile.tensors import external_tensors
from graphfeat.onnxfile import DEFER_MIN_BYTES

LAYERS = ["layer2", "layer4"]


@pytest.fixture
def embedded(tmp_path):
    model, truth = resnet_like("mindspore")
    src = tmp_path / "resnet.onnx"
    onnx.save(model, src)
    return model, truth, src


def in_memory_cut(src: Path, layers: list[str]) -> bytes:
    model = load_model(src)
    cut_model(model, layers=layers)
    return model.SerializeToString()


def test_skeleton_defers_only_large_initializers(embedded):
    model, _, src = embedded
    skeleton, deferred = load_skeleton(src)
    large = {t.name for t in model.graph.initializer if len(t.raw_data) > DEFER_MIN_BYTES}
    assert large and deferred is not None and set(deferred.ranges) == large
    data = src.read_bytes()
    for tensor in skeleton.graph.initializer:
        original = next(t for t in model.graph.initializer if t.name == tensor.name)
        assert list(tensor.dims) == list(original.dims)
        if tensor.name in large:
            offset, length = deferred.ranges[tensor.name]
            assert not tensor.HasField("raw_data")
            assert data[offset:offset + length] == original.raw_data
        else:
            assert tensor.raw_data == original.raw_data


def test_streamed_cut_is_byte_identical_to_the_in_memory_cut(embedded, tmp_path):
    model, truth, src = embedded
    out = graphfeat.cut_file(src, tmp_path / "features.onnx", layers=LAYERS)
    assert out.read_bytes() == in_memory_cut(src, LAYERS)
    x = image()
    want = run(expose(model, [truth[n] for n in LAYERS]), x)
    got = run(str(out), x)
    for name in LAYERS:
        np.testing.assert_array_equal(got[name], want[truth[name]])


def test_overwriting_the_input_with_force_streams_from_the_original(embedded):
    _, _, src = embedded
    expected = in_memory_cut(src, LAYERS)
    graphfeat.cut_file(src, src, layers=LAYERS, force=True)
    assert src.read_bytes() == expected


def test_embedded_and_external_weights_in_one_model(embedded, tmp_path):
    model, truth, _ = embedded
    src = tmp_path / "mixed" / "resnet.onnx"
    src.parent.mkdir()
    copy = onnx.ModelProto.FromString(model.SerializeToString())  # onnx.save would externalize model itself
    onnx.save(copy, src, save_as_external_data=True, location="resnet.onnx.data", size_threshold=20000)
    skeleton, deferred = load_skeleton(src)
    assert deferred is not None and external_tensors(skeleton)  # both kinds present
    out = graphfeat.cut_file(src, tmp_path / "features.onnx", layers=LAYERS)  # another directory: data copied
    x = image()
    want = run(expose(model, [truth[n] for n in LAYERS]), x)
    got = run(str(out), x)
    for name in LAYERS:
        np.testing.assert_array_equal(got[name], want[truth[name]])


def test_a_source_changed_before_saving_is_refused_and_nothing_is_written(embedded, tmp_path):
    _, _, src = embedded
    model, deferred = load_skeleton(src)
    cut_model(model, layers=LAYERS)
    src.write_bytes(src.read_bytes() + b"\0")  # another file now: offsets can no longer be trusted
    dst = tmp_path / "out" / "features.onnx"
    dst.parent.mkdir()
    with pytest.raises(GraphfeatError, match="changed while it was being cut"):
        save_model(model, dst, src_dir=src.parent, src=src, deferred=deferred)
    assert list(dst.parent.iterdir()) == []


def _with_extra_raw_field(model: onnx.ModelProto) -> bytes:
    """The model with a second raw_data field in its largest initializer (a parser keeps the last)."""
    big = max(model.graph.initializer, key=lambda t: len(t.raw_data))
    tensor = big.SerializeToString() + _field(9, big.raw_data)
    graph = onnx.GraphProto()
    graph.CopyFrom(model.graph)
    graph.initializer.remove(next(t for t in graph.initializer if t.name == big.name))
    head = onnx.ModelProto()
    head.CopyFrom(model)
    head.ClearField("graph")
    return head.SerializeToString() + _field(7, graph.SerializeToString() + _field(5, tensor))


def _with_second_graph_field(model: onnx.ModelProto) -> bytes:
    """A second ``graph`` field, which a parser merges into the first."""
    return model.SerializeToString() + _field(7, onnx.GraphProto(doc_string="merged").SerializeToString())


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes(out + bytes([n]))


def _duplicate_initializer(model: onnx.ModelProto) -> bytes:
    big = max(model.graph.initializer, key=lambda t: len(t.raw_data))
    model.graph.initializer.append(big)
    return model.SerializeToString()


def _dims_disagree(model: onnx.ModelProto) -> bytes:
    big = max(model.graph.initializer, key=lambda t: len(t.raw_data))
    big.raw_data = big.raw_data + b"\0\0\0\0"
    return model.SerializeToString()


@pytest.mark.parametrize("mutate", [_with_extra_raw_field, _with_second_graph_field, _duplicate_initializer, _dims_disagree])
def test_unusual_files_are_parsed_normally(embedded, tmp_path, mutate):
    model, _, _ = embedded
    path = tmp_path / "odd.onnx"
    path.write_bytes(mutate(model))
    skeleton, deferred = load_skeleton(path)
    assert deferred is None
    assert skeleton.SerializeToString() == load_model(path).SerializeToString()


def test_a_truncated_file_gives_the_plain_parse_error(embedded, tmp_path):
    _, _, src = embedded
    path = tmp_path / "cut_short.onnx"
    path.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    with pytest.raises(GraphfeatError) as plain:
        load_model(path)
    with pytest.raises(GraphfeatError) as scanned:
        load_skeleton(path)
    assert str(scanned.value) == str(plain.value)


def _mutations(data: bytes, count: int, seed: int = 0):
    """Seeded byte-level damage: flipped bytes (in the framing too), truncation, spliced duplicates."""
    rng = random.Random(seed)
    for _ in range(count):
        buf = bytearray(data)
        kind = rng.choice(["flip", "flip", "truncate", "splice"])
        if kind == "flip":
            for _ in range(rng.randint(1, 4)):
                buf[rng.randrange(len(buf))] = rng.randrange(256)
        elif kind == "truncate":
            del buf[rng.randrange(len(buf)):]
        else:
            start = rng.randrange(len(buf))
            piece = buf[start:start + rng.randint(1, 4096)]
            at = rng.randrange(len(buf))
            buf[at:at] = piece
        yield kind, bytes(buf)


def _outcome(load, path: Path):
    try:
        model = load(path)
    except GraphfeatError as exc:
        return "error", str(exc)
    if isinstance(model, tuple):  # load_skeleton: read the deferred data back in
        model, deferred = model
        materialize_deferred(model, deferred)
    return "ok", model.SerializeToString()


def test_skeleton_load_agrees_with_a_plain_parse_on_damaged_files(embedded, tmp_path):
    """For any bytes: the same error, or the same model once the deferred data is read back."""
    _, _, src = embedded
    path = tmp_path / "damaged.onnx"
    deferred_cases = 0
    for kind, data in _mutations(src.read_bytes(), 300):
        path.write_bytes(data)
        plain = _outcome(load_model, path)
        assert _outcome(load_skeleton, path) == plain, kind
        if plain[0] == "ok":
            deferred_cases += load_skeleton(path)[1] is not None
    assert deferred_cases > 50  # the wire path itself was exercised, not only its fallback


# -- a model with 160 MB of embedded weights, cut without reading them --------------
KEPT_MB, HEAD_MB = 64, 96


def _big_embedded_model(path: Path) -> None:
    """A conv stage reading a 64 MB parameter (through ReduceSum, exactly 16 in float32) and a 96 MB head, all embedded."""
    kept_n, head_n = KEPT_MB << 18, HEAD_MB << 18  # float32 elements
    weights = [
        numpy_helper.from_array(np.full((4, 3, 3, 3), 0.1, np.float32), "layer1.conv.weight"),
        numpy_helper.from_array(np.full(kept_n, 2.0**-20, np.float32), "layer1.scale.weight"),
        numpy_helper.from_array(np.zeros((head_n // 10, 10), np.float32), "fc.weight"),
    ]
    onnx.save(scale_and_head_model(weights, head_n // 10), path)


def test_large_embedded_model_is_cut_without_reading_weights(tmp_path):
    src, dst = tmp_path / "big.onnx", tmp_path / "features.onnx"
    _big_embedded_model(src)
    growth_mb = cut_peak_growth_mb(src, dst, ["layer1"])
    assert growth_mb < 32, f"peak RSS grew by {growth_mb:.0f} MB: weights were read into memory"
    result = onnx.load(dst)
    assert [o.name for o in result.graph.output] == ["layer1"]
    assert {t.name for t in result.graph.initializer} == {"layer1.conv.weight", "layer1.scale.weight"}
    assert os.path.getsize(dst) > KEPT_MB << 20
    kept = next(t for t in result.graph.initializer if t.name == "layer1.scale.weight")
    assert kept.raw_data == np.full(KEPT_MB << 18, 2.0**-20, np.float32).tobytes()
    x = image(batch=1, hw=16)
    padded = np.pad(x.sum(axis=1), ((0, 0), (1, 1), (1, 1)))  # Conv with every weight 0.1 = 0.1 * 3x3 window sums
    conv = 0.1 * sum(padded[:, i:i + 16, j:j + 16] for i in range(3) for j in range(3))
    want = np.maximum(conv * (KEPT_MB << 18) * 2.0**-20, 0)[:, None].repeat(4, axis=1)
    np.testing.assert_allclose(run(str(dst), x)["layer1"], want, rtol=1e-3, atol=1e-4)
