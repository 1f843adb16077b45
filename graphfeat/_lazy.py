"""A package's public names, imported on first use (PEP 562 module ``__getattr__``).

``graphfeat export`` hands its job to a MindSpore worker process; that process
should start before onnx, networkx and ONNX Runtime are imported into the
parent (their import is a noticeable share of a short command), which a
package ``__init__`` importing every layer would force. A package lists its names in ``__all__`` and the module each lives
in, and `lazy_exports` gives it the module-level ``__getattr__`` and
``__dir__`` that import the home module when the name is first used.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, homes: dict[str, list[str]]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, whose names ``homes[m]`` live in module ``m`` (relative,
    e.g. ``".info"``); a name is imported on first use, then kept in the package's namespace. A name whose
    home is its own module (``{".testing": ["testing"]}``) is that submodule. The names must be the
    package's ``__all__``, exactly."""
    namespace = importlib.import_module(package).__dict__
    home = {name: module for module, names in homes.items() for name in names}
    if sorted(home) != sorted(namespace["__all__"]):
        raise ImportError(f"{package}: __all__ and the homes of its names differ: "
                          f"{sorted(set(home) ^ set(namespace['__all__']))}")

    def __getattr__(name: str) -> Any:
        if name not in home:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(home[name], package)
        value = module if home[name] == f".{name}" else getattr(module, name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(home))

    return __getattr__, __dir__
