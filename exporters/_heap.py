"""glibc heap settings for graphfeat's MindSpore worker: large buffers reused, not re-faulted (issue #16).

An export handles its model as several ~100 MB buffers in turn (MindSpore's
ONNX bytes, the parsed and upgraded model, the serialised copy each ONNX
Runtime session reads, the saved file), and ONNX Runtime and MindSpore
allocate and free tensors of several MB per run. glibc serves every block
above its mmap threshold (dynamic, at most 32 MiB) with a fresh ``mmap`` and
unmaps it on ``free``, and gives the heap's free top back above its trim
threshold; the next buffer of that size faults every page in again. Measured
on resnet50's export (224 px, ``graphfeat export``, 4 alternating runs each,
2 cores): ~610k minor page faults and 2.4-3.3 s of system time with glibc's
defaults; with the mmap threshold at 256 MiB and the trim threshold at
512 MiB, ~365k faults and 2.0-2.4 s, the match-and-prove phase 0.84 -> 0.57 s,
the save 0.17 -> 0.06 s, the same peak RSS (1.8 GB). A mmap threshold of
32 MiB alone saved less (~560k faults).

The cost: freed blocks below 256 MiB stay in the heap for reuse instead of
going back to the system at once. So the policy is applied only in the
worker processes graphfeat starts (``exporters.worker``), which run its jobs
and nothing else, and which call :func:`trim_heap` after each job (it returns
every free page whatever the thresholds) before checking their memory bound.
A process that imports ``exporters`` (a user's script, the tests) keeps
glibc's defaults.

Control, in order of precedence:

* ``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_`` (glibc's own
  variables) set in the environment: glibc applied them at start; left alone.
* ``GRAPHFEAT_HEAP=off``: glibc's defaults.
* otherwise (``auto``): the two thresholds above, with ``mallopt``.

Not glibc (musl, macOS): nothing is changed.
"""
from __future__ import annotations

import ctypes
import functools
import os

#: glibc's ``mallopt`` parameters (``malloc.h``).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 256 * 2**20
TRIM_THRESHOLD = 512 * 2**20
GLIBC_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """glibc, or None where the C library is another (its ``mallopt`` would mean something else)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        if not (hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim")):
            return None
        return libc
    except OSError:
        return None


def heap_policy() -> str:
    """What :func:`apply_heap_policy` does here: ``"reuse"``, ``"glibc variables"``, ``"off"`` or ``"not glibc"``."""
    if _libc() is None:
        return "not glibc"
    if any(v in os.environ for v in GLIBC_VARIABLES):
        return "glibc variables"
    return "off" if os.environ.get("GRAPHFEAT_HEAP", "auto").strip().lower() == "off" else "reuse"


def apply_heap_policy() -> str:
    """Set glibc's mmap and trim thresholds so that large buffers are reused (see the module's text);
    returns :func:`heap_policy`."""
    policy = heap_policy()
    if policy == "reuse":
        libc = _libc()
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    return policy


def trim_heap() -> None:
    """Give the heap's free pages back to the system (glibc's ``malloc_trim(0)``); nothing elsewhere."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
