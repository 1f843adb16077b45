"""The ``graphfeat`` command line: one small function per subcommand.

To add a subcommand (``export``, ``verify``, ``demo``): write
``cmd_<name>(args) -> int``, add its subparser in :func:`build_parser`, and
register it in :data:`COMMANDS`. A GraphfeatError anywhere becomes a message
on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from .errors import GraphfeatError


def cmd_cut(args: argparse.Namespace) -> int:
    """``graphfeat cut``: write MODEL.features.onnx with the chosen layers as outputs."""
    from .cut import cut_file

    out = cut_file(
        args.model,
        args.output,
        layers=args.layers,
        indices=args.indices,
        tensors=args.tensors,
        keep_outputs=args.keep_outputs,
        force=args.force,
    )
    print(f"wrote {out}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """``graphfeat info``: the feature layers as a table or JSON, optionally a pyramid plot."""
    from .info import feature_levels, format_table, levels_json

    rows = feature_levels(args.model)
    if args.plot:
        from .plot import plot_pyramid

        plot_pyramid(rows, args.plot)
    if args.json:
        print(json.dumps(levels_json(rows), indent=2))
    else:
        print(format_table(rows))
        if args.plot:
            print(f"wrote {args.plot}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .cli_export import cmd_export as run

    return run(args)


def cmd_verify(args: argparse.Namespace) -> int:
    from .cli_verify import cmd_verify as run

    return run(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from .cli_verify import cmd_demo as run

    return run(args)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "export": cmd_export,
    "info": cmd_info,
    "cut": cmd_cut,
    "verify": cmd_verify,
    "demo": cmd_demo,
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one subparser per command."""
    parser = argparse.ArgumentParser(
        prog="graphfeat", description="Portable multi-scale feature extraction from ONNX backbones."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from .cli_export import add_parser as add_export_parser
    from .cli_verify import add_demo_parser, add_verify_parser

    add_export_parser(sub)

    p = sub.add_parser("cut", help="keep feature layers as the model's outputs and drop the rest")
    p.add_argument("model", help="input .onnx file")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--layers", nargs="*", metavar="NAME", help="module names, e.g. layer1 layer2 features.3")
    which.add_argument("--indices", nargs="*", type=int, metavar="I", help="feature-level indices (negative from the end)")
    which.add_argument("--tensors", nargs="*", metavar="T", help="tensor names, kept in the given order")
    p.add_argument("-o", "--output", help="output file (default: MODEL.features.onnx beside the input)")
    p.add_argument("--keep-outputs", action="store_true", help="keep the model's original outputs too")
    p.add_argument("--force", action="store_true", help="overwrite an existing output (or the input)")

    p = sub.add_parser("info", help="list the model's feature layers")
    p.add_argument("model", help="input .onnx file")
    p.add_argument("--json", action="store_true", help="print JSON: {layers: [...]}")
    p.add_argument("--plot", metavar="PNG", help="draw the pyramid to this image (needs graphfeat[plot])")

    add_verify_parser(sub)
    add_demo_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code (0 ok, 2 bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except GraphfeatError as exc:
        from .info import printable

        print(f"graphfeat {args.command}: error: {printable(str(exc))}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
