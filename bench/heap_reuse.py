"""Page faults of a freed 64 MiB buffer allocated again, under each heap policy of graphfeat's MindSpore worker
(``exporters/_heap.py``): with the worker's settings it is reused (a handful of faults); with glibc's defaults,
or the user's own glibc variables, it is mapped afresh (16384 faults of 4 KiB, or 32 where the kernel gives
every mapping transparent huge pages).

    .venv/bin/python bench/heap_reuse.py
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = """
import resource
from exporters._heap import heap_policy
from exporters.worker import configure_process

configure_process()  # what `python -m exporters.worker` does first

def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

buffer = bytearray(64 << 20)
del buffer
before = faults()
buffer = bytearray(64 << 20)
print(heap_policy(), faults() - before)
"""
CASES = {"default": {}, "GRAPHFEAT_HEAP=off": {"GRAPHFEAT_HEAP": "off"},
         "MALLOC_TRIM_THRESHOLD_=1000000": {"MALLOC_TRIM_THRESHOLD_": "1000000"}}


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    clean = {k: v for k, v in os.environ.items()
             if k not in ("GRAPHFEAT_HEAP", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")}
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    print(f"transparent huge pages: {thp.read_text().strip() if thp.exists() else 'unknown'}")
    print("| environment | policy | page faults of the second 64 MiB buffer |\n|---|---|---|")
    for label, env in CASES.items():
        out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env={**clean, **env}, capture_output=True,
                             text=True, timeout=120, check=True).stdout.strip().rsplit(" ", 1)
        print(f"| {label} | {out[0]} | {out[1]} |")


if __name__ == "__main__":
    main()
