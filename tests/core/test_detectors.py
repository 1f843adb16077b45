"""Detectors and untrusted views: the neck, strides along unpadded ops, the independent path check, the
note on a lost record. Graphs are built with onnx.helper and carry only numeric names."""
from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest

import graphfeat
from graphfeat.cli import main
from graphfeat.errors import GraphfeatError, GraphfeatNote
from graphfeat.graph import GraphIndex
from graphfeat.resolve.dominance import check_claims
from graphfeat.resolve.strides import analyse, measure_strides, pick_strides
from test_strides import Net, run


def _block(net: Net, x: str, cin: int, cout: int, s: int = 1) -> str:
    return net.op("Relu", [net.conv(x, cin, cout, s=s)])


def yolo_v5_like(shape=(1, 3, 128, 128)):
    """A backbone to stride 32, a top-down path (Resize + Concat) and a bottom-up one (stride-2 convs + Concat),
    and one 1x1 prediction conv per level whose outputs are reshaped and concatenated into one output."""
    net = Net(shape)
    c2 = _block(net, _block(net, "0", 3, 8, s=2), 8, 8)
    c4 = _block(net, _block(net, c2, 8, 12, s=2), 12, 12)
    c8 = _block(net, _block(net, c4, 12, 16, s=2), 16, 16)
    c16 = _block(net, _block(net, c8, 16, 20, s=2), 20, 20)
    c32 = _block(net, _block(net, c16, 20, 24, s=2), 24, 24)
    up = lambda x: net.op("Resize", [x, "", net.param(np.array([1, 1, 2, 2], np.float32))], mode="nearest")  # noqa: E731
    t16 = _block(net, net.op("Concat", [up(c32), c16], axis=1), 44, 20)
    p8 = _block(net, net.op("Concat", [up(t16), c8], axis=1), 36, 16)
    p16 = _block(net, net.op("Concat", [_block(net, p8, 16, 16, s=2), t16], axis=1), 36, 20)
    p32 = _block(net, net.op("Concat", [_block(net, p16, 20, 20, s=2), c32], axis=1), 44, 24)
    preds = []
    for p, c in ((p8, 16), (p16, 20), (p32, 24)):
        pred = net.conv(p, c, 9, k=1)
        preds.append(net.op("Reshape", [pred, net.param(np.array([1, 9, -1], np.int64))]))
    out = net.op("Concat", preds, axis=2)
    return net.model([out]), {"backbone": {4: c4, 8: c8, 16: c16, 32: c32}, "neck": {8: p8, 16: p16, 32: p32}}


def test_a_detector_gives_its_backbone_by_default_and_its_neck_on_request():
    model, marks = yolo_v5_like()
    index = GraphIndex(model)
    assert [c.tensor for c in pick_strides(index, [4, 8, 16, 32])] == [marks["backbone"][s] for s in (4, 8, 16, 32)]
    necks = pick_strides(index, [8, 16, 32], neck=True)
    assert [c.tensor for c in necks] == [marks["neck"][s] for s in (8, 16, 32)]
    assert {c.source for c in necks} == {"neck"}
    with pytest.raises(GraphfeatError, match="no head reads the neck at stride 4"):
        pick_strides(index, [4], neck=True)
    with pytest.raises(GraphfeatError, match="backbone never reaches stride 64"):
        pick_strides(index, [64])


def test_the_neck_cut_runs_and_records_its_source():
    model, marks = yolo_v5_like()
    x = np.random.default_rng(3).standard_normal((1, 3, 128, 128)).astype(np.float32)
    cut = graphfeat.cut(model, strides=[8, 16, 32], neck=True)
    record = graphfeat.feature_levels(cut)
    assert [r.name for r in record] == ["stride8", "stride16", "stride32"]
    expected = run(model, x, [marks["neck"][s] for s in (8, 16, 32)])
    for got, want in zip(run(cut, x, ["stride8", "stride16", "stride32"]), expected):
        assert float(want.std()) > 1e-3
        np.testing.assert_array_equal(got, want)
    levels = {p.key: p.value for p in cut.metadata_props}[graphfeat.METADATA_KEY]
    assert '"source": "neck"' in levels and marks["neck"][8] in levels  # the tensor the rule took ("origin")


def test_neck_without_strides_is_refused():
    model, _ = yolo_v5_like()
    with pytest.raises(GraphfeatError, match="--neck selects by stride"):
        graphfeat.cut(model, layers=["x"], neck=True)


def _unpadded_stem():
    """Inception-v3's stem at 299 px: valid convs and pools (299 -> 149 -> 147 -> 73 -> 71 -> 35 -> 17 -> 8)."""
    net = Net((1, 3, 299, 299))

    def conv(x, cin, cout, k=3, s=1, pad=0):
        bias = net.param(np.zeros(cout, np.float32))
        return net.op("Relu", [net.op("Conv", [x, net.weight(cout, cin, k, k), bias], kernel_shape=[k, k],
                                      strides=[s, s], pads=[pad] * 4)])

    pool = lambda x: net.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2])  # noqa: E731
    s2 = conv(conv(conv("0", 3, 8, s=2), 8, 8), 8, 16, pad=1)  # 149, 147, 147
    s4 = conv(conv(pool(s2), 16, 20, k=1), 20, 24)  # 73, 73, 71
    s8 = conv(pool(s4), 24, 32, pad=1)  # 35
    s16 = conv(s8, 32, 48, s=2)  # 17
    s32 = conv(s16, 48, 64, s=2)  # 8
    logits = net.op("Flatten", [net.op("GlobalAveragePool", [s32])])
    return net.model([logits]), {2: s2, 4: s4, 8: s8, 16: s16, 32: s32}


def test_unpadded_ops_keep_their_true_strides():
    model, levels = _unpadded_stem()
    index = GraphIndex(model)
    measured = measure_strides(index)
    assert {s: measured[t].stride for s, t in levels.items()} == {2: 2, 4: 4, 8: 8, 16: 16, 32: 32}
    assert measured[levels[16]].shape[2:] == (17, 17)  # the size ratio alone says 18
    assert [c.tensor for c in pick_strides(index, [2, 4, 8, 16, 32])] == [levels[s] for s in (2, 4, 8, 16, 32)]


def test_a_channels_first_reshape_is_not_read_as_tokens():
    """(B, C, H*W) with C equal to a square count: before, it fitted 'C tokens' and an output concatenation of
    such tensors took a stride it does not have."""
    net = Net((1, 3, 64, 64))
    x = _block(net, _block(net, "0", 3, 16, s=2), 16, 16, s=2)  # (1, 16, 16, 16) at stride 4
    flat = net.op("Reshape", [x, net.param(np.array([1, 16, -1], np.int64))])  # (1, 16, 256)
    both = net.op("Concat", [flat, flat], axis=2)
    measured = measure_strides(GraphIndex(net.model([both])))
    assert measured[x].stride == 4
    assert flat not in measured and both not in measured


def _residual():
    net = Net((1, 3, 32, 32))
    stem = _block(net, "0", 3, 8, s=2)
    branch = net.op("BatchNormalization", [net.conv(stem, 8, 8), *(net.param(v) for v in (
        np.ones(8, np.float32), np.zeros(8, np.float32), np.zeros(8, np.float32), np.ones(8, np.float32)))])
    out = net.op("Relu", [net.op("Add", [branch, stem])])
    return net.model([out]), stem, branch, out


def test_the_path_check_refuses_a_level_a_shortcut_bypasses():
    """The check is given what a faulty view of the graph would claim: a residual branch's BatchNormalization as
    the level. The shortcut bypasses it, so the check refuses, naming the tensor; the stage's input passes."""
    model, stem, branch, out = _residual()
    check_claims(model, "0", [(stem, [out])])
    with pytest.raises(GraphfeatError) as err:
        check_claims(model, "0", [(branch, [out])])
    message = str(err.value)
    assert f"'{branch}' is not on every path" in message and "\n" not in message
    with pytest.raises(GraphfeatError, match="not computed from the input"):
        check_claims(model, "0", [("0", [out])])


def test_every_strides_level_passes_the_path_check():
    model, marks = yolo_v5_like()
    index = GraphIndex(model)
    a = analyse(index)
    picked = [(c.tensor, c.stride, c.source) for c in pick_strides(index, [4, 8, 16, 32], analysis=a)]
    picked += [(c.tensor, c.stride, c.source) for c in pick_strides(index, [8, 16, 32], neck=True, analysis=a)]
    claims = a.claims(index, picked)
    assert len(claims) == 7 and all(targets for _, targets in claims)
    check_claims(model, "0", claims)


def _without_record(producer: str) -> onnx.ModelProto:
    model, _, _, _ = _residual()
    model.producer_name = producer
    return model


def test_a_graphfeat_file_that_lost_its_record_says_so(tmp_path, capsys):
    path = tmp_path / "folded.onnx"
    onnx.save(_without_record("graphfeat"), path)
    with pytest.warns(GraphfeatNote, match="--like ORIGINAL.onnx or --reference REF.npz"):
        graphfeat.feature_levels(path)
    assert main(["info", str(path)]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "note:" in line]
    assert len(notes) == 1 and "feature record is gone" in notes[0]


def test_another_exporters_file_gets_no_note(tmp_path):
    path = tmp_path / "ms.onnx"
    onnx.save(_without_record("MindSpore"), path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", GraphfeatNote)
        graphfeat.feature_levels(path)
        graphfeat.cut(path, strides=[2])


def test_the_cut_prints_what_it_took_and_why(tmp_path, capsys):
    model, marks = yolo_v5_like()
    src = tmp_path / "det.onnx"
    onnx.save(model, src)
    assert main(["cut", str(src), "--strides", "8", "16", "--neck", "-o", str(tmp_path / "n.onnx")]) == 0
    out = capsys.readouterr().out
    assert "neck: deepest at stride 8" in out and marks["neck"][8] in out and marks["neck"][16] in out


def test_the_path_check_reads_a_file_whose_nodes_are_out_of_order():
    model, stem, branch, out = _residual()
    nodes = list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(reversed(nodes))  # ONNX requires sorted nodes; graphfeat reads unsorted ones too
    check_claims(model, "0", [(stem, [out])])
    with pytest.raises(GraphfeatError, match="not on every path"):
        check_claims(model, "0", [(branch, [out])])
