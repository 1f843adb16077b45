"""One cell of the toolchain matrix: a tool on an export, then ``graphfeat info`` and ``cut`` of every level,
and the cut's levels compared by value with the export's reference ``.npz``.

Thresholds of this comparison (the verify side has its own, dtype-aware ones):

* float32 files: max |cut - reference| <= ``FP32_RTOL`` x max |reference|, per level, all reference images;
* float16 files: the same with ``FP16_RTOL``;
* int8 QDQ files: cosine similarity >= ``QDQ_MIN_COSINE`` per level (random-weight backbones quantised
  with 8 calibration images: the error is large, the direction is kept).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from graphfeat.errors import GraphfeatError
from graphfeat.info import feature_levels
from graphfeat.surgery import cut_file

from tools import TOOLS

FP32_RTOL = 1e-4
FP16_RTOL = 5e-2
QDQ_MIN_COSINE = 0.9
#: tools whose result is matched with the float16 / quantised thresholds
KIND = {"fp16": "fp16", "qdq_int8": "qdq"}
#: tools whose result has no graphfeat record: its levels are found against the export's reference
DROPS_METADATA = ("no_metadata", "polygraphy_fold")


@dataclass
class Cell:
    status: str  # "ok" or "refused"
    worst: float | None = None  # worst rel err (fp32/fp16) or 1 - worst cosine (qdq)
    message: str = ""
    resolved_by: tuple = ()
    tool: str = ""

    def text(self) -> str:
        if self.status == "ok":
            metric = f"cos {1 - self.worst:.4f}" if KIND.get(self.tool) == "qdq" else f"{self.worst:.1e}"
            return f"{metric} ({'+'.join(self.resolved_by)})"
        return f"refused: {self.message[:90]}"


def reference(ref: Path):
    data = np.load(ref)
    record = json.loads(data["meta"].tobytes().decode())
    return data["input"], {lv["name"]: data[f"level/{lv['name']}"] for lv in record["levels"]}


def _run(path: Path, images: np.ndarray) -> dict[str, np.ndarray]:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    batch = sess.get_inputs()[0].shape[0]
    if isinstance(batch, int):
        outs = [dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {name: images[k:k + 1]})))
                for k in range(len(images))]
        return {o: np.concatenate([d[o] for d in outs]) for o in outs[0]}
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {name: images})))


def compare(tool: str, got: np.ndarray, want: np.ndarray) -> float:
    got, want = got.astype(np.float64), want.astype(np.float64)
    if KIND.get(tool) == "qdq":
        cos = [float(a.ravel() @ b.ravel() / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))
               for a, b in zip(got, want)]
        return 1.0 - min(cos)
    return float(np.abs(got - want).max() / np.abs(want).max())


def limit(tool: str) -> float:
    return {"fp16": FP16_RTOL, "qdq": 1.0 - QDQ_MIN_COSINE}.get(KIND.get(tool, ""), FP32_RTOL)


def evaluate(tool: str, src: Path, ref: Path, work: Path) -> Cell:
    """Apply ``tool`` to ``src``; info; cut every level; compare with the reference. Raises AssertionError
    on a *wrong* result (values off); returns a refused Cell when graphfeat refuses."""
    dst = work / f"{src.stem}.{tool}.onnx"
    if not dst.exists():
        TOOLS[tool][0](src, dst)
    images, levels = reference(ref)
    opts = {"reference": ref} if tool in DROPS_METADATA else {}
    try:
        rows = feature_levels(dst, **opts)
        names = [r.name for r in rows]
        assert names == list(levels), f"info lists {names}, the reference {list(levels)}"
        out = cut_file(dst, work / f"{src.stem}.{tool}.features.onnx", layers=names, force=True, **opts)
    except GraphfeatError as exc:
        return Cell("refused", message=str(exc), tool=tool)
    model = onnx.load(str(out))
    record = json.loads(next(p.value for p in model.metadata_props if p.key.startswith("graphfeat.")))
    got = _run(out, images)
    worst = 0.0
    for name, want in levels.items():
        err = compare(tool, got[name], want)
        assert err <= limit(tool), f"{tool}: level {name} is off by {err:.3g} (limit {limit(tool)})"
        worst = max(worst, err)
    how = tuple(sorted({lv.get("resolved_by", "metadata") for lv in record["levels"]}))
    return Cell("ok", worst, resolved_by=how, tool=tool)
