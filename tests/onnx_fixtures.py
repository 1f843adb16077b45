"""Small hand-built ONNX backbones for graphfeat's tests (no MindSpore, no PyTorch).

Each builder returns a real, runnable model with seeded random weights, in one
of four *styles* that differ only in what names the file carries:

* ``"torchscript"``: node names ``/layer1/layer1.0/conv1/Conv``, anonymous
  initializers (``onnx::Conv_12``), as after a TorchScript export;
* ``"dynamo"``: bare node names with ``pkg.torch.onnx.name_scopes`` and
  ``namespace`` metadata_props, parameter-named initializers;
* ``"namespace"``: like dynamo but only the ``namespace`` property;
* ``"mindspore"``: scope-free node names (``1Conv``, ``2Relu``) and MindSpore
  parameter names (``bn1.gamma``, ``bn1.moving_mean``), BN not folded;
* ``"plain"``: no scopes and anonymous initializers (only metadata can help).
"""
from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

# the repository root, so tests import the working tree's graphfeat (until pyproject sets pythonpath)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from graphfeat.levels import METADATA_KEY

OPSET = 17
STYLES = ("torchscript", "dynamo", "namespace", "mindspore", "plain")


class Builder:
    """Appends nodes with a module scope; names nodes/initializers per style."""

    def __init__(self, style: str, seed: int = 0, input_shape=("batch", 3, 64, 64)):
        assert style in STYLES
        self.style = style
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.n = 0
        self.names: set[str] = set()
        self.input = helper.make_tensor_value_info("images", TensorProto.FLOAT, list(input_shape))

    # -- naming -----------------------------------------------------------------
    def _pname(self, module: str, param: str) -> str:
        self.n += 1
        if self.style in ("torchscript", "plain"):
            return f"onnx::P_{self.n}"
        if self.style == "mindspore":
            param = {"running_mean": "moving_mean", "running_var": "moving_variance", "bn_weight": "gamma", "bn_bias": "beta"}.get(param, param)
        else:
            param = {"bn_weight": "weight", "bn_bias": "bias"}.get(param, param)
        return f"{module}.{param}"

    def _tname(self, op: str) -> str:
        self.n += 1
        return f"t{self.n}_{op.lower()}"

    def op(self, op: str, inputs: Sequence[str], scope: str, n_out: int = 1, **attrs) -> str | list[str]:
        """Add a node of ``op`` inside module ``scope`` (dotted path, '' = top level)."""
        outs = [self._tname(op) for _ in range(n_out)]
        node = helper.make_node(op, list(inputs), outs, **attrs)
        k = len(self.nodes)
        parts = [p for p in scope.split(".") if p] if scope else []
        paths = [".".join(parts[: i + 1]) for i in range(len(parts))]
        if self.style == "torchscript":
            # TorchScript names: the first component full, Sequential children as full paths, attributes relative
            comps = []
            for i, p in enumerate(paths):
                comps.append(p if i == 0 or parts[i].isdigit() else parts[i])
            name = "/" + "/".join(comps + [op]) if comps else f"/{op}_{k}"
            dup = 0
            while name in self.names:
                dup += 1
                if comps and comps[-1].split(".")[-1].lower() == op.lower():  # a module called again: "relu_1"
                    name = "/" + "/".join(comps[:-1] + [f"{comps[-1]}_{dup}", op])
                else:  # a second op of that type in one scope: "Add_1"
                    name = "/" + "/".join(comps + [f"{op}_{dup}"])
            node.name = name
            self.names.add(name)
        elif self.style in ("dynamo", "namespace"):
            node.name = f"node_{op}_{k}"
            own = f"{op.lower()}_{k}"
            if self.style == "dynamo":
                node.metadata_props.add(key="pkg.torch.onnx.name_scopes", value=repr(["", *paths, own]))
            ns = "/".join([": test.Net", *[f"{p}: torch.nn.Module" for p in paths], f"{own}: aten.{op.lower()}.default"])
            node.metadata_props.add(key="namespace", value=ns)
        elif self.style == "mindspore":
            node.name = f"{k + 1}{op}"
        else:
            node.name = f"{op}_{k}"
        self.nodes.append(node)
        return outs[0] if n_out == 1 else outs

    def param(self, module: str, name: str, array: np.ndarray) -> str:
        pname = self._pname(module, name)
        self.inits.append(numpy_helper.from_array(array.astype(np.float32), pname))
        return pname

    # -- layers -------------------------------------------------------------------
    def conv(self, x: str, cin: int, cout: int, module: str, k: int = 3, s: int = 1, bias: bool = False) -> str:
        w = self.param(module, "weight", self.rng.normal(0, (2.0 / (cin * k * k)) ** 0.5, (cout, cin, k, k)))
        ins = [x, w]
        if bias:
            ins.append(self.param(module, "bias", self.rng.normal(0, 0.1, (cout,))))
        p = k // 2
        return self.op("Conv", ins, module, kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p])

    def bn(self, x: str, c: int, module: str) -> str:
        g = self.param(module, "bn_weight", self.rng.uniform(0.5, 1.5, (c,)))
        b = self.param(module, "bn_bias", self.rng.normal(0, 0.1, (c,)))
        m = self.param(module, "running_mean", self.rng.normal(0, 0.1, (c,)))
        v = self.param(module, "running_var", self.rng.uniform(0.5, 1.5, (c,)))
        return self.op("BatchNormalization", [x, g, b, m, v], module, epsilon=1e-5)

    def relu(self, x: str, scope: str) -> str:
        return self.op("Relu", [x], scope)

    def add(self, a: str, b: str, scope: str) -> str:
        return self.op("Add", [a, b], scope)

    def basic_block(self, x: str, cin: int, cout: int, name: str, stride: int = 1) -> str:
        relu = f"{name}.relu"
        y = self.relu(self.bn(self.conv(x, cin, cout, f"{name}.conv1", s=stride), cout, f"{name}.bn1"), relu)
        y = self.bn(self.conv(y, cout, cout, f"{name}.conv2"), cout, f"{name}.bn2")
        if stride != 1 or cin != cout:
            ds = "down_sample" if self.style == "mindspore" else "downsample"
            x = self.bn(self.conv(x, cin, cout, f"{name}.{ds}.0", k=1, s=stride), cout, f"{name}.{ds}.1")
        return self.relu(self.add(y, x, name), relu)

    def head(self, x: str, c: int, classes: int, module: str) -> str:
        """Global pool + linear, the classifier a feature cut must remove."""
        if self.style == "mindspore":
            pooled = self.op("ReduceMean", [x], "pool", axes=[2, 3], keepdims=0)
            w = self.param(module, "weight", self.rng.normal(0, 0.1, (c, classes)))
            b = self.param(module, "bias", self.rng.normal(0, 0.1, (classes,)))
            return self.op("Add", [self.op("MatMul", [pooled, w], module), b], module)
        pooled = self.op("Flatten", [self.op("GlobalAveragePool", [x], "avgpool")], "")
        w = self.param(module, "weight", self.rng.normal(0, 0.1, (classes, c)))
        b = self.param(module, "bias", self.rng.normal(0, 0.1, (classes,)))
        return self.op("Gemm", [pooled, w, b], module, transB=1)

    def model(self, outputs: Sequence[str], name: str = "net") -> onnx.ModelProto:
        outs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs]
        graph = helper.make_graph(self.nodes, name, [self.input], outs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="graphfeat-tests")
        model.ir_version = 8
        model = onnx.shape_inference.infer_shapes(model)
        # keep declared outputs typed (inference fills graph.output types only when missing)
        onnx.checker.check_model(model, full_check=True)
        return model


def resnet_like(style: str, seed: int = 0) -> tuple[onnx.ModelProto, dict[str, str]]:
    """Sequential stages ``layer1..layer4`` (strides 4/8/16/32) and a classifier head.

    Returns the model and, for each module, the tensor it returns (the truth).
    """
    b = Builder(style, seed)
    ms = style == "mindspore"
    truth: dict[str, str] = {}
    x = b.conv("images", 3, 8, "conv1", k=3, s=2)
    truth["conv1"] = x
    x = b.bn(x, 8, "bn1")
    truth["bn1"] = x
    x = b.relu(x, "relu")
    truth["relu"] = x
    pool = "max_pool" if ms else "maxpool"
    x = b.op("MaxPool", [x], pool, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    truth[pool] = x
    cin = 8
    for i, (c, s, n) in enumerate([(8, 1, 2), (16, 2, 2), (24, 2, 1), (32, 2, 1)], start=1):
        for j in range(n):
            x = b.basic_block(x, cin, c, f"layer{i}.{j}", stride=s if j == 0 else 1)
            truth[f"layer{i}.{j}"] = x
            cin = c
        truth[f"layer{i}"] = x
    logits = b.head(x, cin, 10, "classifier" if ms else "fc")
    return b.model([logits], "resnet_like"), truth


def features_like(style: str, seed: int = 1) -> tuple[onnx.ModelProto, dict[str, str]]:
    """One flattened sequential ``features.0 .. features.9`` (dotted names) and a classifier."""
    b = Builder(style, seed)
    truth: dict[str, str] = {}
    x = b.conv("images", 3, 8, "features.0", s=2)
    truth["features.0"] = x
    x = b.bn(x, 8, "features.1")
    truth["features.1"] = x
    x = b.relu(x, "features.2")
    truth["features.2"] = x

    def inverted(x: str, c: int, name: str) -> str:
        y = b.relu(b.bn(b.conv(x, c, 2 * c, f"{name}.conv.0", k=1), 2 * c, f"{name}.conv.1"), f"{name}.conv.2")
        y = b.bn(b.conv(y, 2 * c, c, f"{name}.conv.3"), c, f"{name}.conv.4")
        return b.add(x, y, name)

    x = inverted(x, 8, "features.3")
    truth["features.3"] = x
    x = b.conv(x, 8, 16, "features.4", s=2)
    truth["features.4"] = x
    x = b.relu(x, "features.5")
    truth["features.5"] = x
    x = inverted(x, 16, "features.6")
    truth["features.6"] = x
    x = b.conv(x, 16, 24, "features.7", s=2)
    truth["features.7"] = x
    x = b.bn(x, 24, "features.8")
    truth["features.8"] = x
    x = inverted(x, 24, "features.9")
    truth["features.9"] = x
    logits = b.head(x, 24, 10, "classifier")
    return b.model([logits], "features_like"), truth


def hrnet_like(style: str, seed: int = 2) -> tuple[onnx.ModelProto, dict[str, str]]:
    """Two parallel branches (strides 4 and 8) fused both ways, then a head that merges them.

    ``stage1`` writes two tensors (the fused branches), so it has no single output;
    ``stage1.fuse_layers.0.1`` ends in a parameter-free upsample that only scopes can attribute.
    """
    b = Builder(style, seed)
    truth: dict[str, str] = {}
    x = b.relu(b.bn(b.conv("images", 3, 8, "stem.conv", s=4), 8, "stem.bn"), "stem.act")
    truth["stem"] = x
    b0 = b.relu(b.bn(b.conv(x, 8, 8, "stage1.branches.0.conv"), 8, "stage1.branches.0.bn"), "stage1.branches.0.act")
    truth["stage1.branches.0"] = b0
    b1 = b.relu(b.bn(b.conv(x, 8, 16, "stage1.branches.1.conv", s=2), 16, "stage1.branches.1.bn"), "stage1.branches.1.act")
    truth["stage1.branches.1"] = b1
    # HRNet's fuse layers: Sequential(conv, bn[, upsample]); the sums and ReLUs belong to the stage itself
    fl01 = b.bn(b.conv(b1, 16, 8, "stage1.fuse_layers.0.1.0", k=1), 8, "stage1.fuse_layers.0.1.1")
    up = b.op("Resize", [fl01, "", "scales_2x"], "stage1.fuse_layers.0.1.2", mode="nearest")
    truth["stage1.fuse_layers.0.1"] = up
    f0 = b.relu(b.add(b0, up, "stage1"), "stage1.relu")
    down = b.bn(b.conv(b0, 8, 16, "stage1.fuse_layers.1.0.0", s=2), 16, "stage1.fuse_layers.1.0.1")
    truth["stage1.fuse_layers.1.0"] = down
    f1 = b.relu(b.add(b1, down, "stage1"), "stage1.relu")
    b.inits.append(numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales_2x"))
    up1 = b.op("Resize", [f1, "", "scales_2x"], "head.up", mode="nearest")
    cat = b.op("Concat", [f0, up1], "head", axis=1)
    y = b.relu(b.conv(cat, 24, 16, "head.conv", k=1), "head")
    logits = b.head(y, 16, 10, "head.fc")
    return b.model([logits], "hrnet_like"), truth


# -- helpers ---------------------------------------------------------------------
def add_metadata(model: onnx.ModelProto, levels: list[tuple[str, str, int, int]]) -> onnx.ModelProto:
    """Attach a graphfeat record: ``levels`` = ``[(name, tensor, chs, reduction), ...]``."""
    record = {
        "schema": 1,
        "model": "test",
        "input": {"name": "images", "shape": ["batch", 3, 64, 64]},
        "input_size": [64, 64],
        "versions": {"graphfeat": "0.1.0"},
        "levels": [
            {"index": i, "name": n, "chs": c, "reduction": r, "tensor": t} for i, (n, t, c, r) in enumerate(levels)
        ],
    }
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(record)
    return model


def image(seed: int = 0, batch: int = 2, hw: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(batch, 3, hw, hw)).astype(np.float32)


def run(model: onnx.ModelProto | str, x: np.ndarray) -> dict[str, np.ndarray]:
    """All outputs of ``model`` on input ``x`` with ONNX Runtime (CPU, one thread)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    src = model if isinstance(model, str) else model.SerializeToString()
    sess = ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, {sess.get_inputs()[0].name: x})))


def expose(model: onnx.ModelProto, tensors: Sequence[str]) -> onnx.ModelProto:
    """A copy of ``model`` with ``tensors`` added as outputs (to compute reference values)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    present = {o.name for o in out.graph.output}
    for t in tensors:
        if t not in present:
            out.graph.output.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, None))
            present.add(t)
    return out


_MEASURE_CUT = """
import sys
sys.path.insert(0, {root!r})
import graphfeat
for name in graphfeat.__all__:  # the package imports its names on first use: import them all before measuring
    getattr(graphfeat, name)

def hwm_kb():  # this process's own peak RSS (ru_maxrss would include the parent's, inherited over exec)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))

before = hwm_kb()
graphfeat.cut_file({src!r}, {dst!r}, layers={layers!r})
print(hwm_kb() - before)
"""


def cut_peak_growth_mb(src: Path, dst: Path, layers: list[str]) -> float:
    """How much ``graphfeat.cut_file`` raises the peak RSS of a fresh process above its imports, in MiB."""
    import subprocess

    code = _MEASURE_CUT.format(root=str(Path(__file__).resolve().parents[1]), src=str(src), dst=str(dst), layers=layers)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(proc.stdout.strip().splitlines()[-1]) / 1024


def scale_and_head_model(weights: Sequence[onnx.TensorProto], head_rows: int) -> onnx.ModelProto:
    """``layer1`` = Relu(Conv(images) * ReduceSum(layer1.scale.weight)), then a MatMul head on the first
    ``head_rows`` flattened values. ``weights`` gives ``layer1.conv.weight`` (4x3x3x3),
    ``layer1.scale.weight`` and ``fc.weight`` (head_rows x 10), embedded or external."""
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 16, 16])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])
    nodes = [
        helper.make_node("Conv", ["images", "layer1.conv.weight"], ["c"], pads=[1, 1, 1, 1], name="1Conv"),
        helper.make_node("ReduceSum", ["layer1.scale.weight"], ["s"], keepdims=0, name="2ReduceSum"),
        helper.make_node("Mul", ["c", "s"], ["layer1_out"], name="3Mul"),
        helper.make_node("Relu", ["layer1_out"], ["r"], name="4Relu"),
        helper.make_node("Flatten", ["r"], ["f"], name="5Flatten"),
        helper.make_node("Slice", ["f", "starts", "ends", "axes"], ["f2"], name="6Slice"),
        helper.make_node("MatMul", ["f2", "fc.weight"], ["logits"], name="7MatMul"),
    ]
    consts = [numpy_helper.from_array(np.array([v], np.int64), n) for n, v in (("starts", 0), ("ends", head_rows), ("axes", 1))]
    graph = helper.make_graph(nodes, "big", [x], [y], [*weights, *consts])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def anonymize(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, str]]:
    """A copy with every node, tensor and initializer renamed to an opaque id and all metadata removed:
    what a converter or a vendor's name-stripping leaves (the graph input and outputs are renamed too).
    Also returns the renaming, old name -> new name."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    names: dict[str, str] = {}

    def new(name: str) -> str:
        if name and name not in names:
            names[name] = f"t{len(names)}"
        return names.get(name, name)

    for vi in (*g.input, *g.output, *g.value_info):
        vi.name = new(vi.name)
    for t in g.initializer:
        t.name = new(t.name)
    for k, node in enumerate(g.node):
        node.name = f"n{k}"
        del node.metadata_props[:]
        for seq in (node.input, node.output):
            for j, n in enumerate(seq):
                seq[j] = new(n)
    del out.metadata_props[:]
    out.doc_string = ""
    out.producer_name = ""
    return out, names


#: a ``python -c`` program running the graphfeat CLI where importing MindSpore fails
BLOCK_MINDSPORE = textwrap.dedent("""
    import sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name == "mindspore" or name.startswith("mindspore."):
                raise ModuleNotFoundError("No module named 'mindspore'")
    sys.meta_path.insert(0, Block())
    from graphfeat.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def quantize_qdq(src, dst, *, per_channel: bool = False, seed: int = 7, images: int = 8) -> None:
    """Int8 QDQ quantisation of the ONNX file ``src`` into ``dst`` by ONNX Runtime's own quantiser, as its
    documentation shows: static, calibrated on ``images`` seeded standard-normal inputs of the first input's
    shape (symbolic dims taken as 1)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    inp = onnx.load(src, load_external_data=False).graph.input[0]
    dims = [d.dim_value or 1 for d in inp.type.tensor_type.shape.dim]

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(seed)
            self.feeds = iter([{inp.name: rng.standard_normal(dims).astype(np.float32)} for _ in range(images)])

        def get_next(self):
            return next(self.feeds, None)

    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
