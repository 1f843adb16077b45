"""``graphfeat export``: MindSpore backbones to ONNX, with recorded feature layers (in worker processes)."""
from __future__ import annotations

import argparse
import json
import os
import queue
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

from ..errors import GraphfeatError
from ..runtime import (DEFAULT_INPUT_SIZE, DEFAULT_OPSET, DEFAULT_SEED, SECOND_SIZE_OFFSET, ExportOptions, Worker,
                       export_in_worker, registered_models)
from ._format import export_report, export_summary


def add_parser(sub: argparse._SubParsersAction) -> None:
    (h, w), (dh, dw) = DEFAULT_INPUT_SIZE, SECOND_SIZE_OFFSET
    p = sub.add_parser("export", help="export a registered MindSpore backbone to ONNX (needs graphfeat[mindspore])")
    p.add_argument("model", nargs="*", help="registered model name, e.g. resnet50; several names export each "
                                            "into models_onnx/, as --all does")
    p.add_argument("--cell", metavar="PKG.MODULE:FACTORY",
                   help="export the nn.Cell this factory returns (importable from the working directory or "
                        "PYTHONPATH; it must carry feature_info, see docs/adding-a-backbone.md)")
    p.add_argument("--cell-kwargs", default="{}", metavar="JSON", help="keyword arguments of --cell's factory")
    p.add_argument("--all", action="store_true", help="export every registered model into models_onnx/")
    p.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                   help="with --all or several models: N exports at a time in N worker processes (each kept for "
                        "its next export), whose MindSpore and ONNX Runtime get cores/N threads (default 1)")
    p.add_argument("-o", "--output", help="output file (default: models_onnx/MODEL.onnx)")
    p.add_argument("--input-size", nargs=2, type=int, default=list(DEFAULT_INPUT_SIZE), metavar=("H", "W"))
    p.add_argument("--checkpoint", default="", help="MindSpore .ckpt to load (default: seeded random weights)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED,
                   help=f"seed of the random weights (default {DEFAULT_SEED})")
    p.add_argument("--static-batch", action="store_true", help="fix the batch dimension to 1")
    p.add_argument("--features-only", action="store_true", help="export the feature model instead of the classifier")
    p.add_argument("--out-indices", nargs="*", type=int, metavar="I", help="feature levels of --features-only")
    p.add_argument("--reference", metavar="NPZ", help="also write the probe input and expected levels here")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                   help=f"target opset after the opset-11 export (default {DEFAULT_OPSET})")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.add_argument("--dynamic-size", action="store_true",
                   help="free the input's height and width too; proven against MindSpore at a second size")
    p.add_argument("--second-size", nargs=2, type=int, metavar=("H", "W"),
                   help=f"the second size of --dynamic-size's proof (default: H+{dh}, W+{dw}, e.g. {h + dh} "
                        f"{w + dw} for {h})")


def _export(args: argparse.Namespace, model: str | None, output: str | None, reference: str | None,
            worker: Worker | None = None) -> dict:
    cell_kwargs = None
    if getattr(args, "cell", None):
        try:
            cell_kwargs = json.loads(args.cell_kwargs or "{}")
        except json.JSONDecodeError as exc:
            raise GraphfeatError(f"--cell-kwargs is not valid JSON ({exc})") from None
        if not isinstance(cell_kwargs, dict):
            raise GraphfeatError(f"--cell-kwargs must be a JSON object, got {type(cell_kwargs).__name__}")
    if args.second_size and not args.dynamic_size:
        raise GraphfeatError("--second-size is the second size of --dynamic-size's proof; add --dynamic-size")
    options = ExportOptions(input_size=args.input_size, checkpoint=args.checkpoint, seed=args.seed,
                            static_batch=args.static_batch, features_only=args.features_only,
                            out_indices=args.out_indices, reference=reference, opset=args.opset, force=args.force,
                            cell=getattr(args, "cell", None), cell_kwargs=cell_kwargs,
                            dynamic_size=args.dynamic_size, second_size=args.second_size)
    return export_in_worker(model, output, options, worker=worker)


def _report(r: dict) -> str:
    text = export_report(r)
    if r.get("dynamic_size"):
        h, w = r["second_size"]
        text += (f"\n  free input size: proven against MindSpore at {h}x{w} too "
                 f"(worst rel err {r['second_size_worst_rel']:.2e})")
    return text


def run(args: argparse.Namespace) -> int:
    """``graphfeat export MODEL``, ``graphfeat export MODEL MODEL ...`` or ``graphfeat export --all``."""
    if args.jobs < 1:
        raise GraphfeatError(f"--jobs must be at least 1, got {args.jobs}")
    if args.cell:
        if args.all or args.model:
            raise GraphfeatError("--cell exports one cell; drop MODEL and --all")
        print(_report(_export(args, None, args.output, args.reference)))
        return 0
    if args.all == bool(args.model):
        raise GraphfeatError("give MODEL name(s), --cell package.module:factory, or --all")
    if len(args.model) == 1:
        print(_report(_export(args, args.model[0], args.output, args.reference)))
        return 0
    if args.output or args.reference:
        raise GraphfeatError("--all and several MODELs write models_onnx/MODEL.onnx; -o and --reference work "
                             "with one MODEL")
    jobs = min(args.jobs, len(args.model)) if args.model else args.jobs
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
    workers = [Worker(threads=threads) for _ in range(jobs)]
    try:
        names = registered_models(workers[0]) if args.all else list(dict.fromkeys(args.model))
        return _export_many(args, names, workers[:len(names)])
    finally:
        for worker in workers:
            worker.close()


def _export_many(args: argparse.Namespace, names: list[str], workers: list[Worker]) -> int:
    """Export ``names`` on ``workers`` (one export at a time each, each process kept for its next export);
    one line per model as it finishes."""
    failed: list[str] = []
    reports: dict[str, dict] = {}
    start = time.perf_counter()
    width = len(str(len(names)))
    idle: queue.Queue[Worker] = queue.Queue()
    for worker in workers:
        idle.put(worker)

    def one(name: str) -> dict:
        worker = idle.get()
        try:
            return _export(args, name, None, None, worker=worker)
        finally:
            idle.put(worker)

    with ThreadPoolExecutor(max_workers=len(workers)) as pool:  # threads only wait: the exports run in workers
        futures = {pool.submit(one, name): name for name in names}
        for done, future in enumerate(as_completed(futures), 1):
            name = futures[future]
            try:
                reports[name] = future.result()
                line = export_report(reports[name]).splitlines()[0]
            except GraphfeatError as exc:
                failed.append(name)
                line = f"{name}: FAILED: {exc}"
            print(f"[{done:>{width}}/{len(names)}] {line}", flush=True)
    print(f"{len(names)} export(s) in {time.perf_counter() - start:.0f}s with {len(workers)} worker(s)", flush=True)
    if reports:
        print("\n" + export_summary([reports[n] for n in names if n in reports]))
    if failed:
        failed = [n for n in names if n in failed]
        raise GraphfeatError(f"{len(failed)} of {len(names)} exports failed: {', '.join(failed)}")
    return 0
