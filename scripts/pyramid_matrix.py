"""The family x runtime table of issue #5: worst relative error of the cut pyramid against MindSpore.

    .venv/bin/python scripts/pyramid_matrix.py                  # one model per family, 224x224
    .venv/bin/python scripts/pyramid_matrix.py --models resnet50 --size 192 256

For each model it runs the product's own commands, as a user would:
``graphfeat export`` (``models_onnx/MODEL.onnx``, reused when ``export --all`` wrote it),
``graphfeat cut`` at the pyramid levels (the deepest level at each stride
4/8/16/32), then ``graphfeat verify --model`` at batch 1 on every runtime
(MindSpore computes the reference once) and at batch 3 on ONNX Runtime.
Each cell is the worst ``max_rel`` over the levels (max error / max |level|);
the tolerance is 1e-4. Exit 1 if any cell fails.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # graphfeat from this checkout
FAMILY_MODELS = ["resnet18", "resnest50", "repvgg_a0", "mobilenet_v3_small_100", "convnext_tiny",
                 "efficientnet_b0", "rexnet_10", "hrnet_w18", "vgg11", "mobilenet_v2_100"]
RUNTIMES = ["onnxruntime", "openvino", "reference"]


def graphfeat(*args: str) -> subprocess.CompletedProcess:
    """Run the graphfeat CLI of this checkout; exit codes 0 and 1 are results, others are errors."""
    proc = subprocess.run([sys.executable, "-m", "graphfeat", *args], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"graphfeat {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stderr.strip()}")
    return proc


def pyramid_layers(path: Path) -> list[str]:
    from graphfeat import feature_info

    info = feature_info(path)
    return [info.module_name(i) for i in info.pyramid_indices()]


def worst(report: dict) -> tuple[float, bool]:
    return max(lv["max_rel"] for lv in report["levels"]), report["ok"]


def exported_size(path: Path) -> list[int]:
    import onnx

    from graphfeat.levels import read_metadata

    return list(read_metadata(onnx.load(str(path), load_external_data=False))["input_size"])


def run_model(model: str, size: list[int], onnx_dir: Path, runtimes: list[str]) -> dict:
    stem = model if size == [224, 224] else f"{model}_{size[0]}x{size[1]}"  # export --all's files are 224 px
    src = onnx_dir / f"{stem}.onnx"
    t0 = time.perf_counter()
    if not src.exists():
        graphfeat("export", model, "-o", str(src), "--input-size", *map(str, size))
    elif exported_size(src) != size:
        raise SystemExit(f"{src} was exported at {exported_size(src)}, not {size}; move it away or pick --onnx-dir")
    layers = pyramid_layers(src)
    cut = onnx_dir / f"{stem}.pyramid.onnx"
    graphfeat("cut", str(src), "-o", str(cut), "--layers", *layers, "--force")
    cells = {}
    b1 = json.loads(graphfeat("verify", str(cut), "--model", model, "--runtime", *runtimes, "--json").stdout)
    for report in b1["runtimes"]:
        cells[f"{report['runtime']} b1"] = worst(report)
    b3 = json.loads(graphfeat("verify", str(cut), "--model", model, "--batch", "3", "--json").stdout)
    cells["onnxruntime b3"] = worst(b3)
    return {"model": model, "layers": layers, "cells": cells, "seconds": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="*", default=FAMILY_MODELS)
    p.add_argument("--size", nargs=2, type=int, default=[224, 224], metavar=("H", "W"))
    p.add_argument("--runtimes", nargs="*", default=RUNTIMES, choices=RUNTIMES)
    p.add_argument("--onnx-dir", type=Path, default=ROOT / "models_onnx",
                   help="where exports are found or written (default models_onnx/, as export --all)")
    args = p.parse_args(argv)
    args.onnx_dir.mkdir(parents=True, exist_ok=True)
    columns = [f"{r} b1" for r in args.runtimes] + ["onnxruntime b3"]
    print(f"| model | levels (stride 4/8/16/32) | {' | '.join(columns)} | seconds |")
    print(f"|---|---|{'---|' * len(columns)}---|")
    failed = False
    for model in args.models:
        row = run_model(model, args.size, args.onnx_dir, args.runtimes)
        cells = []
        for c in columns:
            err, ok = row["cells"][c]
            failed |= not ok
            cells.append(f"{err:.1e}" + ("" if ok else " FAIL"))
        print(f"| {model} | {', '.join(row['layers'])} | {' | '.join(cells)} | {row['seconds']:.0f} |", flush=True)
    print(f"\n{args.size[0]}x{args.size[1]} px; max error / max |level|, worst level; tolerance 1e-4")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
