"""How long ``graphfeat export`` takes now, side by side with a reference commit (round 1: 097758a).

    .venv/bin/python bench/export_speed.py                       # resnet50 hrnet_w32 vgg16_bn, 224 px
    .venv/bin/python bench/export_speed.py --models resnet50 --runs 2 --base 097758a
    .venv/bin/python bench/export_speed.py --current --models resnet50 swin_tiny pvt_v2_b2   # no reference

Each variant is one ``graphfeat export MODEL`` run through the worker protocol of
its own code, in a fresh process: the reference commit is checked out into a
temporary ``git worktree`` and imported from there (its own ``exporters``, so
its own oneDNN defaults), the current tree from this checkout. Variants
alternate per run, so both see the same machine load. Wall time is the whole
export as a user waits for it (worker start, MindSpore compiles, ONNX export,
proofs, save). The README's target: the current code at most 25% of the
reference's time on resnet50, hrnet_w32 and vgg16_bn.

``--current`` times the current tree alone and adds each export's peak memory:
the largest resident set of any one process and of the whole process tree (the
CLI and its export worker), sampled every 0.1 s with psutil. A full-size
export with its proofs must fit in 8 GB.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent)]
from _common import ROOT, checkout, machine_note, secs, table  # noqa: E402

MODELS = ["resnet50", "hrnet_w32", "vgg16_bn"]


def export_once(code_root: Path, model: str, out: Path, size: int, timeout: float) -> float:
    """Wall seconds of one ``graphfeat export`` with the code at ``code_root``; raises on failure."""
    env = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")}
    env["PYTHONPATH"] = str(code_root)
    cmd = [sys.executable, "-m", "graphfeat", "export", model, "-o", str(out), "--input-size", str(size), str(size),
           "--force"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=code_root, env=env, capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{code_root.name}: export {model} failed: {proc.stderr.strip()[-400:]}")
    out.unlink(missing_ok=True)
    return seconds


def export_measured(model: str, out: Path, size: int, timeout: float) -> tuple[float, int, int]:
    """Wall seconds and peak RSS (one process, the whole tree) of one current ``graphfeat export``."""
    import psutil

    env = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")}
    cmd = [sys.executable, "-m", "graphfeat", "export", model, "-o", str(out), "--input-size", str(size), str(size),
           "--force"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    top = psutil.Process(proc.pid)
    one = tree = 0
    while proc.poll() is None and time.perf_counter() - t0 < timeout:
        try:
            rss = [p.memory_info().rss for p in [top, *top.children(recursive=True)]]
        except psutil.Error:
            rss = []
        one, tree = max(one, *rss, 0), max(tree, sum(rss))
        time.sleep(0.1)
    err = proc.communicate(timeout=max(1.0, timeout - (time.perf_counter() - t0)))[1]
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"export {model} failed: {err.strip()[-400:]}")
    out.unlink(missing_ok=True)
    return seconds, one, tree


def current_only(args: argparse.Namespace) -> int:
    """The current tree's export time and peak memory per model, one export at a time."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="graphfeat-export-speed-") as tmp:
        for model in args.models:
            runs = [export_measured(model, Path(tmp) / "m.onnx", args.size, args.timeout) for _ in range(args.runs)]
            wall = statistics.median(r[0] for r in runs)
            one, tree = max(r[1] for r in runs), max(r[2] for r in runs)
            print(f"  {model}: {secs(wall)}, peak {one / 2**30:.2f} GiB one process, {tree / 2**30:.2f} GiB tree",
                  flush=True)
            rows.append([model, secs(wall), f"{one / 2**30:.2f}", f"{tree / 2**30:.2f}",
                         "yes" if tree < 8e9 else "no"])
    print(f"\n### graphfeat export, {args.size} px, current code (median of {args.runs})\n")
    print(table(["model", "wall", "peak GiB (one process)", "peak GiB (tree)", "fits 8 GB"], rows))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="*", default=MODELS)
    p.add_argument("--base", default="097758a", help="reference commit (default: round 1, 097758a)")
    p.add_argument("--runs", type=int, default=1, help="alternating runs per variant (default 1)")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--current", action="store_true", help="the current tree only, with each export's peak memory")
    args = p.parse_args()
    print(machine_note())
    if args.current:
        return current_only(args)
    with tempfile.TemporaryDirectory(prefix="graphfeat-export-speed-") as tmp, checkout(args.base) as base:
        rows = []
        for model in args.models:
            times: dict[str, list[float]] = {"reference": [], "current": []}
            for run in range(args.runs):
                for label, root in (("reference", base), ("current", ROOT)):
                    t = export_once(root, model, Path(tmp) / f"{label}.onnx", args.size, args.timeout)
                    times[label].append(t)
                    print(f"  {model} run {run + 1}: {label} {secs(t)}", flush=True)
            ref, cur = statistics.median(times["reference"]), statistics.median(times["current"])
            rows.append([model, secs(ref), secs(cur), f"{cur / ref:.0%}", "met" if cur <= 0.25 * ref else "missed"])
    print(f"\n### graphfeat export, {args.size} px, current vs {args.base} (median of {args.runs})\n")
    print(table(["model", f"{args.base}", "current", "current / reference", "target <= 25%"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
