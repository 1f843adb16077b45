"""``graphfeat export``: MindSpore backbones to ONNX, with recorded feature layers."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .errors import GraphfeatError
from .mindspore_jobs import run_job


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


def export_one(args: argparse.Namespace, model: str, output: str | None) -> dict:
    """Export one model in a fresh worker process; returns the export report."""
    return run_job("export", {
        "model_name": model,
        "output": output,
        "input_size": list(args.input_size),
        "checkpoint_path": str(Path(args.checkpoint).resolve()) if args.checkpoint else "",
        "seed": args.seed,
        "static_batch": args.static_batch,
        "features_only": args.features_only,
        "out_indices": args.out_indices,
        "reference": args.reference,
        "opset": args.opset,
        "force": args.force,
    }, what=f"export of {model}")


def format_report(r: dict) -> str:
    out = "-" if r["output_max_rel"] is None else f"{r['output_max_rel']:.2e}"
    lines = [f"wrote {r['path']}: {r['nodes']} nodes, {r['size_bytes'] / 2**20:.1f} MiB, opset {r['opset']}, "
             f"{r['seconds']:.1f}s; max rel err: output {out}, worst level {r['worst_level_max_rel']:.2e}"]
    lines += [f"  {lv['index']:>2}  {lv['name']:<14} chs {lv['chs']:<5} stride {lv['reduction']:<3} "
              f"tensor '{lv['tensor']}'" for lv in r["levels"]]
    lines += [f"  note: {n}" for n in r["notes"]]
    if r.get("reference"):
        lines.append(f"wrote reference {r['reference']}")
    return "\n".join(lines)


def summary_table(reports: list[dict]) -> str:
    """A markdown table of export reports: size, time and the proof's worst errors."""
    rows = ["| model | nodes | MiB | opset | seconds | max rel err: output | worst level |",
            "|---|---|---|---|---|---|---|"]
    for r in reports:
        out = "-" if r["output_max_rel"] is None else f"{r['output_max_rel']:.1e}"
        rows.append(f"| {r['model']} | {r['nodes']} | {r['size_bytes'] / 2**20:.1f} | {r['opset']} | "
                    f"{r['seconds']:.0f} | {out} | {r['worst_level_max_rel']:.1e} |")
    return "\n".join(rows)


def _list_models() -> list[str]:
    import json
    import subprocess

    from .mindspore_jobs import INSTALL_HINT, mindspore_available

    if not mindspore_available():
        raise GraphfeatError(f"graphfeat export needs MindSpore, which is not installed; {INSTALL_HINT}")
    code = "import json, exporters; print(json.dumps(exporters.list_models()))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cmd_export(args: argparse.Namespace) -> int:
    """``graphfeat export MODEL`` or ``graphfeat export --all``."""
    if args.all == bool(args.model):
        raise GraphfeatError("give one MODEL name, or --all")
    if not args.all:
        print(format_report(export_one(args, args.model, args.output)))
        return 0
    if args.output or args.reference:
        raise GraphfeatError("--all writes models_onnx/MODEL.onnx; -o and --reference work with one MODEL")
    names = _list_models()
    failed, reports = [], []
    start = time.perf_counter()
    for k, name in enumerate(names):
        bar = "#" * (20 * k // len(names))
        print(f"\r[{bar:<20}] {k}/{len(names)} {name:<24}", end="", file=sys.stderr, flush=True)
        try:
            reports.append(export_one(args, name, None))
            print(f"\r{' ' * 60}\r{format_report(reports[-1]).splitlines()[0]}", flush=True)
        except GraphfeatError as exc:
            failed.append(name)
            print(f"\r{' ' * 60}\r{name}: FAILED: {exc}", flush=True)
    print(f"\r[{'#' * 20}] {len(names)}/{len(names)} in {time.perf_counter() - start:.0f}s", file=sys.stderr)
    if reports:
        print("\n" + summary_table(reports))
    if failed:
        raise GraphfeatError(f"{len(failed)} of {len(names)} exports failed: {', '.join(failed)}")
    return 0
