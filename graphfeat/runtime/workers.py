"""The one protocol for MindSpore work: a fresh ``python -m exporters.worker JOB ARGS`` process.

``graphfeat`` never imports MindSpore itself. Each job's arguments go out as
JSON; the worker's last stdout line is ``{"ok": true, "result": ...}`` or
``{"ok": false, "kind": "user"|"internal", "error": "..."}``. The jobs, one
client function each: ``export`` (:func:`export_in_worker`), ``levels``
(:func:`mindspore_levels`) and ``models`` (:func:`registered_models`). Without
the ``mindspore`` extra they raise a GraphfeatError that says how to install it.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GraphfeatError

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
    """The thread count a parent set for this worker (``GRAPHFEAT_THREADS``, see :func:`run_job`), or None:
    each library's default."""
    value = os.environ.get(THREADS_VAR, "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def run_job(job: str, args: dict[str, Any], what: str, threads: int | None = None) -> Any:
    """Run ``job`` in a worker process and return its result, or raise ``GraphfeatError``.
    ``threads`` caps the worker's MindSpore and ONNX Runtime threads (``GRAPHFEAT_THREADS``, unless the
    environment sets it already)."""
    if not mindspore_available():
        raise GraphfeatError(f"{what} needs MindSpore, which is not installed; {INSTALL_HINT}")
    env = dict(os.environ, GLOG_v=os.environ.get("GLOG_v", "3"))
    if threads:
        env.setdefault(THREADS_VAR, str(threads))  # one set by the user wins (0: the libraries' defaults)
    proc = subprocess.run(
        [sys.executable, "-m", "exporters.worker", job, json.dumps(args)],
        capture_output=True, text=True, env=env,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise GraphfeatError(f"{what} failed: the MindSpore worker exited with code {proc.returncode}:\n{tail}")
    result = json.loads(lines[-1])
    if not result["ok"]:
        prefix = "" if result.get("kind") == "user" else "internal error: "
        raise GraphfeatError(f"{what} failed: {prefix}{result['error']}")
    return result["result"]


def export_in_worker(model: str | None, output: str | os.PathLike | None = None, *,
                     input_size: Sequence[int] = (224, 224), checkpoint: str | os.PathLike = "", seed: int = 0,
                     static_batch: bool = False, features_only: bool = False,
                     out_indices: Sequence[int] | None = None, reference: str | os.PathLike | None = None,
                     opset: int = 17, force: bool = False, cell: str | None = None,
                     cell_kwargs: dict | None = None, dynamic_size: bool = False,
                     second_size: Sequence[int] | None = None, threads: int | None = None) -> dict:
    """Export the registered ``model``, or (``model=None``) the cell that the factory ``cell``
    (``package.module:factory``, importable from the working directory or PYTHONPATH) returns when
    called with ``cell_kwargs``, in a fresh worker; the export report as a dict (see
    ``exporters.export_model`` for the arguments). ``threads``: see :func:`run_job`."""
    if (model is None) == (cell is None):
        raise GraphfeatError("give one registered MODEL name or --cell package.module:factory")
    return run_job("export", {
        "model_name": model,
        **({"cell": cell, "cell_kwargs": dict(cell_kwargs or {})} if cell else {}),
        "output": None if output is None else str(output),
        "input_size": list(input_size),
        "checkpoint_path": str(Path(checkpoint).resolve()) if checkpoint else "",
        "seed": seed,
        "static_batch": static_batch,
        "features_only": features_only,
        "out_indices": None if out_indices is None else list(out_indices),
        "reference": None if reference is None else str(reference),
        "opset": opset,
        "force": force,
        "dynamic_size": dynamic_size,
        "second_size": None if second_size is None else list(second_size),
    }, what=f"export of {model or cell}", threads=threads)


def mindspore_levels(model_name: str, names: Sequence[str], x: np.ndarray, checkpoint: str = "",
                     seed: int = 0) -> list[np.ndarray]:
    """The MindSpore feature levels ``names`` of ``model_name`` on ``x``, computed in a worker."""
    with tempfile.TemporaryDirectory(prefix="graphfeat-verify-") as tmp:
        np.save(os.path.join(tmp, "input.npy"), x)
        out = os.path.join(tmp, "levels.npz")
        run_job("levels", {"model": model_name, "names": list(names), "input": os.path.join(tmp, "input.npy"),
                           "output": out, "checkpoint": os.path.abspath(checkpoint) if checkpoint else "",
                           "seed": seed}, what=f"MindSpore reference for {model_name}")
        data = np.load(out)
        return [data[f"level/{n}"] for n in names]


def registered_models() -> list[str]:
    """The names in the exporters' registry, listed by a worker."""
    return run_job("models", {}, what="graphfeat export --all")
