"""The README's test command, timed, with its peak memory: ``scripts/dev.sh test`` as CI runs it.

    .venv/bin/python bench/suite.py                 # scripts/dev.sh test -q
    .venv/bin/python bench/suite.py -- -k toolchain # arguments after -- go to pytest

Samples the whole process tree (the shell, pytest, its pytest-xdist workers and
the MindSpore export workers they start) every 0.5 s with psutil and reports:
wall time per suite, the largest resident set of any one process, and the
largest sum over the tree at one instant (what the machine must hold). The
targets (issue #16): the suite in at most 6 minutes, under 4 GB peak RSS.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

sys.path[:0] = [str(Path(__file__).resolve().parent)]
from _common import ROOT, machine_note  # noqa: E402

GIB = 1024 ** 3


class TreeSampler(threading.Thread):
    """Peak RSS of one process and of its whole tree, sampled every ``period`` seconds."""

    def __init__(self, pid: int, period: float = 0.5):
        super().__init__(daemon=True)
        self.root, self.period = psutil.Process(pid), period
        self.max_one = self.max_sum = 0
        self.max_one_cmd = ""
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            total = 0
            for proc in procs:
                try:
                    rss = proc.memory_info().rss
                except psutil.Error:
                    continue
                total += rss
                if rss > self.max_one:
                    self.max_one = rss
                    try:
                        self.max_one_cmd = " ".join(proc.cmdline()[1:4])
                    except psutil.Error:
                        pass
            self.max_sum = max(self.max_sum, total)
            self.stop.wait(self.period)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("pytest_args", nargs="*", help="after --: arguments for pytest (default -q)")
    args = p.parse_args()
    print(machine_note())
    cmd = ["scripts/dev.sh", "test", *(args.pytest_args or ["-q"])]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = TreeSampler(proc.pid)
    sampler.start()
    marks, lines = [], []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("== "):
            marks.append((line.strip(), time.perf_counter() - t0))
    rc = proc.wait()
    wall = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    summaries = [ln.strip() for ln in lines if re.search(r"\d+ (passed|failed)", ln) and " in " in ln]
    print("\n| part | started at | summary |\n|---|---|---|")
    for (mark, at), summary in zip(marks, summaries + [""] * len(marks)):
        print(f"| {mark.strip('= ')} | {at:.0f} s | {summary.strip('= ')} |")
    print(f"\nwall: {wall:.0f} s ({wall / 60:.1f} min; target: at most 6 min) -> "
          f"{'met' if wall <= 360 else 'MISSED'}; exit code {rc}")
    print(f"peak RSS of one process: {sampler.max_one / GIB:.2f} GiB ({sampler.max_one_cmd}); "
          f"target: under 4 GB -> {'met' if sampler.max_one < 4e9 else 'MISSED'}")
    print(f"peak RSS of the whole tree at one instant: {sampler.max_sum / GIB:.2f} GiB")
    if rc:
        sys.stdout.writelines(lines[-40:])
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
