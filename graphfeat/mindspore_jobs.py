"""Run MindSpore work (export, reference levels) in a fresh worker process.

``graphfeat`` never imports MindSpore itself: these functions start
``python -m exporters.worker`` and read back its JSON result. Without the
``mindspore`` extra they raise a ``GraphfeatError`` that says how to install it.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from typing import Any

from .errors import GraphfeatError

INSTALL_HINT = "install the MindSpore extra: pip install 'graphfeat[mindspore]' (or pip install -e '.[mindspore]')"


def mindspore_available() -> bool:
    """Whether ``mindspore`` and ``exporters`` can be imported here."""
    try:
        return all(importlib.util.find_spec(m) is not None for m in ("mindspore", "exporters"))
    except (ImportError, ValueError):
        return False


def run_job(job: str, args: dict[str, Any], what: str) -> dict[str, Any]:
    """Run ``job`` in a worker process and return its result, or raise ``GraphfeatError``."""
    if not mindspore_available():
        raise GraphfeatError(f"{what} needs MindSpore, which is not installed; {INSTALL_HINT}")
    env = dict(os.environ, GLOG_v=os.environ.get("GLOG_v", "3"))
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
