"""Argument groups that several verbs share (Polygraphy's ``tools/args`` idea): defined once here."""
from __future__ import annotations

import argparse


def add_level_sources(p: argparse.ArgumentParser) -> None:
    """``--reference`` and ``--like``: where to find, by value, levels a tool renamed or whose metadata it dropped."""
    p.add_argument("--reference", metavar="REF.npz",
                   help="the export's reference: find levels a tool renamed (or a file without metadata) by value")
    p.add_argument("--like", metavar="ORIGINAL.onnx",
                   help="the file before the tool: run it and find its levels in this one by value")
