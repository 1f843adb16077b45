"""The model registry: ``register_model`` and ``list_models``."""
from __future__ import annotations

import difflib
import fnmatch
from typing import Callable

from graphfeat.errors import GraphfeatError

_model_entrypoints: dict[str, Callable] = {}
_model_family: dict[str, str] = {}


def register_model(fn: Callable) -> Callable:
    """Decorator: register a model-creation function under its own name.

    The family is the last part of the defining module's name
    (``exporters.models.resnet`` -> ``resnet``).
    """
    name = fn.__name__
    if name in _model_entrypoints:
        raise GraphfeatError(f"model '{name}' is registered twice ({fn.__module__})")
    _model_entrypoints[name] = fn
    _model_family[name] = fn.__module__.rsplit(".", 1)[-1]
    return fn


def list_models(filter: str = "", family: str | None = None) -> list[str]:
    """Registered model names, sorted, optionally matching a glob ``filter`` and a ``family``."""
    names = sorted(_model_entrypoints)
    if filter:
        names = [n for n in names if fnmatch.fnmatch(n, filter)]
    if family is not None:
        names = [n for n in names if _model_family[n] == family]
    return names


def list_families() -> list[str]:
    """Registered families, in the order their first model was registered."""
    return list(dict.fromkeys(_model_family.values()))


def model_family(name: str) -> str:
    """The family (module) a registered model belongs to."""
    return _model_family[_check(name)]


def model_entrypoint(name: str) -> Callable:
    """The creation function of a registered model."""
    return _model_entrypoints[_check(name)]


def _check(name: str) -> str:
    if name not in _model_entrypoints:
        close = difflib.get_close_matches(name, list(_model_entrypoints), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise GraphfeatError(
            f"unknown model '{name}'.{hint} Registered models: {', '.join(sorted(_model_entrypoints))}"
        )
    return name
