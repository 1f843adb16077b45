"""``graphfeat export``: MindSpore backbones to ONNX, with recorded feature layers (in worker processes)."""
from __future__ import annotations

import argparse
import sys
import time

from ..errors import GraphfeatError
from ..runtime import export_in_worker, registered_models
from ._format import export_report, export_summary


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a registered MindSpore backbone to ONNX (needs graphfeat[mindspore])")
    p.add_argument("model", nargs="?", help="registered model name, e.g. resnet50")
    p.add_argument("--all", action="store_true", help="export every registered model into models_onnx/")
    p.add_argument("-o", "--output", help="output file (default: models_onnx/MODEL.onnx)")
    p.add_argument("--input-size", nargs=2, type=int, default=[224, 224], metavar=("H", "W"))
    p.add_argument("--checkpoint", default="", help="MindSpore .ckpt to load (default: seeded random weights)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    p.add_argument("--static-batch", action="store_true", help="fix the batch dimension to 1")
    p.add_argument("--features-only", action="store_true", help="export the feature model instead of the classifier")
    p.add_argument("--out-indices", nargs="*", type=int, metavar="I", help="feature levels of --features-only")
    p.add_argument("--reference", metavar="NPZ", help="also write the probe input and expected levels here")
    p.add_argument("--opset", type=int, default=17, help="target opset after the opset-11 export (default 17)")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")


def _export(args: argparse.Namespace, model: str, output: str | None, reference: str | None) -> dict:
    return export_in_worker(model, output, input_size=args.input_size, checkpoint=args.checkpoint, seed=args.seed,
                            static_batch=args.static_batch, features_only=args.features_only,
                            out_indices=args.out_indices, reference=reference, opset=args.opset, force=args.force)


def run(args: argparse.Namespace) -> int:
    """``graphfeat export MODEL`` or ``graphfeat export --all``."""
    if args.all == bool(args.model):
        raise GraphfeatError("give one MODEL name, or --all")
    if not args.all:
        print(export_report(_export(args, args.model, args.output, args.reference)))
        return 0
    if args.output or args.reference:
        raise GraphfeatError("--all writes models_onnx/MODEL.onnx; -o and --reference work with one MODEL")
    names = registered_models()
    failed, reports = [], []
    start = time.perf_counter()
    for k, name in enumerate(names):
        bar = "#" * (20 * k // len(names))
        print(f"\r[{bar:<20}] {k}/{len(names)} {name:<24}", end="", file=sys.stderr, flush=True)
        try:
            reports.append(_export(args, name, None, None))
            print(f"\r{' ' * 60}\r{export_report(reports[-1]).splitlines()[0]}", flush=True)
        except GraphfeatError as exc:
            failed.append(name)
            print(f"\r{' ' * 60}\r{name}: FAILED: {exc}", flush=True)
    print(f"\r[{'#' * 20}] {len(names)}/{len(names)} in {time.perf_counter() - start:.0f}s", file=sys.stderr)
    if reports:
        print("\n" + export_summary(reports))
    if failed:
        raise GraphfeatError(f"{len(failed)} of {len(names)} exports failed: {', '.join(failed)}")
    return 0
