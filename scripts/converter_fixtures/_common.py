"""What every converter-fixture script writes, and how: numpy and the standard library only.

Each framework script runs in its own virtual environment (TensorFlow, PaddlePaddle, torch and MindSpore
disagree on numpy), so this module imports nothing else. One fixture is three files in the output folder:

- ``<id>.onnx``: the converter's output, as the converter wrote it;
- ``<id>.npz``: ``input`` (the array fed to the ONNX input, in that input's layout) and one array per
  level, ``level.<name>`` for backbone levels and ``neck.<name>`` for the tensors a detector's heads
  consume, each as the *framework itself* computed it (Keras sub-models, forward hooks), never graphfeat;
- ``<id>.json``: what the file is and what the right answers are (see :func:`write_fixture`).

Weights are seeded random; each script gives its BatchNorm layers running statistics measured on a
calibration batch, so that activations keep their scale through the depth and every level carries signal,
as a trained network's do.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

#: no fixture file may exceed this (the repository commits no large binaries)
MAX_BYTES = 8 * 1024 * 1024
#: the converter's file must compute the framework's logits to this relative error (max abs / max abs)
MAX_REL = 1e-4


@dataclass
class Level:
    """One level the framework defines, with its true value.

    ``name``: the framework's own name (``conv2_block3_out``, ``model.4``, ``layer1``);
    ``stride``: the true stride (product of the strides on the way, not the size ratio);
    ``layout``: ``nchw`` or ``nhwc``, the layout of ``value``;
    ``layer_names``: every name a user of that framework would type for it (for ``cut --layers``);
    empty when the converter keeps no names (paddle2onnx);
    ``strides``: True when ``cut --strides`` must return exactly this tensor at this stride.
    """

    name: str
    stride: int
    layout: str
    value: np.ndarray
    layer_names: list[str] = field(default_factory=list)
    strides: bool = True


def signal(a: np.ndarray) -> float:
    """Standard deviation: a level must carry signal (not near-zero, not constant)."""
    return float(np.std(a.astype(np.float64)))


def write_fixture(out: str | os.PathLike, fid: str, onnx_file: str | os.PathLike, inputs: np.ndarray,
                  levels: list[Level], *, neck: list[Level] = (), framework: str, converter: str,
                  model: str, input_name: str, input_layout: str, rtol: float = 1e-4, atol: float = 1e-4,
                  notes: str = "", extra: dict | None = None, same_values_as: str | None = None) -> Path:
    """Write ``<id>.onnx``, ``<id>.npz`` and ``<id>.json`` into ``out``; refuse a level without signal and
    a file over :data:`MAX_BYTES`.

    ``framework``/``converter``: ``name==version`` (and options, such as the opset); ``model``: what was
    built, including any width or depth reduction; ``rtol``/``atol``: the tolerance a level's ONNX value
    must meet against the framework's. ``same_values_as``: the id of a fixture written before from the same
    model, weights and input (another exporter's file): its ``.npz`` is checked equal and shared, not repeated.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = Path(onnx_file).read_bytes()
    if len(data) > MAX_BYTES:
        raise SystemExit(f"{fid}: the ONNX file has {len(data) / 2**20:.1f} MiB; reduce the model's width")
    arrays = {"input": np.asarray(inputs, np.float32)}
    for prefix, group in (("level", levels), ("neck", neck)):
        for lv in group:
            if signal(lv.value) < 1e-3:
                raise SystemExit(f"{fid}: level {lv.name} carries no signal (std {signal(lv.value):.2e})")
            arrays[f"{prefix}.{lv.name}"] = np.asarray(lv.value, np.float32)
    (out / f"{fid}.onnx").write_bytes(data)
    if same_values_as is None:
        np.savez_compressed(out / f"{fid}.npz", **arrays)
    else:
        with np.load(out / f"{same_values_as}.npz") as shared:
            if set(shared.files) != set(arrays) or any(not np.array_equal(shared[k], v) for k, v in arrays.items()):
                raise SystemExit(f"{fid}: its values differ from {same_values_as}'s, so they cannot be shared")
        (out / f"{fid}.npz").unlink(missing_ok=True)
        extra = {**(extra or {}), "values": same_values_as}

    def describe(lv: Level) -> dict:
        d = asdict(lv)
        del d["value"]
        d["shape"] = list(lv.value.shape)
        return d

    record = {
        "id": fid, "framework": framework, "converter": converter, "model": model,
        "input": {"name": input_name, "layout": input_layout, "shape": list(arrays["input"].shape)},
        "levels": [describe(lv) for lv in levels], "neck": [describe(lv) for lv in neck],
        "tolerance": {"rtol": rtol, "atol": atol}, "notes": notes, **(extra or {}),
    }
    (out / f"{fid}.json").write_text(json.dumps(record, indent=1) + "\n")
    total = sum(p.stat().st_size for p in out.glob(f"{fid}.*"))
    print(f"{fid}: {total / 2**20:.2f} MiB, levels {[lv.name for lv in levels]}, neck {[lv.name for lv in neck]}")
    return out / f"{fid}.onnx"


def run_onnx(path: Path, x: np.ndarray) -> tuple[str, list[np.ndarray]]:
    import onnxruntime as ort
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return name, sess.run(None, {name: x})


def tolerance(noise: float) -> float:
    """The ``atol`` a level's ONNX value must meet: four times the framework's own float32 rounding noise
    (its float32 levels against the same model run in float64), rounded up to one significant digit, and
    at least 1e-4. A deep float32 network differs from itself in float64 by that much, and so does any
    other float32 runtime."""
    t = 4 * noise
    if t <= 1e-4:
        return 1e-4
    e = 10.0 ** np.floor(np.log10(t))
    return float(np.ceil(t / e - 1e-9) * e)


def check_logits(fid: str, ours: np.ndarray, theirs: np.ndarray) -> float:
    rel = float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))
    print(f"{fid}: ONNX logits vs framework: max abs error / max abs value = {rel:.2e}")
    if not rel <= MAX_REL:
        raise SystemExit(f"{fid}: the ONNX file's logits differ from the framework's (max rel {rel:.2e} > {MAX_REL})")
    return rel
