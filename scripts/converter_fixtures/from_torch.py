"""PyTorch fixtures: ``torch.onnx.export`` (the TorchScript-based exporter, ``dynamo=False``, and the
torch.export-based one, ``dynamo=True``) on torchvision's ResNet and Inception3 and on Ultralytics YOLO detectors.

    python3 scripts/make_converter_fixtures.py torch            # from the repository root

Every model is built from code (torchvision's classes, Ultralytics' own yaml through ``DetectionModel``), with
seeded random weights (``torch.manual_seed(0)``) and BatchNorm running statistics measured on a calibration batch
(``np.random.default_rng(1)``, train mode with ``momentum=None``), width-reduced so each file stays small. No hub,
no pretrained weight, no network: Ultralytics runs with ``YOLO_OFFLINE`` and a throw-away settings folder.

The true value of every level is the output of the named module, taken by a forward hook on the very model that
was exported (for YOLO: after ``fuse()`` and with the Detect head in export mode, as ``yolo export format=onnx``
prepares it). ONNX Runtime only checks the exported file's final output against torch's (``logits_max_rel``).
Each fixture's tolerance is ``rtol=1e-4`` and an ``atol`` of ten times the largest float32 rounding error of its
levels, measured by torch against the same model in float64 (``float64_max_abs_err`` in the json), at least 1e-4:
deep in Inception that noise reaches ~1e-4 of the values (ONNX Runtime, which folds BatchNorm into the
convolutions, differs from torch by ~6e-4 at Mixed_7c, whose values reach ~5).

Fixtures (``<id>``: what):

- ``torch_yolov8_legacy``: ``yolov8.yaml``, scale [depth 0.33, width 0.0625, max_channels 512], reg_max=4
  (see REG_MAX), nc=10, 128x128, batch 2, legacy exporter, opset 17. Levels model.2/4/6/9 (stride 4/8/16/32;
  4, 6 and 9 are the backbone layers the neck's Concat layers read), neck model.15/18/21 (the Detect head's
  ``f``); all checked against the built model.
- ``torch_yolov8_dynamo``: the same model, weights and input through ``dynamo=True``, with ``Detect.dynamic``
  set as ``yolo export dynamic=True`` sets it: Detect caches its anchors per input shape, and torch.export,
  guarding on that comparison, would pin the batch ("tracing inferred a static shape of 2 for dimension
  inputs[0].shape[0]"). Batch 2 for every YOLO fixture: torch.export specialises a batch of 1 (the file then
  declares output0's batch as 1).
- ``torch_yolo11_legacy``: ``yolo11.yaml``, scale [0.50, 0.0625, 512], reg_max=4; levels model.2/4/6/10
  (C2PSA), neck model.16/19/22.
- ``torch_resnet_legacy`` / ``torch_resnet_dynamo``: torchvision ResNet(BasicBlock, [2, 2, 2, 2]) (resnet18's
  structure) with every channel count divided by 8, 10 classes, 64x64, batch 2; levels relu/layer1..layer4.
  Same weights and same true values in both.
- ``torch_inception_v3``: torchvision Inception3 with a ``BasicConv2d`` subclass that divides every channel
  count by 8 (``inception_blocks``), ``aux_logits=False``, fc 256 -> 10, 299x299, batch 1; levels
  Conv2d_2b_3x3 (2), Conv2d_4a_3x3 (4), Mixed_5d (8), Mixed_6e (16), Mixed_7c (32). Valid convolutions and
  pools: 299 -> 149 -> 147 -> 73 -> 71 -> 35 -> 17 -> 8.

The dynamo exports pass ``external_data=False``: that exporter's default (``external_data=True``) writes the
weights to a ``.onnx.data`` file beside the model, and a fixture is one file. Everything else is the dynamo
path's default (its own opset, ``optimize=True``); the opset it wrote is in each fixture's json.
"""
from __future__ import annotations

REQUIREMENTS = [
    "torch==2.14.1",
    "torchvision==0.29.1",
    "ultralytics==8.4.190",
    "onnx==1.23.2",
    "onnxruntime==1.32.0",
    "onnxscript==0.7.2",
    "onnx-ir==1.1.0",
    "numpy==2.4.6",
]

import argparse
import atexit
import copy
import functools
import math
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

# Ultralytics: no network check, no auto-install, settings in a throw-away folder (set before its import)
_YOLO_CONFIG = tempfile.mkdtemp(prefix="graphfeat-yolo-settings-")
os.environ.update(YOLO_OFFLINE="1", YOLO_AUTOINSTALL="0", YOLO_VERBOSE="0", YOLO_CONFIG_DIR=_YOLO_CONFIG)
atexit.register(shutil.rmtree, _YOLO_CONFIG, ignore_errors=True)

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from torch import nn  # noqa: E402

from _common import Level, write_fixture  # noqa: E402

#: a fixture fails when the file's final output differs from torch's by more than this (max abs err / max abs value)
MAX_REL = 1e-4
#: YOLO's max_channels (the official scales have 1024 or 512 and 768): 512 gives the stride-32 layers 32 channels
MAX_CH = 512
#: YOLO's reg_max (a key of Ultralytics' model yaml, 16 unless set; YOLO26 sets 1): the Detect head's box branch has
#: 4 * reg_max channels whatever the width, so at 16 that head alone is 70% of the file; 4 keeps the DFL module
REG_MAX = 4
YOLO_SIZE = 128


def versions() -> dict[str, str]:
    import ultralytics
    return {"torch": torch.__version__, "torchvision": torchvision.__version__,
            "ultralytics": ultralytics.__version__, "onnx": onnx.__version__, "onnxruntime": ort.__version__}


# ---------------------------------------------------------------------------------------------- shared steps
def calibrate(model: nn.Module, size: int | tuple[int, int], batches: int = 2, batch: int = 4) -> None:
    """Give every BatchNorm the running statistics of a calibration batch (cumulative mean over the passes)."""
    h, w = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(1)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            model(torch.from_numpy(rng.standard_normal((batch, 3, h, w), dtype=np.float32)))
    model.eval()
    for bn, momentum in zip(bns, momenta):
        bn.momentum = momentum


def inputs(shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(shape, dtype=np.float32)


def run_with_hooks(model: nn.Module, x: np.ndarray, names: list[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The model's output and each named module's output, by forward hooks."""
    modules = dict(model.named_modules())
    seen: dict[str, np.ndarray] = {}
    handles = []
    for name in names:
        def hook(_m, _inp, out, name=name):
            assert name not in seen, f"{name} ran twice in one forward"
            seen[name] = out.detach().cpu().numpy().copy()
        handles.append(modules[name].register_forward_hook(hook))
    try:
        with torch.no_grad():
            y = model(torch.from_numpy(x))
    finally:
        for h in handles:
            h.remove()
    missing = [n for n in names if n not in seen]
    assert not missing, f"hooks never ran: {missing}"
    return y.detach().cpu().numpy(), seen


def float64_errors(model: nn.Module, x: np.ndarray, seen: dict[str, np.ndarray]) -> dict[str, float]:
    """How far each level's float32 value (``seen``) is from the same model's in float64: the rounding noise that
    any float32 runtime's value carries too (ONNX Runtime folds BatchNorm into the convolutions and picks other
    kernels), measured by torch alone."""
    twin = copy.deepcopy(model).double()
    for m in twin.modules():
        if hasattr(m, "anchors") and hasattr(m, "shape"):  # YOLO's Detect: its cached float32 anchors go
            m.shape = None
    names = list(seen)
    _, exact = run_with_hooks(twin, x.astype(np.float64), names)
    return {n: float(np.max(np.abs(seen[n].astype(np.float64) - exact[n]))) for n in names}


def tolerance(errors: dict[str, float]) -> float:
    """The fixture's atol: ten times the largest float32 rounding error of any level, at least 1e-4, rounded up
    to one significant digit."""
    worst = max(1e-4, 10 * max(errors.values()))
    exp = math.floor(math.log10(worst))
    return float(f"{math.ceil(round(worst / 10**exp, 9))}e{exp}")


def export(model: nn.Module, x: np.ndarray, path: Path, *, dynamo: bool, output_name: str) -> None:
    kwargs = dict(input_names=["images"], output_names=[output_name],
                  dynamic_axes={"images": {0: "batch"}, output_name: {0: "batch"}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(model.eval(), (torch.from_numpy(x),), str(path), dynamo=True, external_data=False,
                              **kwargs)
        else:
            torch.onnx.export(model.eval(), (torch.from_numpy(x),), str(path), opset_version=17, dynamo=False,
                              **kwargs)
    onnx.checker.check_model(str(path))


def check_onnx(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    """Run the file on ONNX Runtime; fail unless its output matches torch's (relative to the output's max)."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {"images": x})
    assert got.shape == y.shape, f"{path.name}: ONNX output {got.shape}, torch {y.shape}"
    rel = float(np.max(np.abs(got - y)) / np.max(np.abs(y)))
    if not rel <= MAX_REL:
        raise SystemExit(f"{path.name}: ONNX Runtime's output differs from torch's, max rel {rel:.2e} > {MAX_REL}")
    return rel


def opset_of(path: Path) -> int:
    model = onnx.load(str(path), load_external_data=False)
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def converter(dynamo: bool, path: Path) -> str:
    how = "dynamo=True, external_data=False" if dynamo else "dynamo=False (TorchScript-based)"
    return f"torch.onnx.export (torch=={torch.__version__}), {how}, opset {opset_of(path)}"


# ---------------------------------------------------------------------------------------------- YOLO
def build_yolo(yaml_name: str, depth: float):
    from ultralytics.nn.modules import C2f, Detect
    from ultralytics.nn.tasks import DetectionModel, yaml_model_load

    cfg = yaml_model_load(yaml_name)
    cfg["scales"] = {"t": [depth, 0.0625, MAX_CH]}
    cfg["scale"] = "t"
    cfg["nc"] = 10
    cfg["reg_max"] = REG_MAX
    torch.manual_seed(0)
    model = DetectionModel(cfg, ch=3, nc=10, verbose=False)
    calibrate(model, YOLO_SIZE)
    # what the Exporter does to the model before torch.onnx.export (ultralytics/engine/exporter.py)
    for p in model.parameters():
        p.requires_grad = False
    model.eval().float()
    model = model.fuse(verbose=False)
    for m in model.modules():
        if isinstance(m, Detect):
            m.dynamic = False
            m.export = True
            m.format = "onnx"
            m.max_det = min(m.max_det, sum(int(YOLO_SIZE / s) ** 2 for s in model.stride.tolist()))
            m.xyxy = False
            m.shape = None
        elif isinstance(m, C2f):
            m.forward = m.forward_split
    return cfg, model


def yolo_levels(cfg: dict, model) -> tuple[list[int], list[int]]:
    """Backbone levels (model.2 and the backbone layers the neck's Concat layers read) and the Detect head's inputs,
    read from the built model."""
    n_backbone = len(cfg["backbone"])
    read = sorted({j for m in model.model if type(m).__name__ == "Concat" for j in m.f if 0 <= j < n_backbone})
    return [2, *read], list(model.model[-1].f)


def yolo_fixtures(out: Path, tmp: Path, which: str) -> None:
    import ultralytics

    yaml_name, depth, expect_backbone, expect_neck = {
        "yolov8": ("yolov8.yaml", 0.33, [2, 4, 6, 9], [15, 18, 21]),
        "yolo11": ("yolo11.yaml", 0.50, [2, 4, 6, 10], [16, 19, 22]),
    }[which]
    cfg, model = build_yolo(yaml_name, depth)
    backbone, neck = yolo_levels(cfg, model)
    assert (backbone, neck) == (expect_backbone, expect_neck), (which, backbone, neck)
    x = inputs((2, 3, YOLO_SIZE, YOLO_SIZE))
    names = [f"model.{i}" for i in backbone + neck]
    y, seen = run_with_hooks(model, x, names)
    y2, _ = run_with_hooks(model, x, [])
    assert np.array_equal(y, y2)
    errors = float64_errors(model, x, seen)

    def level(i: int) -> Level:
        v = seen[f"model.{i}"]
        stride = YOLO_SIZE // v.shape[2]
        assert v.shape[2] * stride == YOLO_SIZE and v.shape[3] * stride == YOLO_SIZE
        return Level(f"model.{i}", stride, "nchw", v, [f"model.{i}"], True)

    levels, necks = [level(i) for i in backbone], [level(i) for i in neck]
    assert [lv.stride for lv in levels] == [4, 8, 16, 32] and [lv.stride for lv in necks] == [8, 16, 32]
    model_desc = (f"ultralytics DetectionModel from {yaml_name}, scale [depth {depth}, width 0.0625, max_channels "
                  f"{MAX_CH}], reg_max={REG_MAX}, nc=10, {YOLO_SIZE}x{YOLO_SIZE}, batch 2; fused Conv+BN, Detect in "
                  f"export mode and C2f.forward_split as `yolo export format=onnx` prepares it; seeded random "
                  f"weights, calibrated BatchNorm")
    notes = (f"levels: model.2 and the backbone layers read by the neck's Concat layers ({backbone[1:]}); neck: the "
             f"Detect head's inputs (model.{len(model.model) - 1}.f = {neck}). One output: output0 "
             f"(batch, 4 + 10, anchors), decoded boxes and class scores.")
    for dynamo in ((False, True) if which == "yolov8" else (False,)):
        fid = f"torch_{which}_{'dynamo' if dynamo else 'legacy'}"
        path = tmp / f"{fid}.onnx"
        detect = model.model[-1]
        # Detect caches its anchors per input shape (batch included): torch.export guards on that comparison and
        # pins the batch. Ultralytics' own switch for dynamic exports (`yolo export dynamic=True`) makes them in
        # the graph instead; the TorchScript exporter traces with the cached ones, as `yolo export` does by default.
        detect.dynamic, detect.shape = dynamo, None
        export(model, x, path, dynamo=dynamo, output_name="output0")
        detect.dynamic = False
        rel = check_onnx(path, x, y)
        how = ("Detect.dynamic=True (anchors made in the graph, as `yolo export dynamic=True`)" if dynamo else
               "Detect.dynamic=False (anchors constant, as `yolo export`)")
        write_fixture(out, fid, path, x, levels, neck=necks,
                      framework=f"ultralytics=={ultralytics.__version__}, torch=={torch.__version__}",
                      converter=converter(dynamo, path), model=f"{model_desc}; {how}", input_name="images",
                      input_layout="nchw", notes=notes, rtol=1e-4, atol=tolerance(errors),
                      extra={"logits_max_rel": rel, "float64_max_abs_err": errors, "versions": versions()},
                      same_values_as=f"torch_{which}_legacy" if dynamo else None)


# ---------------------------------------------------------------------------------------------- ResNet
class NarrowResNet(torchvision.models.resnet.ResNet):
    """torchvision's ResNet with every channel count divided by ``div``: the same modules at the same paths
    (conv1, bn1, relu, maxpool, layer1..layer4, avgpool, fc)."""

    def __init__(self, block, layers, num_classes: int = 10, div: int = 8):
        self._div = div
        super().__init__(block, layers, num_classes=num_classes)
        stem = 64 // div
        self.conv1 = nn.Conv2d(3, stem, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.fc = nn.Linear(512 // div * block.expansion, num_classes)
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        if planes == 64:  # the first stage: the stem's width
            self.inplanes = 64 // self._div
        return super()._make_layer(block, planes // self._div, blocks, stride, dilate)


def resnet_fixtures(out: Path, tmp: Path) -> None:
    torch.manual_seed(0)
    model = NarrowResNet(torchvision.models.resnet.BasicBlock, [2, 2, 2, 2])
    calibrate(model, 64)
    x = inputs((2, 3, 64, 64))
    names = ["relu", "layer1", "layer2", "layer3", "layer4"]
    y, seen = run_with_hooks(model, x, names)
    levels = [Level(n, s, "nchw", seen[n], [n], True) for n, s in zip(names, (2, 4, 8, 16, 32))]
    errors = float64_errors(model, x, seen)
    for lv in levels:
        assert lv.value.shape[2] == 64 // lv.stride, (lv.name, lv.value.shape)
    desc = ("torchvision.models.resnet.ResNet(BasicBlock, [2, 2, 2, 2]) (resnet18's structure) with every channel "
            "count divided by 8 (stem 8, layers 8/16/32/64), fc 64 -> 10; 64x64, batch 2; seeded random weights, "
            "calibrated BatchNorm")
    for dynamo in (False, True):
        fid = f"torch_resnet_{'dynamo' if dynamo else 'legacy'}"
        path = tmp / f"{fid}.onnx"
        export(model, x, path, dynamo=dynamo, output_name="logits")
        rel = check_onnx(path, x, y)
        write_fixture(out, fid, path, x, levels,
                      framework=f"torch=={torch.__version__}, torchvision=={torchvision.__version__}",
                      converter=converter(dynamo, path), model=desc, input_name="images", input_layout="nchw",
                      notes="relu is the stem's ReLU (after bn1, before maxpool); the levels are the module outputs.",
                      rtol=1e-4, atol=tolerance(errors),
                      extra={"logits_max_rel": rel, "float64_max_abs_err": errors, "versions": versions()},
                      same_values_as="torch_resnet_legacy" if dynamo else None)


# ---------------------------------------------------------------------------------------------- Inception3
class NarrowBasicConv2d(torchvision.models.inception.BasicConv2d):
    """Inception's conv block with every channel count divided by 8 (the image's 3 channels stay)."""

    def __init__(self, in_channels: int, out_channels: int, **kwargs):
        assert in_channels == 3 or in_channels % 8 == 0, in_channels
        assert out_channels % 8 == 0, out_channels
        super().__init__(in_channels if in_channels == 3 else in_channels // 8, out_channels // 8, **kwargs)


def inception_fixture(out: Path, tmp: Path) -> None:
    from torchvision.models import inception as tvi

    torch.manual_seed(0)
    # Inception3 builds its Inception blocks without passing its conv block on: each block gets it here
    blocks = [NarrowBasicConv2d] + [functools.partial(b, conv_block=NarrowBasicConv2d) for b in (
        tvi.InceptionA, tvi.InceptionB, tvi.InceptionC, tvi.InceptionD, tvi.InceptionE, tvi.InceptionAux)]
    model = tvi.Inception3(num_classes=10, aux_logits=False, transform_input=False, inception_blocks=blocks,
                           init_weights=True)
    model.fc = nn.Linear(2048 // 8, 10)
    calibrate(model, 299, batches=2, batch=4)
    x = inputs((1, 3, 299, 299))
    plan = [("Conv2d_2b_3x3", 2, 147), ("Conv2d_4a_3x3", 4, 71), ("Mixed_5d", 8, 35), ("Mixed_6e", 16, 17),
            ("Mixed_7c", 32, 8)]
    y, seen = run_with_hooks(model, x, [n for n, _, _ in plan])
    levels = []
    for name, stride, hw in plan:
        assert seen[name].shape[2:] == (hw, hw), (name, seen[name].shape)
        levels.append(Level(name, stride, "nchw", seen[name], [name], True))
    errors = float64_errors(model, x, seen)
    path = tmp / "torch_inception_v3.onnx"
    export(model, x, path, dynamo=False, output_name="logits")
    rel = check_onnx(path, x, y)
    desc = ("torchvision.models.inception.Inception3 with inception_blocks' conv block a BasicConv2d subclass that "
            "divides every channel count by 8 (the image's 3 input channels excepted), aux_logits=False, "
            "init_weights=True, fc 256 -> 10; 299x299, batch 1; seeded random weights, calibrated BatchNorm")
    write_fixture(out, "torch_inception_v3", path, x, levels,
                  framework=f"torch=={torch.__version__}, torchvision=={torchvision.__version__}",
                  converter=converter(False, path), model=desc, input_name="images", input_layout="nchw",
                  notes=("valid (unpadded) convolutions and pools: 299 -> 149 -> 147 -> 73 -> 71 -> 35 -> 17 -> 8; "
                         "the strides are the products of the strides on the way (timm's feature convention)."),
                  rtol=1e-4, atol=tolerance(errors),
                  extra={"logits_max_rel": rel, "float64_max_abs_err": errors, "versions": versions()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--only", nargs="*", choices=["yolov8", "yolo11", "resnet", "inception"],
                        help="make only these (default: all)")
    args = parser.parse_args()
    print(versions(), flush=True)
    todo = args.only or ["yolov8", "yolo11", "resnet", "inception"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in todo:
            if name in ("yolov8", "yolo11"):
                yolo_fixtures(args.out, tmp, name)
            elif name == "resnet":
                resnet_fixtures(args.out, tmp)
            else:
                inception_fixture(args.out, tmp)


if __name__ == "__main__":
    sys.exit(main())
