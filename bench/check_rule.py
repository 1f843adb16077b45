"""Where the checker's weight-free skeleton pays off: cut a small real model with each rule, side by side.

    .venv/bin/python bench/check_rule.py [models_onnx/resnet18.onnx] [--runs 5]

``graphfeat.graph.check`` runs strict shape inference and ``onnx.checker`` on a
copy of the model without its weights (the skeleton) unless the model holds
less than ``DIRECT_WEIGHT_BYTES`` of large tensors. The rule matters for a
model held in memory with its weights (``graphfeat.cut(proto)``); a cut by
path never has the weights in memory (``graphfeat.onnxfile.wire``), so it always
checks the skeleton. The variants alternate in one process, each cutting the
same in-memory model: the current rule, and the old one (every model under
64 MiB checked directly, weights serialized by inference and by the checker).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import graphfeat  # noqa: E402
import graphfeat.graph.check as check  # noqa: E402  (measures this internal rule itself)

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
    model = graphfeat.load_model(args.model)  # with its weights
    rules = {"skeleton unless < 1 MiB of weights (current)": check.DIRECT_WEIGHT_BYTES,
             "direct (old rule, files < 64 MiB)": 1 << 62}
    times: dict[str, list[float]] = {k: [] for k in rules}
    for _ in range(args.runs):
        for label, limit in rules.items():
            check.DIRECT_WEIGHT_BYTES = limit
            t0 = time.perf_counter()
            graphfeat.cut(model, indices=indices)
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
