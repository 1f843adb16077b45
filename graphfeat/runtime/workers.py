"""The one protocol for MindSpore work: ``python -m exporters.worker`` processes.

``graphfeat`` never imports MindSpore itself. Each job's arguments go out as
JSON; the answer is ``{"ok": true, "result": ...}`` or ``{"ok": false, "kind":
"user"|"internal", "error": "..."}``. The jobs, one client function each:
``export`` (`export_in_worker`), ``levels`` (`mindspore_levels`)
and ``models`` (`registered_models`). Without the ``mindspore`` extra
they raise a GraphfeatError that says how to install it.

By default a job runs in a fresh ``python -m exporters.worker JOB ARGS``
process, whose last stdout line is the answer. A `Worker` instead keeps
one process (``--serve``) for a series of jobs, sparing MindSpore's start-up
(1.5-4 s) after the first; it starts afresh after a failed job (a failed
MindSpore export leaves its process unable to export again) and when the
process has grown past a memory bound.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import GraphfeatError
from .export_options import ExportOptions

if TYPE_CHECKING:  # numpy is imported where it is used: `graphfeat export` starts its worker without it
    import numpy as np

INSTALL_HINT = "install the MindSpore extra: pip install 'graphfeat[mindspore]' (or pip install -e '.[mindspore]')"


def mindspore_available() -> bool:
    """Whether ``mindspore`` and ``exporters`` can be imported here."""
    try:
        return all(importlib.util.find_spec(m) is not None for m in ("mindspore", "exporters"))
    except (ImportError, ValueError):
        return False


#: the worker's thread count for MindSpore's CPU kernels and ONNX Runtime (unset: each library's default)
THREADS_VAR = "GRAPHFEAT_THREADS"


def worker_threads() -> int | None:
    """The thread count a parent set for this worker (``GRAPHFEAT_THREADS``, see `run_job`), or None:
    each library's default."""
    value = os.environ.get(THREADS_VAR, "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def _worker_env(threads: int | None) -> dict[str, str]:
    env = dict(os.environ, GLOG_v=os.environ.get("GLOG_v", "3"))
    if threads:
        env.setdefault(THREADS_VAR, str(threads))  # one set by the user wins (0: the libraries' defaults)
    return env


def _answer(result: dict, what: str) -> Any:
    if not result["ok"]:
        prefix = "" if result.get("kind") == "user" else "internal error: "
        raise GraphfeatError(f"{what} failed: {prefix}{result['error']}")
    return result["result"]


def _crashed(what: str, code: int | None, stderr: str) -> GraphfeatError:
    tail = "\n".join(stderr.strip().splitlines()[-15:])
    return GraphfeatError(f"{what} failed: the MindSpore worker exited with code {code}:\n{tail}")


#: the line prefix of a served job's answer on the worker's stdout (other output may come before it)
ANSWER_PREFIX = "graphfeat-answer "
#: a served worker ends after the job that leaves it above this resident memory (MiB)
DEFAULT_MAX_RSS_MB = 2048


class Worker:
    """One MindSpore worker process for a series of jobs: ``worker.run(job, args, what)``.

    The process starts at the first job and answers each on one stdout line.
    It ends after a failed job and after a job that leaves it above
    ``max_rss_mb`` of memory; the next job starts a new one. `close` (or
    leaving a ``with`` block) ends it. One job at a time: give each thread its
    own Worker. ``threads``: see `run_job`.
    """

    def __init__(self, threads: int | None = None, max_rss_mb: int = DEFAULT_MAX_RSS_MB) -> None:
        self.threads = threads
        self.max_rss_mb = max_rss_mb
        self.started = 0  #: processes started so far
        self._proc: subprocess.Popen | None = None
        self._stderr = None
        self._lock = threading.Lock()

    def _start(self) -> subprocess.Popen:
        self._stderr = tempfile.TemporaryFile(mode="w+", prefix="graphfeat-worker-")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "exporters.worker", "--serve", str(self.max_rss_mb)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
            env=_worker_env(self.threads))
        self.started += 1
        return self._proc

    def run(self, job: str, args: dict[str, Any], what: str) -> Any:
        """Run ``job`` in this worker's process and return its result, or raise ``GraphfeatError``."""
        if not mindspore_available():
            raise GraphfeatError(f"{what} needs MindSpore, which is not installed; {INSTALL_HINT}")
        with self._lock:
            proc = self._proc if self._proc is not None and self._proc.poll() is None else self._start()
            self._stderr.seek(0)
            self._stderr.truncate()
            try:
                proc.stdin.write(json.dumps({"job": job, "args": args}) + "\n")
                proc.stdin.flush()
            except BrokenPipeError:
                pass  # it died: the read below finds no answer
            answer = None
            for line in proc.stdout:
                if line.startswith(ANSWER_PREFIX):
                    answer = json.loads(line[len(ANSWER_PREFIX):])
                    break
            if answer is None:  # the process died
                proc.wait()
                self._stderr.seek(0)
                stderr = self._stderr.read()
                self._end()
                raise _crashed(what, proc.returncode, stderr)
            if answer.get("last"):  # it ends after this job
                self._end()
        return _answer(answer, what)

    def _end(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def close(self) -> None:
        """End the worker process, if one runs."""
        with self._lock:
            self._end()

    def __enter__(self) -> "Worker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def run_job(job: str, args: dict[str, Any], what: str, threads: int | None = None,
            worker: Worker | None = None) -> Any:
    """Run ``job`` in a fresh worker process (or in ``worker``'s) and return its result, or raise
    ``GraphfeatError``. ``threads`` caps the worker's MindSpore and ONNX Runtime threads
    (``GRAPHFEAT_THREADS``, unless the environment sets it already); a ``worker`` has its own."""
    if worker is not None:
        return worker.run(job, args, what)
    if not mindspore_available():
        raise GraphfeatError(f"{what} needs MindSpore, which is not installed; {INSTALL_HINT}")
    proc = subprocess.run(
        [sys.executable, "-m", "exporters.worker", job, json.dumps(args)],
        capture_output=True, text=True, env=_worker_env(threads),
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise _crashed(what, proc.returncode, proc.stderr)
    return _answer(json.loads(lines[-1]), what)


def export_in_worker(model: str | None, output: str | os.PathLike | None = None,
                     options: ExportOptions | None = None, *, threads: int | None = None,
                     worker: Worker | None = None, **kwargs: Any) -> dict:
    """Export the registered ``model``, or (``model=None``) the cell that the factory ``options.cell``
    (``package.module:factory``, importable from the working directory or PYTHONPATH) returns when
    called with ``options.cell_kwargs``, in a fresh worker; the export report as a dict. ``options``
    (default: all defaults), with any of its fields given as keyword arguments instead or on top, are
    [`ExportOptions`][exporters.ExportOptions] (see ``exporters.export_model``). ``threads``, ``worker``: see `run_job`."""
    options = ExportOptions.of(options, kwargs, caller="export_in_worker")
    if (model is None) == (options.cell is None):
        raise GraphfeatError("give one registered MODEL name or --cell package.module:factory")
    checkpoint = str(Path(options.checkpoint).resolve()) if options.checkpoint else ""
    options = ExportOptions.of(options, {"checkpoint": checkpoint,
                                         "cell_kwargs": dict(options.cell_kwargs or {}) if options.cell else None})
    # the job's arguments: the model, the output, and the options' fields beside them
    args = {"model_name": model, "output": None if output is None else str(output), **options.to_json()}
    return run_job("export", args, what=f"export of {model or options.cell}", threads=threads, worker=worker)


def mindspore_levels(model_name: str, names: Sequence[str], x: np.ndarray, checkpoint: str = "",
                     seed: int = 0) -> list[np.ndarray]:
    """The MindSpore feature levels ``names`` of ``model_name`` on ``x``, computed in a worker."""
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="graphfeat-verify-") as tmp:
        np.save(os.path.join(tmp, "input.npy"), x)
        out = os.path.join(tmp, "levels.npz")
        run_job("levels", {"model": model_name, "names": list(names), "input": os.path.join(tmp, "input.npy"),
                           "output": out, "checkpoint": os.path.abspath(checkpoint) if checkpoint else "",
                           "seed": seed}, what=f"MindSpore reference for {model_name}")
        data = np.load(out)
        return [data[f"level/{n}"] for n in names]


def registered_models(worker: Worker | None = None) -> list[str]:
    """The names in the exporters' registry, listed by a fresh worker (or by ``worker``)."""
    return run_job("models", {}, what="graphfeat export --all", worker=worker)
