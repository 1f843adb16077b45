"""Backbone families: every module in this package registers its models on import.

Add a family by dropping a module here that decorates its creation functions
with ``@register_model`` (see docs/adding-a-backbone.md). ``layers`` holds
shared building blocks and registers nothing.
"""
import importlib
import pkgutil

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if not _info.name.startswith("_") and _info.name != "layers":
        importlib.import_module(f"{__name__}.{_info.name}")
