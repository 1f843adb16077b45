"""The heap settings of graphfeat's MindSpore worker (exporters/_heap.py): a freed large buffer is reused, not
faulted in again, unless the user turned that off or set glibc's own variables."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")
#: faults of a fresh 64 MiB mapping: 16384 pages of 4 KiB, or 32 of 2 MiB where the kernel gives every
#: mapping transparent huge pages ("[always]")
FRESH_MIN = 16 if _THP.exists() and "[always]" in _THP.read_text() else 8000

# A 64 MiB buffer freed and allocated again: how many pages the second one faults in (16384 if fresh).
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


@pytest.mark.parametrize("env, policy, reused", [
    ({}, "reuse", True),
    ({"GRAPHFEAT_HEAP": "off"}, "off", False),
    ({"MALLOC_TRIM_THRESHOLD_": "1000000"}, "glibc variables", False),  # glibc's own: fixes the mmap threshold
])
def test_large_buffers_are_reused_unless_turned_off(env: dict, policy: str, reused: bool) -> None:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("GRAPHFEAT_HEAP", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env={**clean, **env}, capture_output=True,
                         text=True, timeout=120, check=True).stdout.strip().rsplit(" ", 1)
    assert out[0] == policy
    faults = int(out[1])
    if reused:
        assert faults < min(FRESH_MIN, 1000), f"the freed 64 MiB buffer was not reused: {faults} page faults"
    else:
        assert faults > FRESH_MIN, f"glibc's defaults should map a fresh 64 MiB buffer: {faults} page faults"
