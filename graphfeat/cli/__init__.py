"""The ``graphfeat`` command line: one thin module per verb over the library.

Each verb module (``_export``, ``_info``, ``_cut``, ``_verify``, ``_demo``)
has ``add_parser(sub)`` and ``run(args) -> int``; shared text formatting
lives in `_format`. To add a verb, write its module and list it in
`VERBS`. Only the verb given is imported (all of them for ``--help``):
``graphfeat export`` starts its MindSpore worker without importing onnx,
networkx or ONNX Runtime first. A GraphfeatError anywhere becomes one line on stderr and exit
code 2; a GraphfeatNote one line on stderr, and the command goes on. This is the top layer: nothing in graphfeat imports it.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType

from ..errors import GraphfeatError, GraphfeatNote
from ._format import printable

#: the verbs in the order ``--help`` lists them; verb ``v`` lives in module ``._v``
VERBS = ("export", "info", "cut", "verify", "demo")


def _verb(name: str) -> ModuleType:
    return importlib.import_module(f"._{name}", __name__)


def build_parser(verbs: Sequence[str] = VERBS) -> argparse.ArgumentParser:
    """The argument parser with one subparser per verb in ``verbs`` (all of them by default)."""
    parser = argparse.ArgumentParser(
        prog="graphfeat", description="Portable multi-scale feature extraction from ONNX backbones."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in verbs:
        _verb(name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code (0 ok, 1 a verification failed, 2 bad input)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    # a verb's arguments parse the same with its subparser alone; anything else (--help, a typo) gets all
    args = build_parser(argv[:1] if argv[:1] and argv[0] in VERBS else VERBS).parse_args(argv)
    args.argv = ["graphfeat", *argv]  # the command, as a report records it
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", GraphfeatNote)
            warnings.showwarning = lambda message, *_: print(  # one line each, as for errors
                f"graphfeat {args.command}: note: {printable(str(message))}", file=sys.stderr)
            return _verb(args.command).run(args)
    except GraphfeatError as exc:
        print(f"graphfeat {args.command}: error: {printable(str(exc))}", file=sys.stderr)
        return 2


__all__ = ["VERBS", "main"]
