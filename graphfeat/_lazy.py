"""A package's public names, imported on first use (PEP 562 module ``__getattr__``).

``graphfeat export`` hands its job to a MindSpore worker process; that process
should start before onnx, networkx and ONNX Runtime are imported into the
parent (~0.3 s), which a package ``__init__`` importing every layer would
force. A package lists where each of its names lives, and
:func:`lazy_exports` gives it the module-level ``__getattr__`` and
``__dir__`` that import the home module when the name is first used.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, homes: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, whose name ``n`` lives in module ``homes[n]`` (relative,
    e.g. ``".info"``); a name is imported on first use, then kept in the package's namespace."""
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(homes[name], package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(homes))

    return __getattr__, __dir__
