"""MindSpore's OWN ONNX export (``mindspore.export(net, x, file_format="ONNX")``) of MindCV 0.3.0 classifiers.

    python scripts/converter_fixtures/from_mindspore.py --out tests/data/converters [--only ID ...]

The file a MindSpore user holds without graphfeat's exporter: MindCV's own classes (their parameter names and
``feature_info``), width-reduced, num_classes 10, exported in GRAPH_MODE by MindSpore itself. Standalone
MindSpore + MindCV code (no graphfeat, no ``exporters``).

Weights: ``ms.set_seed(0)``, then every convolution and dense weight re-drawn from a seeded NumPy stream
(He-normal on fan-in for convolutions, ``1/sqrt(fan_in)`` for dense layers, small random biases), every
BatchNorm/LayerNorm gamma re-randomised around 1 and beta around 0, ConvNeXt's layer scale (MindCV's 1e-6,
which would hide every block) set around 0.75, and the BatchNorm closing each residual branch given gammas of
0.2-0.4 (``RESIDUAL_GAMMA``); then every BatchNorm's moving mean/variance set to the
per-channel mean/variance of its own input on a calibration batch, layer by layer in PYNATIVE (a forward
pre-hook sets a BatchNorm's statistics just before it runs, so each one sees the already calibrated layers
before it). True levels: MindCV's own ``FeatureExtractWrapper`` (what ``features_only=True`` builds) over all
``feature_info`` entries, wrapped around the same cells, run in PYNATIVE. Sanity check: the ONNX file's
logits on ONNX Runtime against MindSpore's.

Two settings a user needs on MindSpore 2.10, both set before MindSpore compiles anything:

- ``compile_config.JIT_ENABLE_AUGASSIGN_INPLACE = "0"``: GRAPH_MODE otherwise compiles a tensor ``x += y``
  (MindCV's ResNet and EfficientNet blocks: ``out += identity``) to ``InplaceAddExt``, which MindSpore's ONNX
  exporter has no converter for (the export fails naming it);
- ``ONEDNN_MAX_CPU_ISA=AVX2`` (before importing mindspore): on some AMD CPUs oneDNN runs k x k convolutions
  very slowly otherwise. It changes no values beyond float rounding.
"""
from __future__ import annotations

#: what a fresh virtual environment needs (``scripts/make_converter_fixtures.py`` installs it)
REQUIREMENTS = ["mindspore==2.10.0", "mindcv==0.3.0", "numpy<2", "onnx", "onnxruntime"]

import argparse  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")  # read by oneDNN at its first kernel
os.environ.setdefault("GLOG_v", "3")  # MindSpore's WARNING lines off

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Level, write_fixture  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402  (protobuf's backend is chosen at its first import: before mindspore's)
import onnxruntime as ort  # noqa: E402

import mindspore as ms  # noqa: E402
from mindspore import Tensor, nn  # noqa: E402
from mindspore.graph._parse import compile_config  # noqa: E402

# Read once, at the first graph compile of the process: `out += identity` compiles to Add, not InplaceAddExt.
setattr(compile_config, "JIT_ENABLE_AUGASSIGN_INPLACE", "0")

import mindcv  # noqa: E402
from mindcv.models.convnext import ConvNeXt  # noqa: E402
from mindcv.models.efficientnet import EfficientNet, MBConv  # noqa: E402
from mindcv.models.features import FeatureExtractWrapper  # noqa: E402
from mindcv.models.layers.pooling import GlobalAvgPooling  # noqa: E402
from mindcv.models.mobilenetv2 import InvertedResidual, MobileNetV2  # noqa: E402
from mindcv.models.resnet import BasicBlock, Bottleneck, ResNet  # noqa: E402

INPUT_SHAPE = (2, 3, 64, 64)
CALIBRATION_SHAPE = (8, 3, 64, 64)
NUM_CLASSES = 10
MAX_LOGITS_REL = 1e-4
#: range of the gammas of a residual branch's closing BatchNorm (as trained networks and timm's zero_init_last keep
#: them small): with every gamma around 1, float32 rounding grows ~1.3x per block, and the deep levels of
#: resnet50 and efficientnet_b0 differed between ONNX Runtime and MindSpore by 2-3e-5 of their max (4-8e-4 absolute)
RESIDUAL_GAMMA = (0.2, 0.4)


class SlimResNet(ResNet):
    """MindCV's ``ResNet`` with its hard-coded stage widths 64/128/256/512 divided by ``div``.

    ``ResNet.__init__`` line for line with the widths as arguments: the same cells, registered in the same order
    (so MindCV's ``FeatureExtractWrapper`` rebuilds it as it does ResNet), the same parameter names and
    ``feature_info``; ``_make_layer``, ``forward_features``, ``construct`` are MindCV's.
    """

    def __init__(self, block, layers, num_classes=1000, in_channels=3, div=8, norm=None):
        nn.Cell.__init__(self)
        if norm is None:
            norm = nn.BatchNorm2d
        w = [64 // div, 128 // div, 256 // div, 512 // div]
        self.norm = norm
        self.input_channels = w[0]
        self.groups = 1
        self.base_with = 64
        self.conv1 = nn.Conv2d(in_channels, self.input_channels, kernel_size=7, stride=2, pad_mode="pad", padding=3)
        self.bn1 = norm(self.input_channels)
        self.relu = nn.ReLU()
        self.feature_info = [dict(chs=self.input_channels, reduction=2, name="relu")]
        self.max_pool = nn.MaxPool2d(kernel_size=3, stride=2, pad_mode="same")
        self.layer1 = self._make_layer(block, w[0], layers[0])
        self.feature_info.append(dict(chs=block.expansion * w[0], reduction=4, name="layer1"))
        self.layer2 = self._make_layer(block, w[1], layers[1], stride=2)
        self.feature_info.append(dict(chs=block.expansion * w[1], reduction=8, name="layer2"))
        self.layer3 = self._make_layer(block, w[2], layers[2], stride=2)
        self.feature_info.append(dict(chs=block.expansion * w[2], reduction=16, name="layer3"))
        self.layer4 = self._make_layer(block, w[3], layers[3], stride=2)
        self.feature_info.append(dict(chs=block.expansion * w[3], reduction=32, name="layer4"))
        self.pool = GlobalAvgPooling()
        self.num_features = w[3] * block.expansion
        self.classifier = nn.Dense(self.num_features, num_classes)
        self._initialize_weights()


def build(fid: str) -> tuple[nn.Cell, str]:
    """The MindCV model of fixture ``fid`` and how it was built."""
    if fid == "mindspore_mindcv_resnet18":
        return (SlimResNet(BasicBlock, [2, 2, 2, 2], num_classes=NUM_CLASSES, div=8),
                "mindcv.models.resnet.ResNet (resnet18: BasicBlock, layers [2,2,2,2]) with the stage widths "
                "64/128/256/512 divided by 8 (8/16/32/64; SlimResNet: MindCV's ResNet.__init__ with the widths "
                "as arguments, same cells and parameter names), num_classes 10")
    if fid == "mindspore_mindcv_resnet50":
        return (SlimResNet(Bottleneck, [3, 4, 6, 3], num_classes=NUM_CLASSES, div=8),
                "mindcv.models.resnet.ResNet (resnet50: Bottleneck, layers [3,4,6,3]) with the stage widths "
                "64/128/256/512 divided by 8 (outputs 32/64/128/256; SlimResNet: MindCV's ResNet.__init__ with the "
                "widths as arguments, same cells and parameter names), num_classes 10")
    if fid == "mindspore_mindcv_efficientnet_b0":
        return (EfficientNet(arch="efficientnet_b0", dropout_rate=0.2, width_mult=0.125, depth_mult=1.0,
                             num_classes=NUM_CLASSES),
                "mindcv.models.efficientnet.EfficientNet(arch='efficientnet_b0', width_mult=0.125, depth_mult=1.0, "
                "dropout_rate=0.2, num_classes=10) (efficientnet_b0's blocks and depth, width x1/8: at x0.25 the file "
                "alone is 1.35 MiB)")
    if fid == "mindspore_mindcv_convnext_tiny":
        return (ConvNeXt(in_channels=3, num_classes=NUM_CLASSES, depths=[2, 2, 2, 2], dims=[12, 24, 48, 96]),
                "mindcv.models.convnext.ConvNeXt(depths=[2,2,2,2], dims=[12,24,48,96], num_classes=10) "
                "(convnext_tiny's dims divided by 8; depths [3,3,9,3] reduced to [2,2,2,2]: at [3,3,9,3] the file "
                "is 2.1 MiB)")
    if fid == "mindspore_mindcv_mobilenet_v2":
        return (MobileNetV2(alpha=0.35, num_classes=NUM_CLASSES),
                "mindcv.models.mobilenetv2.MobileNetV2(alpha=0.35, num_classes=10)")
    raise SystemExit(f"unknown fixture {fid}")


#: written by default (the committed set, about 4 MiB)
FIXTURES = ["mindspore_mindcv_resnet18", "mindspore_mindcv_resnet50", "mindspore_mindcv_efficientnet_b0",
            "mindspore_mindcv_convnext_tiny"]
#: only with --only: MobileNetV2's last 1x1 conv has 1280 channels for any alpha < 1 (hard-coded), which makes
#: the 0.35 file 1.7 MiB, over the per-file and total budgets
OPTIONAL = ["mindspore_mindcv_mobilenet_v2"]


def _set(param, value: np.ndarray) -> None:
    param.set_data(Tensor(np.asarray(value, np.float32).reshape(param.shape)))


def seed_weights(net: nn.Cell, rng: np.random.Generator) -> None:
    """Seeded random weights that keep every level O(1) (see the module docstring)."""
    for _, cell in net.cells_and_names():
        if isinstance(cell, nn.Conv2d):
            shape = cell.weight.shape
            _set(cell.weight, rng.normal(0.0, np.sqrt(2.0 / np.prod(shape[1:])), shape))
            if cell.bias is not None:
                _set(cell.bias, rng.normal(0.0, 0.1, cell.bias.shape))
        elif isinstance(cell, nn.Dense):
            shape = cell.weight.shape
            _set(cell.weight, rng.normal(0.0, np.sqrt(1.0 / shape[1]), shape))
            if cell.bias is not None:
                _set(cell.bias, rng.normal(0.0, 0.1, cell.bias.shape))
        elif isinstance(cell, (nn.BatchNorm2d, nn.LayerNorm)):
            _set(cell.gamma, rng.uniform(0.6, 1.4, cell.gamma.shape))
            _set(cell.beta, rng.normal(0.0, 0.2, cell.beta.shape))
        if getattr(cell, "gamma_", None) is not None:  # ConvNeXt Block's layer scale
            _set(cell.gamma_, rng.uniform(0.5, 1.0, cell.gamma_.shape))
    for _, cell in net.cells_and_names():  # the BatchNorm closing each residual branch (see RESIDUAL_GAMMA)
        norm = closing_norm(cell)
        if norm is not None:
            _set(norm.gamma, rng.uniform(*RESIDUAL_GAMMA, norm.gamma.shape))


def closing_norm(cell: nn.Cell):
    """The BatchNorm whose output a residual block adds to its shortcut, or None."""
    if isinstance(cell, BasicBlock):
        return cell.bn2
    if isinstance(cell, Bottleneck):
        return cell.bn3
    if isinstance(cell, MBConv) and cell.shortcut:
        return cell.block[len(cell.block) - 1]
    if isinstance(cell, InvertedResidual) and cell.use_res_connect:
        return cell.layers[len(cell.layers) - 1]
    return None


def calibrate_batchnorm(net: nn.Cell, x: np.ndarray) -> int:
    """Set each BatchNorm's moving mean/variance to its input's per-channel mean/variance on ``x``, layer by
    layer (PYNATIVE, one pass: a pre-hook sets the statistics just before the BatchNorm runs); check the
    outputs are then normalised. Returns the number of BatchNorms."""
    norms = [c for _, c in net.cells_and_names() if isinstance(c, nn.BatchNorm2d)]
    if not norms:
        return 0
    seen: dict[int, int] = {}

    def pre(cell, args):
        a = args[0].asnumpy().astype(np.float64)
        _set(cell.moving_mean, a.mean(axis=(0, 2, 3)))
        _set(cell.moving_variance, a.var(axis=(0, 2, 3)))
        seen[id(cell)] = seen.get(id(cell), 0) + 1

    outs: dict[int, np.ndarray] = {}

    def post(cell, args, out):
        outs[id(cell)] = out.asnumpy().astype(np.float64)

    net.set_train(False)
    handles = [bn.register_forward_pre_hook(pre) for bn in norms]
    net(Tensor(x))
    for h in handles:
        h.remove()
    missing = [bn for bn in norms if seen.get(id(bn)) != 1]
    if missing:
        raise SystemExit(f"calibration: {len(missing)} BatchNorms ran {[seen.get(id(b)) for b in missing]} times")
    handles = [bn.register_forward_hook(post) for bn in norms]
    net(Tensor(x))
    for h in handles:
        h.remove()
    for bn in norms:  # each output is gamma * normalised + beta on the calibration batch
        z = (outs[id(bn)] - bn.beta.asnumpy()[None, :, None, None]) / bn.gamma.asnumpy()[None, :, None, None]
        m, v = z.mean(axis=(0, 2, 3)), z.var(axis=(0, 2, 3))
        var = bn.moving_variance.asnumpy().astype(np.float64)
        if np.abs(m).max() > 1e-3 or np.abs(v - var / (var + bn.eps)).max() > 1e-3:
            raise SystemExit(f"calibration did not normalise a BatchNorm: mean {np.abs(m).max():.2e}, "
                             f"var {v.min():.3f}..{v.max():.3f}")
    return len(norms)


def onnx_tensors_holding(model_proto, x, info, values, rtol=1e-4, atol=1e-4) -> dict[str, list[str]]:
    """For each level, the ONNX tensors (node outputs) whose ONNX Runtime value equals MindSpore's within the
    fixture's tolerance: a check that the file is testable at that tolerance (fails loudly otherwise), and a
    record of where each true level sits in the graph. Never the source of a level's value."""
    m = onnx.ModelProto()
    m.CopyFrom(model_proto)
    names = [o for n in m.graph.node for o in n.output if o]
    del m.graph.output[:]
    m.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    got = dict(zip(names, sess.run(names, {sess.get_inputs()[0].name: x})))
    found = {}
    for e, v in zip(info, values):
        hits = [n for n, a in got.items() if a.shape == v.shape and np.allclose(a, v, rtol=rtol, atol=atol)]
        if not hits:
            raise SystemExit(f"level {e['name']}: no tensor of the ONNX file matches MindSpore's value within "
                             f"rtol {rtol} atol {atol}")
        found[e["name"]] = hits
    return found


def make_fixture(fid: str, out: Path, tmp: Path) -> None:
    ms.set_seed(0)
    net, model = build(fid)
    net.set_train(False)
    param_names = [p.name for p in net.get_parameters()]
    seed_weights(net, np.random.default_rng(0))
    x = np.random.default_rng(0).standard_normal(INPUT_SHAPE).astype(np.float32)
    calib = np.random.default_rng(1).standard_normal(CALIBRATION_SHAPE).astype(np.float32)

    ms.set_context(mode=ms.PYNATIVE_MODE)
    n_bn = calibrate_batchnorm(net, calib)

    # MindSpore's own ONNX export, GRAPH_MODE, before the features wrapper takes the cells
    ms.set_context(mode=ms.GRAPH_MODE)
    stem = tmp / fid
    ms.export(net, Tensor(x), file_name=str(stem), file_format="ONNX")
    onnx_file = tmp / f"{fid}.onnx"
    assert [p.name for p in net.get_parameters()] == param_names

    ms.set_context(mode=ms.PYNATIVE_MODE)
    net.set_train(False)
    logits = net(Tensor(x)).asnumpy()
    info = list(net.feature_info)
    feats = FeatureExtractWrapper(net, out_indices=list(range(len(info))))
    feats.set_train(False)
    values = [o.asnumpy() for o in feats(Tensor(x))]
    if len(values) != len(info):
        raise SystemExit(f"{fid}: FeatureExtractWrapper returned {len(values)} levels for {len(info)} entries")

    model_proto = onnx.load(str(onnx_file))
    opset = max((o.version for o in model_proto.opset_import if o.domain in ("", "ai.onnx")), default=None)
    sess = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    got = sess.run(None, {inp.name: x})[0]
    rel = float(np.abs(got - logits).max() / np.abs(logits).max())
    print(f"{fid}: logits ONNX Runtime vs MindSpore max rel {rel:.2e}", flush=True)
    if not rel <= MAX_LOGITS_REL:
        raise SystemExit(f"{fid}: ONNX Runtime logits differ from MindSpore's by {rel:.2e} (> {MAX_LOGITS_REL})")

    level_tensors = onnx_tensors_holding(model_proto, x, info, values)

    last_at_stride = {e["reduction"]: i for i, e in enumerate(info)}
    levels = []
    for i, (e, v) in enumerate(zip(info, values)):
        if v.shape[1] != e["chs"] or v.shape[2] * e["reduction"] != INPUT_SHAPE[2]:
            raise SystemExit(f"{fid}: level {e['name']} has shape {v.shape}, feature_info says {e}")
        levels.append(Level(name=e["name"], stride=int(e["reduction"]), layout="nchw", value=v,
                            layer_names=[e["name"]], strides=last_at_stride[e["reduction"]] == i))
    notes = (
        "mindspore.export(net, x, file_format='ONNX') in GRAPH_MODE (MindSpore 2.10 logs that this form will be "
        "deleted in favour of mindspore.onnx.export), with MindSpore's compile option "
        "mindspore.graph._parse.compile_config.JIT_ENABLE_AUGASSIGN_INPLACE='0' set before the first compile "
        "(otherwise a tensor `x += y`, MindCV's `out += identity`, compiles to InplaceAddExt, which the ONNX "
        "exporter cannot convert) and ONEDNN_MAX_CPU_ISA=AVX2 (speed only). Weights: ms.set_seed(0), conv/dense "
        "re-drawn He-normal from numpy default_rng(0), BN/LN gamma U(0.6,1.4), beta N(0,0.2), the BN closing each "
        f"residual branch gamma U{RESIDUAL_GAMMA} (keeps float32 rounding from growing through the depth)"
        + (", ConvNeXt layer scale U(0.5,1.0)" if "convnext" in fid else "")
        + f"; {n_bn} BatchNorms' moving mean/variance = per-channel mean/variance of their input on a "
        f"calibration batch default_rng(1) {list(CALIBRATION_SHAPE)}, layer by layer (PYNATIVE). Levels: MindCV's "
        "own FeatureExtractWrapper (features_only) over every feature_info entry, wrapped around the same "
        "cells after the export, run in PYNATIVE; strides=True for the last feature_info entry at each stride."
    )
    write_fixture(out, fid, onnx_file, x, levels, framework=f"mindspore=={ms.__version__}, mindcv=={mindcv.__version__}",
                  converter=f"mindspore=={ms.__version__} mindspore.export(file_format='ONNX'), opset {opset}",
                  model=model, input_name=inp.name, input_layout="nchw", notes=notes,
                  extra={"logits_max_rel": rel, "onnx_opset": opset, "level_tensors": level_tensors,
                         "versions": {"mindspore": ms.__version__, "mindcv": mindcv.__version__,
                                      "numpy": np.__version__, "onnx": onnx.__version__,
                                      "onnxruntime": ort.__version__}})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--only", nargs="*", choices=FIXTURES + OPTIONAL,
                        help=f"some fixtures (default: {' '.join(FIXTURES)})")
    args = parser.parse_args()
    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        for fid in args.only or FIXTURES:
            try:
                make_fixture(fid, args.out, Path(tmp))
            except Exception as exc:  # record and go on: the report says why a fixture is missing
                failed.append(fid)
                print(f"{fid}: FAILED: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
    if failed:
        raise SystemExit(f"failed: {failed}")


if __name__ == "__main__":
    main()
