"""Shared helpers of the benchmark scripts: isolated child runs, exports, tables.

Every measured variant runs in its own fresh interpreter (``run_child``), so
variants never share a heap, a page of protobuf or a warmed-up allocator. The
child times only the operation (imports excluded) and reports its own peak
RSS, read from ``VmHWM`` in ``/proc/self/status`` (the high-water mark of the
child's own address space; ``getrusage`` in the child elsewhere). That is
the per-process figure ``getrusage(RUSAGE_CHILDREN)`` would give, without
its catch: ``ru_maxrss`` of a child also counts the parent's pages at fork
time, and ``RUSAGE_CHILDREN`` is a maximum over *all* children waited for.

    python bench/_common.py MODULE:FUNCTION 'JSON kwargs'

is the child protocol: it imports ``MODULE`` (a file in ``bench/``), calls
``FUNCTION(**kwargs)`` (which returns a dict, ``seconds`` included when it
times itself) and prints one JSON line prefixed ``@@result``.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CACHE = BENCH / ".cache"
PYTHON = sys.executable
MiB = 1 << 20
_TAG = "@@result "


@contextmanager
def checkout(rev: str) -> Iterator[Path]:
    """The tree at commit ``rev``, checked out into a temporary detached ``git worktree`` for the block,
    removed afterwards (the benches that compare the current code with a reference commit)."""
    tmp = Path(tempfile.mkdtemp(prefix="graphfeat-bench-base-"))
    tree = tmp / "tree"
    subprocess.run(["git", "worktree", "add", "--detach", str(tree), rev], cwd=ROOT, check=True, capture_output=True)
    try:
        yield tree
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


# -- child processes -------------------------------------------------------------
def proc_kib_field(path: str, key: str) -> int | None:
    """A ``key: N kB`` line of a /proc file, in bytes (None off Linux or if absent)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(f"{key}:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def peak_rss() -> int:
    """This process's peak resident set size in bytes."""
    hwm = proc_kib_field("/proc/self/status", "VmHWM")
    if hwm is not None:
        return hwm
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


class ChildError(RuntimeError):
    """A child run failed, ran out of memory or time."""


def run_child(target: str, timeout: float | None = None, mem_limit: int | None = None, **kwargs: Any) -> dict:
    """Run ``bench/MODULE.py:FUNCTION(**kwargs)`` in a fresh interpreter; return its dict plus ``peak_rss``.

    ``mem_limit`` (bytes) caps the child's address space (``RLIMIT_AS``); a child
    that exceeds it or ``timeout`` raises :class:`ChildError`.
    """
    def limit() -> None:
        if mem_limit:
            resource.setrlimit(resource.RLIMIT_AS, (mem_limit, mem_limit))

    cmd = [PYTHON, str(BENCH / "_common.py"), target, json.dumps(kwargs)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(BENCH)])}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, preexec_fn=limit, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        raise ChildError(f"timed out after {timeout:.0f} s") from None
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_TAG):
            return json.loads(line[len(_TAG):])
    tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
    if proc.returncode < 0 or "MemoryError" in proc.stderr or "bad_alloc" in proc.stderr:
        raise ChildError(f"killed or out of memory (exit {proc.returncode}): {tail[:200]}")
    raise ChildError(f"exit {proc.returncode}: {tail[:300]}")


def child_main(argv: Sequence[str]) -> None:
    module, func = argv[0].split(":")
    kwargs = json.loads(argv[1]) if len(argv) > 1 else {}
    fn = getattr(__import__(module), func)
    t0 = time.perf_counter()
    result = fn(**kwargs) or {}
    result.setdefault("seconds", time.perf_counter() - t0)
    result["peak_rss"] = peak_rss()
    sys.stdout.flush()
    print(_TAG + json.dumps(result), flush=True)


def import_baseline(modules: Sequence[str]) -> int:
    """Peak RSS of a child that only imports ``modules`` (the floor under every variant's figure)."""
    return run_child("_common:_import_only", modules=list(modules))["peak_rss"]


def _import_only(modules: list[str]) -> dict:
    for m in modules:
        __import__(m)
    return {}


def repeat(n: int, fn: Callable[[], dict]) -> list[dict]:
    return [fn() for _ in range(n)]


def median(results: list[dict], key: str = "seconds") -> float:
    return statistics.median(r[key] for r in results)


# -- models ------------------------------------------------------------------------
def ensure_export(model: str, static_batch: bool = False, log: Callable[[str], None] = print) -> Path:
    """``bench/.cache/MODEL.onnx`` (``MODEL.static.onnx`` with a fixed batch of 1), exported with
    ``graphfeat export`` if missing (5-30 s each at 224 px here). SystemExit if the export fails."""
    path = CACHE / f"{model}{'.static' if static_batch else ''}.onnx"
    if path.exists():
        return path
    CACHE.mkdir(exist_ok=True)
    log(f"exporting {model} -> {path.relative_to(ROOT)} (needs the mindspore extra; 5-30 s) ...")
    t0 = time.perf_counter()
    cmd = [PYTHON, "-m", "graphfeat", "export", model, "-o", str(path)] + (["--static-batch"] if static_batch else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        (CACHE / f"{path.stem}.export-error.txt").write_text(proc.stderr)
        raise SystemExit(f"export of {model} failed after {time.perf_counter() - t0:.0f} s: {tail[:300]}")
    log(f"  exported in {time.perf_counter() - t0:.0f} s")
    return path


def warm_page_cache(*paths: Path) -> None:
    """Read files once, so every variant starts with the same (warm) page cache."""
    for p in paths:
        with open(p, "rb") as f:
            while f.read(64 * MiB):
                pass


# -- output ------------------------------------------------------------------------
def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-markdown table (readable as plain text too)."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    fmt = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([fmt(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [fmt(r) for r in cells[1:]])


def mib(n: float | None) -> str:
    if n is None:
        return "-"
    return f"{n / MiB:.0f} MiB" if n >= 10 * MiB else f"{n / MiB:.1f} MiB" if n >= MiB / 10 else f"{n / 1024:.0f} KiB"


def secs(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s:.2f} s" if s >= 1 else f"{s * 1000:.0f} ms" if s >= 0.01 else f"{s * 1000:.2f} ms"


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def machine_note() -> str:
    import platform

    return (f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}")


if __name__ == "__main__":
    child_main(sys.argv[1:])
