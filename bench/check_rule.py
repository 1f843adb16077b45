"""Where the checker's weight-free skeleton pays off: cut a small real model with each rule, side by side.

    .venv/bin/python bench/check_rule.py [models_onnx/resnet18.onnx] [--runs 5]

``graphfeat.check`` runs strict shape inference and ``onnx.checker`` on a
copy of the model without its weights (the skeleton) unless the model holds
less than ``DIRECT_WEIGHT_BYTES`` of large tensors. The variants alternate in
one process: the current rule, and the old one (every file under 64 MiB
checked directly, weights serialized by inference and by the checker).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import graphfeat  # noqa: E402
import graphfeat.check as check  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", nargs="?", default=str(ROOT / "models_onnx" / "resnet18.onnx"),
                   help="an exported model (default models_onnx/resnet18.onnx: graphfeat export resnet18)")
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    if not Path(args.model).exists():
        raise SystemExit(f"{args.model} is missing; export it first: graphfeat export resnet18")
    info = graphfeat.feature_info(args.model)
    indices = info.pyramid_indices()
    rules = {"skeleton unless < 1 MiB of weights (current)": check.DIRECT_WEIGHT_BYTES,
             "direct (old rule, files < 64 MiB)": 1 << 62}
    times: dict[str, list[float]] = {k: [] for k in rules}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.runs):
            for label, limit in rules.items():
                check.DIRECT_WEIGHT_BYTES = limit
                t0 = time.perf_counter()
                graphfeat.cut_file(args.model, os.path.join(tmp, "out.onnx"), indices=indices, force=True)
                times[label].append(time.perf_counter() - t0)
    size = Path(args.model).stat().st_size / 2**20
    print(f"{Path(args.model).name} ({size:.1f} MiB), cut at {[info.module_name(i) for i in indices]}, {args.runs} runs")
    base = statistics.median(times["direct (old rule, files < 64 MiB)"])
    for label, ts in times.items():
        med = statistics.median(ts)
        print(f"  {label:<46} median {med:.3f} s  ({med / base:.2f}x of direct)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
