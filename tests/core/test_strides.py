"""graphfeat.resolve.strides: measured strides and layouts, the trunk, one level per stride.

Every graph here is built with onnx.helper and has only numeric names, so that
nothing can be resolved by name. No MindSpore, no exporters.
"""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphfeat.errors import GraphfeatError
from graphfeat.graph import GraphIndex, infer_types, image_input, shape_of
from graphfeat.graph import to_nchw as _to_nchw
from graphfeat.resolve.strides import Candidate, measure_strides, pick_strides, trunk_candidates


def to_nchw(model, tensor, candidate, output_name):
    _to_nchw(model, tensor, output_name, layout=candidate.layout, stride=candidate.stride, grid=candidate.grid,
             class_token=candidate.class_token)


class Net:
    """A graph under construction whose tensors and initializers are numbered '1', '2', ..."""

    def __init__(self, shape, seed: int = 0, dtype=TensorProto.FLOAT):
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.n = 0
        self.x = "0"
        self.input = helper.make_tensor_value_info("0", dtype, list(shape))
        self.domains = {"": 17}

    def name(self) -> str:
        self.n += 1
        return str(self.n)

    def param(self, array) -> str:
        name = self.name()
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def weight(self, *shape) -> str:
        fan_in = int(np.prod(shape[1:])) or 1
        return self.param((self.rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32))

    def op(self, op_type: str, inputs, domain: str = "", **attrs) -> str:
        out = self.name()
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=self.name(), domain=domain, **attrs))
        return out

    def conv(self, x: str, cin: int, cout: int, k: int = 3, s: int = 1) -> str:
        bias = self.param(self.rng.standard_normal(cout).astype(np.float32) * 0.1)
        return self.op("Conv", [x, self.weight(cout, cin, k, k), bias],
                       kernel_shape=[k, k], strides=[s, s], pads=[0 if k == s else k // 2] * 4)

    def linear(self, x: str, cin: int, cout: int) -> str:
        return self.op("Add", [self.op("MatMul", [x, self.weight(cin, cout)]),
                               self.param(self.rng.standard_normal(cout).astype(np.float32) * 0.1)])

    def layernorm(self, x: str, c: int) -> str:
        return self.op("LayerNormalization", [x, self.param(np.ones(c, np.float32)), self.param(np.zeros(c, np.float32))],
                       axis=-1)

    def model(self, outputs) -> onnx.ModelProto:
        outs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs]
        graph = helper.make_graph(self.nodes, "g", [self.input], outs, self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in self.domains.items()])
        m.ir_version = 8
        return m


def run(model: onnx.ModelProto, feed: np.ndarray, outputs) -> list[np.ndarray]:
    """Run ``model`` on ORT with ``outputs`` exposed (untyped graph outputs are fine for ORT)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.graph.output[:]
    for o in outputs:
        m.graph.output.add().name = o
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(list(outputs), {m.graph.input[0].name: feed})


def images(h: int, w: int, seed: int = 1, nhwc: bool = False) -> np.ndarray:
    shape = (1, h, w, 3) if nhwc else (1, 3, h, w)
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def assert_signal_equal(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.shape == expected.shape
    assert float(expected.std()) > 1e-3, "the reference carries no signal"
    np.testing.assert_allclose(actual, expected, rtol=0, atol=0)


# -- fixtures ---------------------------------------------------------------------------
CNN_CHANNELS = {2: 6, 4: 10, 8: 12, 16: 20, 32: 24}


def small_cnn(shape=(1, 3, 64, 64)):
    """Stem conv s2, then stages s4..s32 of two residual blocks (Add+Relu), then GAP+Flatten+Gemm.

    Returns the model, the stage outputs {stride: tensor} and the head tensors.
    """
    net = Net(shape)
    x = net.op("Relu", [net.conv("0", 3, CNN_CHANNELS[2], s=2)])
    stages = {2: x}
    cin = CNN_CHANNELS[2]
    for stride in (4, 8, 16, 32):
        cout = CNN_CHANNELS[stride]
        for block in range(2):
            s = 2 if block == 0 else 1
            y = net.conv(net.op("Relu", [net.conv(x, cin, cout, s=s)]), cout, cout)
            short = net.conv(x, cin, cout, k=1, s=2) if s == 2 else x
            x = net.op("Relu", [net.op("Add", [y, short])])
            cin = cout
        stages[stride] = x
    pooled = net.op("GlobalAveragePool", [x])
    flat = net.op("Flatten", [pooled])
    logits = net.op("Gemm", [flat, net.weight(7, cin), net.param(np.zeros(7, np.float32))], transB=1)
    return net.model([logits]), stages, [pooled, flat, logits]


def swin_like(shape=(1, 3, 64, 96), c: int = 20):
    """Patch embed (Conv s4), Transpose to NHWC, LN/MatMul blocks on (B, H, W, C), a patch merging
    through rank-6 tensors to s8, more blocks, then ReduceMean over H, W and a Gemm head."""
    net = Net(shape)
    emb = net.conv("0", 3, c, k=4, s=4)
    emb = net.op("Conv", [emb, net.weight(c, c, 1, 1)])  # a second NCHW tensor at s4
    x = net.layernorm(net.op("Transpose", [emb], perm=[0, 2, 3, 1]), c)
    h, w = shape[2] // 4, shape[3] // 4

    def block(x: str, c: int) -> str:
        return net.op("Add", [x, net.linear(net.op("Relu", [net.linear(net.layernorm(x, c), c, c)]), c, c)])

    x = block(block(x, c), c)
    s4_last = x
    x = net.op("Reshape", [x, net.param(np.array([1, h // 2, 2, w // 2, 2, c], np.int64))])
    x = net.op("Transpose", [x], perm=[0, 1, 3, 4, 2, 5])
    x = net.op("Reshape", [x, net.param(np.array([1, h // 2, w // 2, 4 * c], np.int64))])
    x = net.op("MatMul", [net.layernorm(x, 4 * c), net.weight(4 * c, 2 * c)])
    x = block(block(x, 2 * c), 2 * c)
    s8_last = x  # the final norm below is a normalization tail: the level is the stage output
    normed = net.layernorm(x, 2 * c)
    pooled = net.op("ReduceMean", [normed], axes=[1, 2], keepdims=0)
    logits = net.op("Gemm", [pooled, net.weight(7, 2 * c), net.param(np.zeros(7, np.float32))], transB=1)
    return net.model([logits]), {"emb": emb, 4: s4_last, 8: s8_last, "normed": normed}, logits


def vit_like(class_token: bool, shape=(1, 3, 64, 96), c: int = 36):
    """Patch embed Conv s16 -> (B, N, C) tokens (optionally a class token in front) -> blocks -> head."""
    net = Net(shape)
    emb = net.conv("0", 3, c, k=16, s=16)
    emb = net.op("Conv", [emb, net.weight(c, c, 1, 1)])
    tokens = net.op("Transpose", [net.op("Reshape", [emb, net.param(np.array([0, 0, -1], np.int64))])], perm=[0, 2, 1])
    x = tokens
    if class_token:
        cls = net.param(net.rng.standard_normal((1, 1, c)).astype(np.float32))
        x = net.op("Concat", [cls, tokens], axis=1)
    for _ in range(2):
        x = net.op("Add", [x, net.linear(net.op("Relu", [net.linear(net.layernorm(x, c), c, c)]), c, c)])
    last = x  # the level: the final norm is a normalization tail
    normed = net.layernorm(x, c)
    first = net.op("Gather", [normed, net.param(np.array(0, np.int64))], axis=1)  # (B, C): the head
    logits = net.op("Gemm", [first, net.weight(7, c), net.param(np.zeros(7, np.float32))], transB=1)
    return net.model([logits]), {"tokens": tokens, "last": last, "normed": normed}, logits


def hrnet_like(shape=(1, 3, 64, 64)):
    """Stem to s4, then a s4 branch and a s8 branch in parallel, fused at the end (Resize + Add)."""
    net = Net(shape)
    stem = net.op("Relu", [net.conv(net.op("Relu", [net.conv("0", 3, 8, s=2)]), 8, 10, s=2)])
    b1 = net.op("Relu", [net.conv(net.op("Relu", [net.conv(stem, 10, 10)]), 10, 10)])
    b2a = net.op("Relu", [net.conv(stem, 10, 14, s=2)])
    b2 = net.op("Relu", [net.conv(b2a, 14, 14)])
    up = net.op("Resize", [net.conv(b2, 14, 10, k=1), "", net.param(np.array([1, 1, 2, 2], np.float32))], mode="nearest")
    fused = net.op("Relu", [net.op("Add", [b1, up])])
    logits = net.op("Flatten", [net.op("GlobalAveragePool", [fused])])
    return net.model([logits]), {"stem": stem, "fused": fused, "branch8": [b2a, b2]}


def dynamic_fused(fixed_branch: bool = False):
    """Symbolic H/W; the s8 conv is com.microsoft FusedConv, which onnx shape inference cannot see
    through, so every later shape needs the ORT probe. ``fixed_branch`` adds a Resize to a fixed
    64x80 size (a stride only at 256x320) feeding a side output."""
    net = Net((1, 3, "H", "W"))
    net.domains["com.microsoft"] = 1
    s2 = net.op("Relu", [net.conv("0", 3, 6, s=2)])
    s4 = net.op("Relu", [net.conv(s2, 6, 10, s=2)])
    s8 = net.op("FusedConv", [s4, net.weight(12, 10, 3, 3), net.param(np.zeros(12, np.float32))], domain="com.microsoft",
                activation="Relu", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    s8b = net.op("Relu", [net.conv(s8, 12, 12)])
    s16 = net.op("Relu", [net.conv(s8b, 12, 20, s=2)])
    outs = [s16]
    fixed = None
    if fixed_branch:
        fixed = net.op("Resize", [s4, "", "", net.param(np.array([1, 10, 64, 80], np.int64))], mode="nearest")
        outs.append(net.op("Relu", [fixed]))
    return net.model(outs), {2: s2, 4: s4, 8: s8b, 16: s16, "fused": s8, "fixed": fixed}


# -- the NCHW CNN -------------------------------------------------------------------------
def test_cnn_strides_measured():
    model, stages, head = small_cnn()
    measured = measure_strides(GraphIndex(model))
    for stride, tensor in stages.items():
        m = measured[tensor]
        assert (m.stride, m.layout, m.channels) == (stride, "nchw", CNN_CHANNELS[stride])
        assert m.grid == (64 // stride, 64 // stride)
    assert measured["0"].stride == 1 and measured["0"].layout == "nchw"
    for tensor in head:  # (B, C, 1, 1), (B, C), (B, 7): no stride
        assert tensor not in measured


def test_cnn_trunk_candidates_exclude_head_and_pick_stage_outputs():
    model, stages, head = small_cnn()
    index = GraphIndex(model)
    cands = trunk_candidates(index)
    assert sorted(cands) == [2, 4, 8, 16, 32]
    every = [c.tensor for cs in cands.values() for c in cs]
    assert not set(every) & set(head)
    gap = index.pos[index.producer[head[0]]]
    assert all(index.pos[index.producer[t]] < gap for t in every)
    for stride, cs in cands.items():
        assert [c.deepest for c in cs] == [False] * (len(cs) - 1) + [True]
        assert cs[-1].tensor == stages[stride]
        assert all(c.stride == stride and c.layout == "nchw" for c in cs)
        assert [index.pos[index.producer[c.tensor]] for c in cs] == sorted(index.pos[index.producer[c.tensor]] for c in cs)
    # the first conv of a downsampling block runs beside the shortcut conv: not trunk
    first_block_conv = index.nodes[index.consumers[stages[4]][0]].output[0]
    assert first_block_conv not in every


def test_cnn_pick_strides():
    model, stages, _ = small_cnn()
    index = GraphIndex(model)
    picked = pick_strides(index, [4, 8, 16, 32])
    assert [p.tensor for p in picked] == [stages[s] for s in (4, 8, 16, 32)]
    assert [p.op for p in picked] == ["Relu"] * 4
    assert [p.tensor for p in pick_strides(index, [16, 4])] == [stages[16], stages[4]]


def test_cnn_refusals():
    model, _, _ = small_cnn()
    index = GraphIndex(model)
    with pytest.raises(GraphfeatError, match=r"never reaches stride 64: its trunk has strides 2, 4, 8, 16, 32"):
        pick_strides(index, [4, 64])
    for bad in (0, -4, 3.5, True, "3.5", "x"):
        with pytest.raises(GraphfeatError, match="not a positive integer"):
            pick_strides(index, [4, bad])
    with pytest.raises(GraphfeatError, match="more than once"):
        pick_strides(index, [8, 8])
    assert [p.stride for p in pick_strides(index, ["8", 16])] == [8, 16]  # the CLI passes strings


def test_a_normalization_tail_is_not_the_level():
    """A trailing LayerNorm (decomposed into ReduceMean/Sub/Div/Mul/Add around Transposes) only prepares the
    next stage: the level is the tensor it starts from; the normalized tensor stays a listed candidate."""
    model, marks, _ = swin_like()
    cands = {c.tensor: c for cs in trunk_candidates(GraphIndex(model)).values() for c in cs}
    assert cands[marks[8]].deepest and not cands[marks["normed"]].deepest
    assert list(cands).index(marks["normed"]) > list(cands).index(marks[8])


# -- NHWC ---------------------------------------------------------------------------------
def test_swin_like_nhwc_levels():
    model, marks, _ = swin_like()
    index = GraphIndex(model)
    measured = measure_strides(index)
    assert (measured[marks["emb"]].layout, measured[marks["emb"]].stride) == ("nchw", 4)
    assert (measured[marks[4]].layout, measured[marks[4]].stride, measured[marks[4]].grid) == ("nhwc", 4, (16, 24))
    assert (measured[marks[8]].layout, measured[marks[8]].stride, measured[marks[8]].channels) == ("nhwc", 8, 40)
    cands = trunk_candidates(index)
    assert sorted(cands) == [1, 4, 8] or sorted(cands) == [4, 8]
    # the rank-6 patch-merging tensors between s4 and s8 are skipped, not taken for the head
    picked = pick_strides(index, [4, 8])
    assert [p.tensor for p in picked] == [marks[4], marks[8]]
    assert [p.layout for p in picked] == ["nhwc", "nhwc"]


def test_to_nchw_on_nhwc():
    model, marks, _ = swin_like()
    index = GraphIndex(model)
    picked = pick_strides(index, [4, 8])
    for p in picked:
        to_nchw(model, p.tensor, p, f"{p.tensor}.nchw")
    outs = [p.tensor for p in picked] + [f"{p.tensor}.nchw" for p in picked]
    got = run(model, images(64, 96), outs)
    for k, p in enumerate(picked):
        assert got[k + 2].shape == (1, p.channels, *p.grid)
        assert_signal_equal(got[k + 2], got[k].transpose(0, 3, 1, 2))


def test_nhwc_input():
    net = Net((1, 48, 80, 3))
    x = net.op("Transpose", ["0"], perm=[0, 3, 1, 2])
    s2 = net.op("Relu", [net.conv(x, 3, 6, s=2)])
    s4 = net.op("Relu", [net.conv(s2, 6, 10, s=2)])
    model = net.model([net.op("Flatten", [net.op("GlobalAveragePool", [s4])])])
    measured = measure_strides(GraphIndex(model))
    assert (measured["0"].layout, measured["0"].stride, measured["0"].channels) == ("nhwc", 1, 3)
    assert (measured[x].layout, measured[x].stride) == ("nchw", 1)
    assert [p.tensor for p in pick_strides(GraphIndex(model), [2, 4])] == [s2, s4]


# -- tokens -----------------------------------------------------------------------------------
@pytest.mark.parametrize("class_token", [False, True])
def test_token_layouts(class_token):
    model, marks, head = vit_like(class_token)
    index = GraphIndex(model)
    measured = measure_strides(index)
    m = measured[marks["tokens"]]
    assert (m.layout, m.stride, m.grid, m.class_token, m.channels) == ("tokens", 16, (4, 6), False, 36)
    last = measured[marks["last"]]
    assert (last.layout, last.stride, last.class_token, last.shape) == ("tokens", 16, class_token, (1, 24 + class_token, 36))
    assert head not in measured
    [picked] = pick_strides(index, [16])
    assert picked.tensor == marks["last"] and picked.class_token is class_token


@pytest.mark.parametrize("class_token", [False, True])
def test_to_nchw_on_tokens(class_token):
    model, marks, _ = vit_like(class_token)
    [p] = pick_strides(GraphIndex(model), [16])
    to_nchw(model, p.tensor, p, "out")
    tokens, out = run(model, images(64, 96), [p.tensor, "out"])
    expected = tokens[:, int(class_token):, :].reshape(1, 4, 6, 36).transpose(0, 3, 1, 2)
    assert_signal_equal(out, expected)


def test_to_nchw_on_tokens_with_dynamic_input():
    """H/W symbolic: the grid is computed at run time from the input's shape, at any size."""
    model, marks, _ = vit_like(True, shape=(1, 3, "H", "W"))
    index = GraphIndex(model)
    [p] = pick_strides(index, [16])
    assert p.class_token
    to_nchw(model, p.tensor, p, "out")
    assert any(n.op_type == "Shape" for n in model.graph.node)
    for h, w in ((64, 96), (80, 48), (70, 100)):  # 70x100: floor(70/16) x floor(100/16) = 4 x 6
        tokens, out = run(model, images(h, w), [p.tensor, "out"])
        gh, gw = h // 16, w // 16
        assert out.shape == (1, 36, gh, gw)
        assert_signal_equal(out, tokens[:, 1:, :].reshape(1, gh, gw, 36).transpose(0, 3, 1, 2))


def test_to_nchw_refuses_a_taken_name():
    model, marks, _ = vit_like(False)
    [p] = pick_strides(GraphIndex(model), [16])
    with pytest.raises(GraphfeatError, match="already has a tensor"):
        to_nchw(model, p.tensor, p, marks["tokens"])


# -- branches -----------------------------------------------------------------------------------
def test_hrnet_like_branch_stride_refused():
    model, marks = hrnet_like()
    index = GraphIndex(model)
    measured = measure_strides(index)
    assert all(measured[t].stride == 8 for t in marks["branch8"])
    with pytest.raises(GraphfeatError) as err:
        pick_strides(index, [4, 8])
    msg = str(err.value)
    assert "stride 8 is not on the trunk" in msg and "--tensors" in msg
    for t in marks["branch8"]:
        assert f"'{t}'" in msg
    assert [p.tensor for p in pick_strides(index, [2, 4])][1] == marks["fused"]
    assert sorted(trunk_candidates(index)) == [2, 4]


# -- dynamic H/W ---------------------------------------------------------------------------------
def test_dynamic_hw_uses_the_probe_and_agrees_at_two_sizes():
    model, marks = dynamic_fused()
    index = GraphIndex(model)
    inp = image_input(model)
    types = infer_types(model, {inp.name: inp.concrete((256, 320))})
    for t in (marks["fused"], marks[16]):  # only the ORT probe can see these
        assert shape_of(types.get(t)) is None or not all(isinstance(d, int) for d in shape_of(types[t]))
    first = measure_strides(index)
    other = measure_strides(index, probe_size=(192, 288))
    for stride in (2, 4, 8, 16):
        assert first[marks[stride]].stride == other[marks[stride]].stride == stride
        assert first[marks[stride]].layout == "nchw"
    assert first[marks[16]].grid == (16, 20) and other[marks[16]].grid == (12, 18)
    assert first[marks["fused"]].stride == 8
    assert [p.tensor for p in pick_strides(index, [4, 8, 16])] == [marks[4], marks[8], marks[16]]


def test_dynamic_hw_marks_a_tensor_that_differs_between_probe_sizes():
    model, marks = dynamic_fused(fixed_branch=True)
    index = GraphIndex(model)
    measured = measure_strides(index)  # 256x320 (fixed 64x80 is stride 4 there) and 224x224 (it is not)
    m = measured[marks["fixed"]]
    assert m.stride is None and m.layout is None
    assert "256x320" in m.note and "224x224" in m.note
    assert measured[marks[4]].stride == 4


# -- layout ambiguity -------------------------------------------------------------------------------
def test_square_ambiguity_resolved_by_the_producer_or_refused():
    # (1, 8, 8, 8) at stride 4 on a 32x32 input fits NCHW and NHWC alike
    net = Net((1, 3, 32, 32))
    a = net.op("Relu", [net.conv("0", 3, 8, k=4, s=4)])  # from an NCHW conv: NCHW
    b = net.op("Transpose", [a], perm=[0, 2, 3, 1])  # through a Transpose: NHWC
    tokens = net.op("Reshape", [b, net.param(np.array([1, 64, 8], np.int64))])
    c = net.op("Reshape", [net.op("Relu", [tokens]), net.param(np.array([1, 8, 8, 8], np.int64))])  # no say
    model = net.model([net.op("Flatten", [net.op("GlobalAveragePool", [c])])])
    measured = measure_strides(GraphIndex(model))
    assert (measured[a].layout, measured[a].stride) == ("nchw", 4)
    assert (measured[b].layout, measured[b].stride) == ("nhwc", 4)
    assert measured[tokens].layout == "tokens"
    assert measured[c].stride is None and "ambiguous" in measured[c].note


# -- the input -------------------------------------------------------------------------------------
def test_input_without_spatial_dims_refused():
    net = Net((1, 10))
    model = net.model([net.op("Relu", ["0"])])
    with pytest.raises(GraphfeatError, match=r"the graph input '0' .* has no spatial dims"):
        measure_strides(GraphIndex(model))
    with pytest.raises(GraphfeatError, match="has no spatial dims"):
        pick_strides(GraphIndex(model), [4])


def test_candidate_is_plain_data():
    model, stages, _ = small_cnn()
    [p] = pick_strides(GraphIndex(model), [8])
    assert isinstance(p, Candidate) and p.deepest and p.shape == (1, CNN_CHANNELS[8], 8, 8)


def test_partly_dynamic_input_keeps_its_static_dim():
    model, stages, _ = small_cnn(shape=(1, 3, 64, "W"))
    index = GraphIndex(model)
    measured = measure_strides(index, probe_size=(999, 96))  # H is static (64): only W is probed
    for stride, tensor in stages.items():
        assert measured[tensor].stride == stride
        assert measured[tensor].grid == (64 // stride, -(-96 // stride))
    assert [p.tensor for p in pick_strides(index, [8, 32])] == [stages[8], stages[32]]


# -- the verbs: cut --strides, info ---------------------------------------------------------
def _saved(model: onnx.ModelProto, tmp_path, name: str = "m.onnx"):
    path = tmp_path / name
    onnx.save(model, path)
    return path


def test_cut_strides_on_an_anonymous_cnn(tmp_path, capsys):
    from graphfeat.cli import main
    from graphfeat.levels import read_metadata

    model, stages, _ = small_cnn()
    src = _saved(model, tmp_path)
    assert main(["cut", str(src), "--strides", "4", "8", "16", "32", "-o", str(tmp_path / "c.onnx")]) == 0
    cut = onnx.load(tmp_path / "c.onnx")
    onnx.checker.check_model(cut, full_check=True)
    assert [o.name for o in cut.graph.output] == ["stride4", "stride8", "stride16", "stride32"]
    assert all(o.type.tensor_type.elem_type == TensorProto.FLOAT for o in cut.graph.output)
    levels = read_metadata(cut)["levels"]
    assert [(lv["name"], lv["chs"], lv["reduction"], lv["layout"], lv["resolved_by"]) for lv in levels] == [
        (f"stride{s}", CNN_CHANNELS[s], s, "nchw", "strides") for s in (4, 8, 16, 32)]
    x = images(64, 64)
    got = run(cut, x, [f"stride{s}" for s in (4, 8, 16, 32)])
    want = run(model, x, [stages[s] for s in (4, 8, 16, 32)])
    for g, w in zip(got, want):
        assert_signal_equal(g, w)


def test_cut_strides_prefers_named_levels(tmp_path):
    """On a file with metadata, --strides takes the deepest *named* level at each stride."""
    from onnx_fixtures import add_metadata, resnet_like

    import graphfeat
    from graphfeat.levels import read_metadata

    model, truth = resnet_like("plain")
    add_metadata(model, [("relu", truth["relu"], 8, 2)] + [
        (f"layer{i}", truth[f"layer{i}"], c, 2 ** (i + 1)) for i, c in zip(range(1, 5), (8, 16, 24, 32))])
    cut = graphfeat.cut(model, strides=[32, 4])  # any order: the outputs go shallow to deep
    levels = read_metadata(cut)["levels"]
    assert [(lv["name"], lv["layer"], lv["source_index"]) for lv in levels] == [("stride4", "layer1", 1),
                                                                              ("stride32", "layer4", 4)]
    with pytest.raises(GraphfeatError, match=r"no named level of this model has stride 64; .*layer4/32"):
        graphfeat.cut(model, strides=[64])


@pytest.mark.parametrize("layout", ["nchw", "native"])
def test_cut_strides_delivers_nhwc_as_nchw_or_native(tmp_path, layout):
    import graphfeat
    from graphfeat.levels import read_metadata

    model, marks, _ = swin_like()
    cut = graphfeat.cut(model, strides=[4, 8], layout=layout)
    onnx.checker.check_model(cut, full_check=True)
    x = images(64, 96)
    got = run(cut, x, ["stride4", "stride8"])
    want = run(model, x, [marks[4], marks[8]])
    for g, w in zip(got, want):
        assert_signal_equal(g, w.transpose(0, 3, 1, 2) if layout == "nchw" else w)
    assert [lv["layout"] for lv in read_metadata(cut)["levels"]] == [layout if layout == "nchw" else "nhwc"] * 2
    assert [lv["chs"] for lv in read_metadata(cut)["levels"]] == [20, 40]


@pytest.mark.parametrize("class_token", [False, True])
def test_cut_strides_reshapes_tokens_to_nchw(class_token):
    import graphfeat

    model, marks, _ = vit_like(class_token)
    cut = graphfeat.cut(model, strides=[16])
    x = images(64, 96)
    (got,), (tokens,) = run(cut, x, ["stride16"]), run(model, x, [marks["last"]])
    grid = tokens[:, 1:] if class_token else tokens
    assert got.shape == (1, 36, 4, 6)
    assert_signal_equal(got, grid.transpose(0, 2, 1).reshape(1, 36, 4, 6))


def test_cut_strides_refusals_are_one_line_and_exit_2(tmp_path, capsys):
    from graphfeat.cli import main

    cnn = _saved(small_cnn()[0], tmp_path, "cnn.onnx")
    hr = _saved(hrnet_like()[0], tmp_path, "hr.onnx")
    flat = Net((1, 10))
    vector = _saved(flat.model([flat.op("Relu", ["0"])]), tmp_path, "vec.onnx")
    cases = [
        ([str(hr), "--strides", "4", "8"], "stride 8 is not on the trunk"),
        ([str(cnn), "--strides", "64"], "never reaches stride 64: its trunk has strides 2, 4, 8, 16, 32"),
        ([str(cnn), "--strides", "3.5"], "not a positive integer"),
        ([str(cnn), "--strides", "0"], "not a positive integer"),
        ([str(vector), "--strides", "4"], "has no spatial dims"),
    ]
    for argv, message in cases:
        out = tmp_path / "never.onnx"
        assert main(["cut", *argv, "-o", str(out)]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
        assert not out.exists()


def test_info_lists_trunk_candidates_of_an_anonymous_file(tmp_path, capsys):
    import json

    from graphfeat.cli import main

    model, stages, _ = small_cnn()
    src = _saved(model, tmp_path)
    assert main(["info", str(src)]) == 0
    text = capsys.readouterr().out
    assert "No named feature layers" in text and "deepest" in text
    assert main(["info", str(src), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["layers"] == []
    deepest = {c["stride"]: c["tensor"] for c in doc["candidates"] if c["deepest"]}
    assert deepest == {s: t for s, t in stages.items()}
    assert {c["layout"] for c in doc["candidates"]} == {"nchw"}
    assert len(doc["candidates"]) > len(deepest)  # the other candidates, for --tensors


def test_info_flags_a_recorded_reduction_the_measurement_contradicts(tmp_path, capsys):
    from onnx_fixtures import add_metadata, resnet_like

    from graphfeat.info import feature_levels

    model, truth = resnet_like("plain")
    add_metadata(model, [("layer1", truth["layer1"], 8, 4), ("layer2", truth["layer2"], 16, 4)])  # layer2 is s8
    rows = feature_levels(model)
    assert [(r.reduction, r.stride, r.note) for r in rows] == [
        (4, 4, ""), (4, 8, "measured stride 8 differs from the recorded reduction 4")]
