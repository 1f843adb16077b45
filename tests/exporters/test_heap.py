"""The heap settings of graphfeat's MindSpore worker (exporters/_heap.py): which policy each environment gets.
What the policy does to page faults is measured by ``bench/heap_reuse.py``, not asserted here (it depends on
the kernel)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
from exporters._heap import heap_policy
from exporters.worker import configure_process

configure_process()  # what `python -m exporters.worker` does first
print(heap_policy())
"""


@pytest.mark.parametrize("env, policy", [
    ({}, "reuse"),
    ({"GRAPHFEAT_HEAP": "off"}, "off"),
    ({"MALLOC_TRIM_THRESHOLD_": "1000000"}, "glibc variables"),  # glibc's own: the user's choice stands
])
def test_the_worker_picks_its_heap_policy_from_the_environment(env: dict, policy: str) -> None:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("GRAPHFEAT_HEAP", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env={**clean, **env}, capture_output=True,
                         text=True, timeout=120, check=True).stdout.strip()
    assert out == policy
