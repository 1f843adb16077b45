"""The ``graphfeat`` command line: one thin module per verb over the library.

Each verb module (``_export``, ``_info``, ``_cut``, ``_verify``, ``_demo``)
has ``add_parser(sub)`` and ``run(args) -> int``; shared text formatting
lives in :mod:`._format`. To add a verb, write its module and list it in
:data:`VERBS`. A GraphfeatError anywhere becomes one line on stderr and exit
code 2. This is the top layer: nothing in graphfeat imports it.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import GraphfeatError
from . import _cut, _demo, _export, _info, _verify
from ._format import printable

#: the verbs in the order ``--help`` lists them
VERBS = {"export": _export, "info": _info, "cut": _cut, "verify": _verify, "demo": _demo}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one subparser per verb."""
    parser = argparse.ArgumentParser(
        prog="graphfeat", description="Portable multi-scale feature extraction from ONNX backbones."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for verb in VERBS.values():
        verb.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code (0 ok, 1 a verification failed, 2 bad input)."""
    args = build_parser().parse_args(argv)
    try:
        return VERBS[args.command].run(args)
    except GraphfeatError as exc:
        print(f"graphfeat {args.command}: error: {printable(str(exc))}", file=sys.stderr)
        return 2


__all__ = ["VERBS", "build_parser", "main"]
