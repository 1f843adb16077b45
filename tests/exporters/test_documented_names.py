"""Every ``graphfeat.X`` and ``exporters.X`` the README and the guides name exists: an attribute of the package, or
one of its modules."""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

import exporters  # noqa: F401  (first: MindSpore's set-up)

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
NAMES = sorted({m.group(0) for page in PAGES for m in re.finditer(r"\b(graphfeat|exporters)\.(?!md\b)[A-Za-z_]\w*",
                                                                  page.read_text())})


def test_the_pages_name_something():
    assert "exporters.export_model" in NAMES and "graphfeat.cut" in NAMES


@pytest.mark.parametrize("dotted", NAMES)
def test_a_documented_name_exists(dotted):
    package, name = dotted.split(".")
    module = importlib.import_module(package)
    if hasattr(module, name):
        return
    importlib.import_module(dotted)  # a module of the package (graphfeat.runtime, exporters.catalog, ...)
