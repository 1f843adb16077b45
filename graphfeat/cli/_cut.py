"""``graphfeat cut``: write MODEL.features.onnx with the chosen layers as outputs."""
from __future__ import annotations

import argparse

from ..surgery import cut_file


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cut", help="keep feature layers as the model's outputs and drop the rest")
    p.add_argument("model", help="input .onnx file")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--layers", nargs="*", metavar="NAME", help="module names, e.g. layer1 layer2 features.3")
    which.add_argument("--indices", nargs="*", type=int, metavar="I", help="feature-level indices (negative from the end)")
    which.add_argument("--tensors", nargs="*", metavar="T", help="tensor names, kept in the given order")
    p.add_argument("-o", "--output", help="output file (default: MODEL.features.onnx beside the input)")
    p.add_argument("--keep-outputs", action="store_true", help="keep the model's original outputs too")
    p.add_argument("--force", action="store_true", help="overwrite an existing output (or the input)")


def run(args: argparse.Namespace) -> int:
    out = cut_file(args.model, args.output, layers=args.layers, indices=args.indices, tensors=args.tensors,
                   keep_outputs=args.keep_outputs, force=args.force)
    print(f"wrote {out}")
    return 0
