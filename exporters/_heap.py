"""glibc heap settings for graphfeat's MindSpore worker: large freed buffers reused, not re-faulted.

The rule: graphfeat's worker processes set glibc's mmap threshold to 256 MiB and its trim threshold to
512 MiB, both (the trim threshold alone disables glibc's dynamic mmap threshold, leaving it at 128 KiB).
Why: an export passes its model through several large buffers in turn (ONNX bytes, the parsed and
upgraded model, each ONNX Runtime session's copy, the saved file), and with glibc's defaults every block
above the dynamic mmap threshold (at most 32 MiB) is a fresh ``mmap`` unmapped on ``free`` and the heap's
free top is trimmed, so the next buffer faults every page in again. Kept in the heap they are reused,
for the same peak RSS (numbers: bench/README.md, "Measurements behind the code's rules").

The cost: freed blocks below 256 MiB stay in the heap for reuse instead of
going back to the system at once. So the policy is applied only in the
worker processes graphfeat starts (``exporters.worker``), which run its jobs
and nothing else, and which call `trim_heap` after each job (it returns
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
    """What `apply_heap_policy` does here: ``"reuse"``, ``"glibc variables"``, ``"off"`` or ``"not glibc"``."""
    if _libc() is None:
        return "not glibc"
    if any(v in os.environ for v in GLIBC_VARIABLES):
        return "glibc variables"
    return "off" if os.environ.get("GRAPHFEAT_HEAP", "auto").strip().lower() == "off" else "reuse"


def apply_heap_policy() -> str:
    """Set glibc's mmap and trim thresholds so that large buffers are reused (see the module's text);
    returns `heap_policy`."""
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
