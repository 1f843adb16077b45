"""Where an export's time goes: the wall time of each phase of ``graphfeat export``, per model.

    .venv/bin/python bench/export_profile.py                                  # resnet18 resnet50 hrnet_w32 vgg16_bn
    .venv/bin/python bench/export_profile.py --models resnet50 --size 224 --cprofile 25

Each model is exported once through the worker protocol (``python -m exporters.worker export``), in a
fresh process, like ``graphfeat export MODEL``. The phases are the ones ``exporters.export_model``
times itself (``ExportReport.phases``); "worker start + exit" is the rest of the process's wall time
(interpreter, ``import mindspore``, exit). ``--cprofile N`` instead runs each export in this process
under cProfile and prints the N functions with the largest cumulative time.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent)]
from _common import ROOT, machine_note, table  # noqa: E402

MODELS = ["resnet18", "resnet50", "hrnet_w32", "vgg16_bn"]


def profile_once(model: str, out: Path, size: int, extra: dict) -> tuple[float, dict]:
    """The process's wall seconds and the export report of one export in a fresh worker."""
    args = {"model_name": model, "output": str(out), "input_size": [size, size], "force": True, **extra}
    env = dict(os.environ, GLOG_v="3", PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "exporters.worker", "export", json.dumps(args)],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    result = json.loads(lines[-1]) if lines else {"ok": False, "error": proc.stderr[-400:]}
    if not result["ok"]:
        raise RuntimeError(f"export {model} failed: {result['error']}")
    out.unlink(missing_ok=True)
    return wall, result["result"]


def cprofile_once(model: str, out: Path, size: int, top: int, extra: dict) -> None:
    import cProfile
    import pstats

    from exporters.onnx_export import export_model as run  # imports MindSpore: only in this mode

    prof = cProfile.Profile()
    prof.enable()
    run(model, out, input_size=(size, size), force=True, **extra)
    prof.disable()
    out.unlink(missing_ok=True)
    print(f"\n### cProfile, {model} at {size} px (top {top} by cumulative time)\n```")
    pstats.Stats(prof).sort_stats("cumulative").print_stats(top)
    print("```")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="*", default=MODELS)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--static-batch", action="store_true")
    p.add_argument("--dynamic-size", action="store_true")
    p.add_argument("--cprofile", type=int, default=0, metavar="N", help="cProfile in this process; top N functions")
    args = p.parse_args()
    extra = {"static_batch": args.static_batch, "dynamic_size": args.dynamic_size}
    print(machine_note())
    with tempfile.TemporaryDirectory(prefix="graphfeat-export-profile-") as tmp:
        if args.cprofile:
            for model in args.models:
                cprofile_once(model, Path(tmp) / f"{model}.onnx", args.size, args.cprofile, extra)
            return 0
        results = {}
        for model in args.models:
            wall, report = profile_once(model, Path(tmp) / f"{model}.onnx", args.size, extra)
            phases = dict(report["phases"])
            phases["worker start + exit"] = wall - report["seconds"]
            results[model] = (wall, phases)
            print(f"  {model}: {wall:.1f} s", flush=True)
    names = list(dict.fromkeys(n for _, ph in results.values() for n in ph))
    rows = [[n, *(f"{results[m][1].get(n, 0.0):.2f}" for m in results)] for n in names]
    rows.append(["**total (wall)**", *(f"**{results[m][0]:.1f}**" for m in results)])
    print(f"\n### graphfeat export, seconds per phase, {args.size} px\n")
    print(table(["phase", *results], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
