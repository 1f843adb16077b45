"""What produced a report: the package versions and the command, so a result can be reproduced.

Versions are those of the modules this process runs (``__version__``), not
of whatever distribution metadata says, since a GPU build of ONNX Runtime is
installed under another name.
"""
from __future__ import annotations

import importlib
import platform
import shlex
import sys
from collections.abc import Sequence

#: modules every report names, then the runtimes' own when they ran
_ALWAYS = ("graphfeat", "onnx", "onnxruntime", "numpy")
_BY_RUNTIME = {"openvino": "openvino"}


def _version(module: str) -> str:
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return "not installed"
    found = getattr(mod, "__version__", None)
    if found is None and module == "openvino":
        from openvino import get_version  # older releases have no __version__

        found = get_version()
    return str(found or "unknown")


def versions(runtimes: Sequence[str] = ()) -> list[tuple[str, str]]:
    """``(name, version)`` of Python, graphfeat, onnx, onnxruntime, numpy and each of ``runtimes`` that is a
    separate package (OpenVINO)."""
    found = [("python", f"{platform.python_version()} ({platform.python_implementation()}, {platform.system()})")]
    modules = list(_ALWAYS) + [_BY_RUNTIME[r] for r in runtimes if r in _BY_RUNTIME]
    return found + [(m, _version(m)) for m in dict.fromkeys(modules)]


def command(argv: Sequence[str] | None) -> str:
    """``argv`` as a shell command line (this process's ``sys.argv`` when None)."""
    return shlex.join(list(argv if argv is not None else sys.argv))
