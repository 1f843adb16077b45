"""``graphfeat export A B C --jobs N``: the wall time of several exports with 1, 2, ... worker processes.

    .venv/bin/python bench/export_jobs.py                                  # 4 small models, 64 px, jobs 1 and 2
    .venv/bin/python bench/export_jobs.py --models resnet18 vgg11 --size 224 --jobs 1 2 --runs 2

Each variant is one ``python -m graphfeat export MODEL ... --jobs N`` into a fresh temp directory;
the variants alternate per run, so they see the same machine load. ``--jobs 1`` leaves MindSpore and
ONNX Runtime their own thread counts; ``--jobs N>1`` gives each worker cores/N threads of each
(``GRAPHFEAT_THREADS``). ``--threads-default`` adds the variant ``--jobs 2`` with the libraries'
default threads (the environment variable set to 0), to show what the cap does. ``--base REV`` adds each
``--jobs`` variant of the code at commit REV (checked out into a temporary ``git worktree``), in the same
alternation.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent)]
from _common import ROOT, checkout, machine_note, secs, table  # noqa: E402

MODELS = ["resnet18", "mobilenet_v3_small_100", "efficientnet_b0", "repvgg_a0"]


def run_once(models: list[str], jobs: int, size: int, env_extra: dict, code_root: Path = ROOT) -> float:
    env = dict(os.environ, PYTHONPATH=str(code_root), GLOG_v="3", **env_extra)
    with tempfile.TemporaryDirectory(prefix="graphfeat-export-jobs-") as tmp:
        cmd = [sys.executable, "-m", "graphfeat", "export", *models, "--jobs", str(jobs),
               "--input-size", str(size), str(size)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"--jobs {jobs} failed: {proc.stderr.strip()[-400:]}")
    return seconds


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="*", default=MODELS)
    p.add_argument("--jobs", nargs="*", type=int, default=[1, 2])
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--threads-default", action="store_true",
                   help="also --jobs 2 with each library's default thread count")
    p.add_argument("--base", help="also run each --jobs variant with the code at this commit")
    args = p.parse_args()
    print(machine_note())
    with ExitStack() as stack:
        variants = [(f"--jobs {j}", j, {}, ROOT) for j in args.jobs]
        if args.base:
            base = stack.enter_context(checkout(args.base))
            variants += [(f"{args.base} --jobs {j}", j, {}, base) for j in args.jobs]
        if args.threads_default:
            variants.append(("--jobs 2, default threads", 2, {"GRAPHFEAT_THREADS": "0"}, ROOT))
        times: dict[str, list[float]] = {label: [] for label, _, _, _ in variants}
        for run in range(args.runs):
            for label, jobs, env, root in variants:
                t = run_once(args.models, jobs, args.size, env, root)
                times[label].append(t)
                print(f"  run {run + 1}: {label} {secs(t)}", flush=True)
    first = statistics.median(times[variants[0][0]])
    rows = [[label, secs(statistics.median(times[label])), f"{statistics.median(times[label]) / first:.2f}"]
            for label, _, _, _ in variants]
    print(f"\n### graphfeat export {' '.join(args.models)}, {args.size} px, {os.cpu_count()} cores "
          f"(median of {args.runs})\n")
    print(table(["variant", "wall", f"vs {variants[0][0]}"], rows))
    return 0

if __name__ == "__main__":
    sys.exit(main())
