"""PaddlePaddle fixtures, converted by paddle2onnx (``tests/data/converters/paddle2onnx_*``).

    python3 scripts/make_converter_fixtures.py paddle          # from the repository root

Two fixtures, each exported as a user does it: ``paddle.onnx.export(model, prefix,
input_spec=[InputSpec([None, 3, 64, 64], "float32", "x")])`` with its defaults (opset 9 asked, which
paddle2onnx's ``auto_upgrade_opset`` raises where an operator needs it; paddle2onnx's own optimisation,
Polygraphy's constant folding, on). The batch is dynamic; the input is NCHW.

- ``paddle2onnx_resnet50``: ``paddle.vision.models.ResNet(BottleneckBlock, 50)`` (layers [3, 4, 6, 3]) with every
  convolution's channels divided by 8: a subclass whose ``__init__`` is the original's with the stem's 64
  channels made 8 and the stage planes 64/128/256/512 made 8/16/32/64 (stage outputs 32/64/128/256); the
  blocks, ``_make_layer`` and ``forward`` are Paddle's own; 10 classes. Levels by module path: ``relu`` (the
  stem's ReLU, stride 2), ``layer1`` ... ``layer4``.
- ``paddle2onnx_mobilenetv2``: ``paddle.vision.models.mobilenet_v2(scale=0.35, num_classes=10)``, unchanged.
  ``strides=True`` levels after SSDLite's convention: at strides 2, 4, 8 and 16 the ReLU6 output of the 1x1
  expansion (``features.<i>.conv.0``) of the first block whose depthwise convolution has stride 2 (the first
  block of the next stage: features.2, .4, .7, and at stride 16 the first block of the stride-32 stage,
  features.14); at stride 32 the last ConvBNReLU of ``features`` (``features.18``). Every stage's last block
  (``features.1``, ``.3``, ``.6``, ``.10``, ``.13``, ``.16``, ``.17``) is recorded with ``strides=False``.

paddle2onnx keeps no layer names, so ``layer_names`` is empty and each level's ``name`` is the Paddle module
path. Weights are seeded random (``paddle.seed(0)``); every BatchNorm2D's running mean and variance are the
statistics of its input on a calibration batch of 8 images, set layer by layer in one eval-mode pass (a
forward pre-hook on each BatchNorm2D sets them from the input it is about to normalise). The true level
values come from ``register_forward_post_hook`` on the Paddle modules, never from ONNX; the ONNX file's logits
on onnxruntime are checked against Paddle's (``logits_max_rel`` in the json). Each fixture's ``atol`` is four
times its float32 levels' distance from the same model run in float64 (``float32_noise`` in the json), rounded
up, and at least 1e-4 (``rtol`` 1e-4): the ResNet-50's 16 blocks put its float32 levels 2.4e-4 from float64
(values up to ~10), so its atol is 1e-3.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

REQUIREMENTS = [
    "paddlepaddle==3.3.1",
    "paddle2onnx==2.1.0",
    "onnx==1.17.0",
    "onnxruntime==1.22.0",
    "polygraphy==0.53.6",
    "onnxoptimizer==0.3.13",
    "onnx-graphsurgeon==0.6.1",  # Polygraphy's constant folding needs it (else it pip-installs it at run time)
    "numpy==2.4.6",
    "protobuf==7.36.2",
]

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from _common import Level, check_logits, run_onnx, tolerance, write_fixture  # noqa: E402

SIZE = 64
BATCH = 2
CALIB = 8
CLASSES = 10


def _versions() -> tuple[str, str]:
    import paddle
    import paddle2onnx
    return (f"paddlepaddle=={paddle.__version__}",
            f"paddle2onnx=={paddle2onnx.__version__} (paddle.onnx.export defaults: opset_version=9 with "
            f"auto_upgrade_opset, optimisation on; InputSpec([None, 3, {SIZE}, {SIZE}], 'float32', 'x'))")


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, 3, SIZE, SIZE)).astype(np.float32)
    calib = rng.standard_normal((CALIB, 3, SIZE, SIZE)).astype(np.float32)
    return x, calib


def calibrate(model, calib: np.ndarray) -> int:
    """Set every BatchNorm2D's running statistics to those of its input on ``calib``, layer by layer: in one
    eval-mode pass a pre-hook on each BatchNorm2D sets them from the input it is about to normalise (which
    the BatchNorms before it already normalise with their own calibrated statistics)."""
    import paddle

    def pre_hook(layer, inputs):
        t = inputs[0]
        layer._mean.set_value(paddle.mean(t, axis=[0, 2, 3]))
        layer._variance.set_value(paddle.var(t, axis=[0, 2, 3], unbiased=False))

    bns = [m for m in model.sublayers() if isinstance(m, paddle.nn.BatchNorm2D)]
    handles = [m.register_forward_pre_hook(pre_hook) for m in bns]
    model.eval()
    with paddle.no_grad():
        model(paddle.to_tensor(calib))
    for h in handles:
        h.remove()
    return len(bns)


def paddle_fixture(out: Path, fid: str, model, description: str, levels: list[tuple[str, int, bool]],
                   notes: str = "") -> None:
    """Calibrate ``model``, record each level ``(module path, stride, strides)`` with a forward post hook,
    export with ``paddle.onnx.export`` (defaults), check the logits on onnxruntime, write the fixture."""
    import paddle
    from paddle.static import InputSpec

    x, calib = _data()
    nbn = calibrate(model, calib)
    model.eval()
    layers = dict(model.named_sublayers())
    seen: dict[str, np.ndarray] = {}

    def hook_for(name):
        def hook(layer, inputs, output):
            seen[name] = output.numpy().copy()
        return hook

    def record(inputs: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        seen.clear()
        handles = [layers[name].register_forward_post_hook(hook_for(name)) for name, _, _ in levels]
        with paddle.no_grad():
            result = model(paddle.to_tensor(inputs)).numpy()
        for h in handles:
            h.remove()
        return result, dict(seen)

    logits, values = record(x)
    for name, stride, _ in levels:
        v = values[name]
        assert v.shape[0] == BATCH and v.shape[2] == SIZE // stride and v.shape[3] == SIZE // stride, (name, v.shape)

    with tempfile.TemporaryDirectory() as tmp:
        prefix = Path(tmp) / fid
        paddle.onnx.export(model, str(prefix), input_spec=[InputSpec([None, 3, SIZE, SIZE], "float32", "x")])
        path = prefix.with_suffix(".onnx")
        if not path.exists():  # paddle2onnx logs its errors and returns
            raise SystemExit(f"{fid}: paddle.onnx.export wrote no file (see paddle2onnx's log above)")
        input_name, outs = run_onnx(path, x)
        rel = check_logits(fid, outs[0], logits)
        framework, converter = _versions()
        # the same model in float64: the float32 levels' own rounding noise sets the tolerance
        model.to(dtype="float64")
        _, values64 = record(x.astype(np.float64))
        assert all(v.dtype == np.float64 for v in values64.values())
        noise = max(float(np.max(np.abs(values[name] - values64[name]))) for name, _, _ in levels)
        atol = tolerance(noise)
        print(f"{fid}: float32 noise (levels vs float64) {noise:.2e}: atol {atol:g}")
        write_fixture(
            out, fid, path, x,
            [Level(name, stride, "nchw", values[name], [], strides) for name, stride, strides in levels],
            framework=framework, converter=converter, model=description, input_name=input_name,
            input_layout="nchw", rtol=1e-4, atol=atol,
            notes=(f"seeded random weights (paddle.seed(0)); {nbn} BatchNorm2D layers calibrated layer by layer "
                   f"on {CALIB} images (rng 0); true levels from register_forward_post_hook on the module paths "
                   f"named; paddle2onnx keeps no layer names, so layer_names is empty; atol is 4x the levels' "
                   f"float32 noise against the same model in float64 (float32_noise), at least 1e-4. {notes}").strip(),
            extra={"logits_max_rel": rel, "float32_noise": noise},
        )


def resnet50_div8():
    """``paddle.vision.models.ResNet(BottleneckBlock, 50)`` with every convolution's channels divided by 8."""
    from paddle import nn
    from paddle.vision.models.resnet import BottleneckBlock, ResNet

    class ResNetDiv8(ResNet):
        """Paddle's ResNet ``__init__`` with 64 -> 8 in the stem and 64/128/256/512 -> 8/16/32/64 in the stages
        (so bottleneck widths 8..64, outputs 32..256); everything else is the original's."""

        def __init__(self, block=BottleneckBlock, depth=50, width=64, num_classes=1000, with_pool=True, groups=1):
            nn.Layer.__init__(self)
            layers = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3],
                      152: [3, 8, 36, 3]}[depth]
            self.groups = groups
            self.base_width = width
            self.num_classes = num_classes
            self.with_pool = with_pool
            self._norm_layer = nn.BatchNorm2D
            self.inplanes = 64 // 8
            self.dilation = 1
            self.conv1 = nn.Conv2D(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias_attr=False)
            self.bn1 = self._norm_layer(self.inplanes)
            self.relu = nn.ReLU()
            self.maxpool = nn.MaxPool2D(kernel_size=3, stride=2, padding=1)
            self.layer1 = self._make_layer(block, 64 // 8, layers[0])
            self.layer2 = self._make_layer(block, 128 // 8, layers[1], stride=2)
            self.layer3 = self._make_layer(block, 256 // 8, layers[2], stride=2)
            self.layer4 = self._make_layer(block, 512 // 8, layers[3], stride=2)
            if with_pool:
                self.avgpool = nn.AdaptiveAvgPool2D((1, 1))
            if num_classes > 0:
                self.fc = nn.Linear(512 // 8 * block.expansion, num_classes)

    return ResNetDiv8(BottleneckBlock, 50, num_classes=CLASSES)


def resnet50(out: Path) -> None:
    import paddle
    paddle.seed(0)
    model = resnet50_div8()
    paddle_fixture(
        out, "paddle2onnx_resnet50", model,
        "paddle.vision.models.ResNet(BottleneckBlock, 50) (layers [3, 4, 6, 3]) with every conv's channels "
        "divided by 8 (stem 8, planes 8/16/32/64, stage outputs 32/64/128/256), Paddle's own BottleneckBlock, "
        "_make_layer and forward; num_classes=10; input 64x64 NCHW",
        [("relu", 2, True), ("layer1", 4, True), ("layer2", 8, True), ("layer3", 16, True), ("layer4", 32, True)],
        notes="relu is the model's own nn.ReLU, called once, in the stem (the blocks have their own).")


def mobilenetv2(out: Path) -> None:
    import paddle
    paddle.seed(0)
    model = paddle.vision.models.mobilenet_v2(scale=0.35, num_classes=CLASSES)
    paddle_fixture(
        out, "paddle2onnx_mobilenetv2", model,
        "paddle.vision.models.mobilenet_v2(scale=0.35, num_classes=10), unchanged; input 64x64 NCHW",
        [("features.2.conv.0", 2, True), ("features.4.conv.0", 4, True), ("features.7.conv.0", 8, True),
         ("features.14.conv.0", 16, True), ("features.18", 32, True),
         ("features.1", 2, False), ("features.3", 4, False), ("features.6", 8, False), ("features.10", 16, False),
         ("features.13", 16, False), ("features.16", 32, False), ("features.17", 32, False)],
        notes="strides=True after SSDLite: the ReLU6 output of the 1x1 expansion ConvBNReLU (features.<i>.conv.0) "
              "of the first block of the next stride (features.14.conv.0 at stride 16: the stride-32 stage's "
              "first block), and features.18 (the last ConvBNReLU) at stride 32; each stage's last block output "
              "with strides=False.")


FIXTURES = {
    "paddle2onnx_resnet50": resnet50,
    "paddle2onnx_mobilenetv2": mobilenetv2,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--only", nargs="*", choices=list(FIXTURES), help="some fixtures only (default: all)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for fid in args.only or FIXTURES:
        FIXTURES[fid](args.out)


if __name__ == "__main__":
    main()
