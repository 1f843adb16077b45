"""Fuzz graphfeat with mutated models and report the counts.

    .venv/bin/python bench/fuzz.py                 # 10,000 cases (or $GRAPHFEAT_FUZZ_CASES)
    .venv/bin/python bench/fuzz.py --cases 2000 --start 50000

Prints one JSON line: cases, calls, successes (a cut succeeded and is checker-valid), clean
errors (GraphfeatError / exit 2), crashes (anything else: must be 0), seconds, and the
mutations applied. Exit code 1 if any case crashed; the first crashes are printed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from fuzz_mutators import run  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=int(os.environ.get("GRAPHFEAT_FUZZ_CASES", "10000")))
    parser.add_argument("--start", type=int, default=0, help="first case seed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="graphfeat-fuzz-") as tmp:
        cwd = Path(tmp) / "cwd"
        cwd.mkdir()
        os.chdir(cwd)
        t0 = time.perf_counter()
        stats = run(args.cases, Path(tmp), args.start)
        seconds = time.perf_counter() - t0
        stray = sorted(p.name for p in cwd.iterdir())
        os.chdir(ROOT)
    report = {**stats.summary(), "stray_files_in_cwd": len(stray), "seconds": round(seconds, 1),
              "mutations": dict(stats.mutations.most_common())}  # fmt: skip
    print(json.dumps(report))
    for crash in stats.crashes[:10]:
        print("CRASH:", crash, file=sys.stderr)
    return 1 if stats.crashes or stray else 0


if __name__ == "__main__":
    sys.exit(main())
