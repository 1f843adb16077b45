"""TensorFlow / Keras fixtures, converted by tf2onnx (``tests/data/converters/tf2onnx_*``).

    python3 scripts/make_converter_fixtures.py tensorflow          # from the repository root

Four fixtures, each exported with tf2onnx's defaults for a user (no opset given, so tf2onnx 1.17's default
opset 15; the NHWC input as Keras and ``tf.nn`` have it, no ``inputs_as_nchw``).

Keras 3: ``tf2onnx.convert.from_keras`` 1.17 cannot convert a Keras 3 functional model: it traces the model
as a ``tf.function`` (its own fallback for TF >= 2.16) and then fails looking the model's output name up
(``KeyError: 'predictions'``, tf2onnx issue #2448). So the ResNet and DenseNet fixtures give
``tf2onnx.convert.from_function`` the very ``tf.function`` that ``from_keras`` builds (``model(x,
training=False)``, signature from ``model.inputs``): ONNX names such as ``resnet_1/conv2_block2_out_1/Relu:0``.
The MobileNetV2 fixture takes Keras 3's own serving export instead (``model.export(dir)``, a SavedModel) and
tf2onnx's command line (``python -m tf2onnx.convert --saved-model dir``): names such as
``StatefulPartitionedCall/mobilenetv2_0.35_64_1/block_1_expand_relu_1/Relu6:0``.

- ``tf2onnx_keras_resnet``: Keras Applications' own ResNet v1 builder (``keras.src.applications.resnet.ResNet``
  with ``stack_residual_blocks_v1``: bottleneck blocks, Keras's own layer names), stage filters 8/16/32/64
  (outputs 32/64/128/256 channels) and 2 blocks per stage instead of 64/128/256/512 and 3/4/6/3; the stem
  (conv1, 64 filters, 7x7/2) is the builder's, unchanged; 10 classes.
- ``tf2onnx_keras_mobilenetv2``: ``keras.applications.MobileNetV2(alpha=0.35, weights=None, classes=10)``,
  unchanged apart from the 10 classes. Levels after the Keras segmentation tutorial (expansion ReLUs and
  ``out_relu``); the stage outputs (``block_2_add`` ...) are recorded as well, with ``strides=False``.
- ``tf2onnx_keras_densenet``: Keras's own DenseNet builder with ``blocks=[1, 1, 1, 1]`` (growth rate 32 and the
  64-filter stem as the builder has them; ``[2, 2, 2, 2]`` made a 1.7 MB file), 10 classes.
- ``tf2onnx_tf_function``: a plain ``tf.function`` (no Keras) CNN of ``tf.nn`` ops: a stem and four residual
  stages, each inside ``tf.name_scope("stem")``, ``"stage1"`` ... ``"stage4"``, converted with
  ``tf2onnx.convert.from_function``; the level of a scope is the value its block returns.

Every Keras model has ``classifier_activation=None`` (the classifier's output is the logits). Weights are
seeded random (``keras.utils.set_random_seed(0)``); every BatchNormalization's moving mean and variance are
the statistics of its input on a calibration batch of 8 images (one training-mode pass with momentum 0,
which makes each moving statistic exactly that batch's, every layer seeing its input as inference will
give it). The true level values come from Keras sub-models (``keras.Model(model.inputs,
model.get_layer(name).output)``) or from the eager TensorFlow forward pass, never from ONNX; the ONNX file's
logits on onnxruntime are checked against Keras's (``logits_max_rel`` in the json). Each fixture's ``atol`` is
four times its float32 levels' distance from the same model run in float64 (``float32_noise`` in the json),
rounded up, and at least 1e-4 (``rtol`` 1e-4): the rounding noise any float32 runtime has on its own.

What the converter does to the names (for ``--layers`` users): tf2onnx folds a BatchNormalization that follows
a convolution into that convolution, and the fused output takes an anonymous name (``Conv__571:0``): so
``block_16_project_BN`` (a strides=False level of the MobileNetV2 fixture) has no tensor named after it,
while ``block_2_add`` and the ReLUs keep theirs; a depthwise convolution's BN is not folded (Mul + Add).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

REQUIREMENTS = [
    "tensorflow-cpu==2.19.0",
    "keras==3.10.0",
    "tf2onnx==1.17.0",
    "onnx==1.17.0",
    "onnxruntime==1.22.0",
    "numpy==2.1.3",
    "protobuf==5.29.4",
]

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from _common import Level, check_logits, run_onnx, tolerance, write_fixture  # noqa: E402

SIZE = 64
BATCH = 2
CALIB = 8
CLASSES = 10


def _versions() -> tuple[str, str]:
    import keras
    import tensorflow as tf
    import tf2onnx
    return (f"tensorflow-cpu=={tf.__version__}, keras=={keras.__version__}",
            f"tf2onnx=={tf2onnx.__version__} (defaults: opset {tf2onnx.constants.PREFERRED_OPSET}, NHWC input)")


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, SIZE, SIZE, 3)).astype(np.float32)
    calib = rng.standard_normal((CALIB, SIZE, SIZE, 3)).astype(np.float32)
    return x, calib


def calibrate_keras(model, calib: np.ndarray) -> int:
    """Set every BatchNormalization's moving statistics to those of its input on ``calib``: one training-mode
    pass with momentum 0 (each layer then normalises with the batch's statistics, which are exactly the moving
    ones it keeps, so every layer sees the input inference will give it)."""
    import keras
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [layer.momentum for layer in bns]
    for layer in bns:
        layer.momentum = 0.0
    model(calib, training=True)
    for layer, m in zip(bns, saved):
        layer.momentum = m
    return len(bns)


def keras_fixture(out: Path, fid: str, build, description: str, levels: list[tuple[str, int, bool]],
                  notes: str = "", route: str = "function") -> None:
    """Build the model (``build()``, seeded), calibrate it, compute each level ``(layer name, stride,
    strides)`` with a Keras sub-model, convert it with tf2onnx, check the logits, and write the fixture."""
    import keras
    import tensorflow as tf
    import tf2onnx

    keras.backend.clear_session()  # fresh name counters: the same names whichever fixtures run first
    keras.utils.set_random_seed(0)
    model = build()
    x, calib = _data()
    nbn = calibrate_keras(model, calib)
    logits = np.asarray(model(x, training=False))
    sub = keras.Model(model.inputs, [model.get_layer(name).output for name, _, _ in levels])
    values = [np.asarray(v) for v in sub(x, training=False)]
    for (name, stride, _), v in zip(levels, values):
        assert v.shape[1] == SIZE // stride and v.shape[2] == SIZE // stride, (name, stride, v.shape)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{fid}.onnx"
        framework, converter = _versions()
        if route == "saved_model":
            # Keras 3's own export for serving, then tf2onnx's command line on the SavedModel
            model.export(str(Path(tmp) / "saved_model"))
            subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(Path(tmp) / "saved_model"),
                            "--output", str(path)], check=True)
            converter += "; model.export() SavedModel -> python -m tf2onnx.convert --saved-model"
        else:
            # what tf2onnx.convert.from_keras does itself on TF >= 2.16 (a tf.function calling the model with
            # training=False, signature from model.inputs), given to from_function: from_keras's own call then
            # fails on Keras 3 looking up the model's output name (tf2onnx issue #2448, KeyError 'predictions')
            spec = [tf.TensorSpec(i.shape, i.dtype, name=i.name) for i in model.inputs]

            @tf.function(input_signature=spec)
            def model_fn(*args):
                return model(*args, training=False)

            tf2onnx.convert.from_function(model_fn, input_signature=spec, output_path=str(path))
            converter += "; tf2onnx.convert.from_function(tf.function(model(x, training=False)))"
        input_name, outs = run_onnx(path, x)
        rel = check_logits(fid, outs[0], logits)

        # the same model and weights in float64: the float32 levels' own rounding noise sets the tolerance
        keras.config.set_floatx("float64")
        keras.config.set_dtype_policy("float64")
        try:
            twin = build()
        finally:
            keras.config.set_dtype_policy("float32")
            keras.config.set_floatx("float32")
        assert all(w.dtype == "float64" for w in twin.weights), "the float64 twin has float32 weights"
        twin.set_weights([np.asarray(w, np.float64) for w in model.get_weights()])
        sub64 = keras.Model(twin.inputs, [twin.get_layer(name).output for name, _, _ in levels])
        values64 = [np.asarray(v) for v in sub64(x.astype(np.float64), training=False)]
        assert all(v.dtype == np.float64 for v in values64)
        noise = max(float(np.max(np.abs(v - v64))) for v, v64 in zip(values, values64))
        atol = tolerance(noise)
        print(f"{fid}: float32 noise (levels vs float64) {noise:.2e}: atol {atol:g}")
        write_fixture(
            out, fid, path, x,
            [Level(name, stride, "nhwc", v, [name], strides) for (name, stride, strides), v in zip(levels, values)],
            framework=framework, converter=converter, model=description, input_name=input_name,
            input_layout="nhwc", rtol=1e-4, atol=atol,
            notes=(f"seeded random weights; {nbn} BatchNormalization layers calibrated on {CALIB} images "
                   f"(rng 0); true levels from Keras sub-models (float32); atol is 4x the levels' float32 "
                   f"noise against the same model in float64 (float32_noise), at least 1e-4. {notes}").strip(),
            extra={"logits_max_rel": rel, "float32_noise": noise},
        )


def keras_resnet(out: Path) -> None:
    from keras.src.applications.resnet import ResNet, stack_residual_blocks_v1

    def stack_fn(x):
        x = stack_residual_blocks_v1(x, 8, 2, stride1=1, name="conv2")
        x = stack_residual_blocks_v1(x, 16, 2, name="conv3")
        x = stack_residual_blocks_v1(x, 32, 2, name="conv4")
        return stack_residual_blocks_v1(x, 64, 2, name="conv5")

    def build():
        return ResNet(stack_fn, False, True, include_top=True, weights=None, input_shape=(SIZE, SIZE, 3),
                      classes=CLASSES, classifier_activation=None, name="resnet")

    keras_fixture(
        out, "tf2onnx_keras_resnet", build,
        "Keras Applications ResNet v1 (keras.src.applications.resnet.ResNet + stack_residual_blocks_v1, "
        "bottleneck), stage filters 8/16/32/64 (outputs 32/64/128/256), 2 blocks per stage, stem as the "
        "builder has it (conv1 64 filters 7x7/2), 10 classes, classifier_activation=None, input 64x64x3",
        [("conv1_relu", 2, True), ("conv2_block2_out", 4, True), ("conv3_block2_out", 8, True),
         ("conv4_block2_out", 16, True), ("conv5_block2_out", 32, True)])


def keras_mobilenetv2(out: Path) -> None:
    import keras

    def build():
        return keras.applications.MobileNetV2(input_shape=(SIZE, SIZE, 3), alpha=0.35, weights=None,
                                              classes=CLASSES, classifier_activation=None)

    keras_fixture(
        out, "tf2onnx_keras_mobilenetv2", build,
        "keras.applications.MobileNetV2(alpha=0.35, weights=None, input_shape=(64, 64, 3), classes=10, "
        "classifier_activation=None)",
        [("block_1_expand_relu", 2, True), ("block_3_expand_relu", 4, True), ("block_6_expand_relu", 8, True),
         ("block_13_expand_relu", 16, True), ("out_relu", 32, True),
         ("block_2_add", 4, False), ("block_5_add", 8, False), ("block_12_add", 16, False),
         ("block_16_project_BN", 32, False)],
        notes="strides=True levels follow the Keras segmentation tutorial (the expansion ReLU of the first "
              "block of the next stride, and out_relu); the stage outputs are recorded with strides=False. "
              "Converted through a SavedModel (model.export, then tf2onnx's command line), so the ONNX names "
              "carry a 'StatefulPartitionedCall/' prefix.",
        route="saved_model")


def keras_densenet(out: Path) -> None:
    from keras.src.applications.densenet import DenseNet

    def build():
        return DenseNet([1, 1, 1, 1], include_top=True, weights=None, input_shape=(SIZE, SIZE, 3),
                        classes=CLASSES, classifier_activation=None, name="densenet")

    keras_fixture(
        out, "tf2onnx_keras_densenet", build,
        "Keras Applications DenseNet (keras.src.applications.densenet.DenseNet) with blocks=[1, 1, 1, 1] "
        "(growth rate 32, stem 64 filters, as the builder has them), 10 classes, classifier_activation=None, "
        "input 64x64x3",
        [("conv1_relu", 2, True), ("pool2_conv", 4, True), ("pool3_conv", 8, True), ("pool4_conv", 16, True),
         ("relu", 32, True), ("pool2_relu", 4, False), ("pool3_relu", 8, False), ("pool4_relu", 16, False)],
        notes="strides=True: the deepest tensor at each stride before the stride changes (a transition's "
              "1x1 conv, before its average pool); the transitions' ReLUs are recorded with strides=False.")


def tf_function(out: Path) -> None:
    """A CNN of plain tf.nn ops in a tf.function, each block in a name scope."""
    import tensorflow as tf
    import tf2onnx

    fid = "tf2onnx_tf_function"
    rng = np.random.default_rng(0)
    x, calib = _data()
    # no level with as many channels as rows (C == H == W): its layout could not be told from its shape
    widths = {"stem": 8, "stage1": 12, "stage2": 16, "stage3": 24, "stage4": 32}

    def conv_w(k: int, cin: int, cout: int) -> tf.Variable:
        return tf.Variable((rng.standard_normal((k, k, cin, cout)) * np.sqrt(2.0 / (k * k * cin))).astype(np.float32))

    params: dict[str, dict] = {}
    cin = 3
    for scope, c in widths.items():
        p = {"w1": conv_w(3, cin, c)}
        if scope != "stem":
            p["w2"] = conv_w(3, c, c)
            p["wp"] = conv_w(1, cin, c)
        for bn in ("bn1", "bn2", "bnp") if scope != "stem" else ("bn1",):
            p[bn] = {"gamma": tf.Variable(rng.uniform(0.5, 1.5, c).astype(np.float32)),
                     "beta": tf.Variable(rng.uniform(-0.2, 0.2, c).astype(np.float32)),
                     "mean": tf.Variable(np.zeros(c, np.float32)), "var": tf.Variable(np.ones(c, np.float32))}
        params[scope] = p
        cin = c
    fc_w = tf.Variable((rng.standard_normal((cin, CLASSES)) / np.sqrt(cin)).astype(np.float32))
    fc_b = tf.Variable(np.zeros(CLASSES, np.float32))

    calibrating = {"on": False}

    def bn(t, s):
        if calibrating["on"]:  # eager, on the calibration batch: keep the input's own statistics
            m, v = tf.nn.moments(t, axes=[0, 1, 2])
            s["mean"].assign(m)
            s["var"].assign(v)
        return tf.nn.batch_normalization(t, s["mean"], s["var"], s["beta"], s["gamma"], 1e-5)

    def forward(t, params=params, fc_w=fc_w, fc_b=fc_b):
        feats = {}
        with tf.name_scope("stem"):
            p = params["stem"]
            t = tf.nn.relu(bn(tf.nn.conv2d(t, p["w1"], 2, "SAME"), p["bn1"]))
            feats["stem"] = t
        for scope in ("stage1", "stage2", "stage3", "stage4"):
            with tf.name_scope(scope):
                p = params[scope]
                y = tf.nn.relu(bn(tf.nn.conv2d(t, p["w1"], 2, "SAME"), p["bn1"]))
                y = bn(tf.nn.conv2d(y, p["w2"], 1, "SAME"), p["bn2"])
                shortcut = bn(tf.nn.conv2d(t, p["wp"], 2, "SAME"), p["bnp"])
                t = tf.nn.relu(tf.add(y, shortcut))
                feats[scope] = t
        with tf.name_scope("head"):
            logits = tf.matmul(tf.reduce_mean(t, axis=[1, 2]), fc_w) + fc_b
        return logits, feats

    calibrating["on"] = True
    forward(tf.constant(calib))
    calibrating["on"] = False

    @tf.function
    def tiny_cnn(images):
        return forward(images)[0]

    logits, feats = forward(tf.constant(x))  # eager TensorFlow: the true values
    logits = np.asarray(logits)
    assert np.allclose(np.asarray(tiny_cnn(tf.constant(x))), logits, rtol=1e-5, atol=1e-5)
    strides = {"stem": 2, "stage1": 4, "stage2": 8, "stage3": 16, "stage4": 32}
    levels = [Level(k, strides[k], "nhwc", np.asarray(v), [k], True) for k, v in feats.items()]
    for lv in levels:
        assert lv.value.shape[1] == SIZE // lv.stride, (lv.name, lv.value.shape)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{fid}.onnx"
        tf2onnx.convert.from_function(
            tiny_cnn, input_signature=[tf.TensorSpec((None, SIZE, SIZE, 3), tf.float32, name="images")],
            output_path=str(path))
        input_name, outs = run_onnx(path, x)
        rel = check_logits(fid, outs[0], logits)
        framework, converter = _versions()
        # the same weights in float64: the float32 levels' own rounding noise sets the tolerance
        params64 = tf.nest.map_structure(lambda v: tf.constant(v.numpy().astype(np.float64)), params)
        _, feats64 = forward(tf.constant(x.astype(np.float64)), params64,
                             tf.constant(fc_w.numpy().astype(np.float64)), tf.constant(fc_b.numpy().astype(np.float64)))
        noise = max(float(np.max(np.abs(lv.value - np.asarray(feats64[lv.name])))) for lv in levels)
        atol = tolerance(noise)
        print(f"{fid}: float32 noise (levels vs float64) {noise:.2e}: atol {atol:g}")
        write_fixture(
            out, fid, path, x, levels, framework=framework, converter=converter, rtol=1e-4, atol=atol,
            model="plain tf.function CNN of tf.nn ops (no Keras): stem conv3x3/2 8 + batch norm "
                  "(tf.nn.batch_normalization) + relu in name scope 'stem'; stage1..stage4 (12/16/24/32 "
                  "channels) each a residual block (conv3x3/2-bn-relu, conv3x3-bn, 1x1/2 conv-bn shortcut, "
                  "add, relu) in tf.name_scope('stageN'); mean pool + matmul to 10 logits in 'head'; "
                  "input 64x64x3 NHWC",
            input_name=input_name, input_layout="nhwc",
            notes="seeded random weights (numpy rng 0); batch-norm statistics measured on a calibration batch "
                  f"of {CALIB} images, layer by layer in the eager pass; true levels from the eager TensorFlow "
                  "forward pass (the value each name scope's block returns); atol is 4x the levels' float32 "
                  "noise against the same weights in float64 (float32_noise), at least 1e-4.",
            extra={"logits_max_rel": rel, "float32_noise": noise},
        )


FIXTURES = {
    "tf2onnx_keras_resnet": keras_resnet,
    "tf2onnx_keras_mobilenetv2": keras_mobilenetv2,
    "tf2onnx_keras_densenet": keras_densenet,
    "tf2onnx_tf_function": tf_function,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--only", nargs="*", choices=list(FIXTURES), help="some fixtures only (default: all)")
    args = parser.parse_args()
    for fid in args.only or FIXTURES:
        FIXTURES[fid](args.out)


if __name__ == "__main__":
    main()
