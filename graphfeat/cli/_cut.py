"""``graphfeat cut``: write MODEL.features.onnx with the chosen layers as outputs."""
from __future__ import annotations

import argparse

from ..levels import read_feature_record
from ..onnxfile import load_skeleton
from ..surgery import LAYOUT_CHOICES, CutOptions, cut_file
from ._args import add_level_sources
from ._format import cut_table


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cut", help="keep feature layers as the model's outputs and drop the rest")
    p.add_argument("model", help="input .onnx file")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--layers", nargs="*", metavar="NAME", help="module names, e.g. layer1 layer2 features.3")
    which.add_argument("--indices", nargs="*", type=int, metavar="I", help="feature-level indices (negative from the end)")
    which.add_argument("--tensors", nargs="*", metavar="T", help="tensor names, kept in the given order")
    which.add_argument("--strides", nargs="*", metavar="S",
                       help="one level per stride, measured (e.g. 4 8 16 32): the deepest named level at each "
                            "stride, or on an anonymous graph the deepest trunk tensor; outputs stride4, ...")
    p.add_argument("-o", "--output", help="output file (default: MODEL.features.onnx beside the input)")
    p.add_argument("--keep-outputs", action="store_true", help="keep the model's original outputs too")
    p.add_argument("--neck", action="store_true",
                   help="with --strides on a detector: the neck's outputs (what the heads read), not the backbone's levels")
    p.add_argument("--layout", choices=LAYOUT_CHOICES, default="nchw",
                   help="with --strides: deliver every level as NCHW (default), or as the graph computes it")
    add_level_sources(p)
    p.add_argument("--force", action="store_true", help="overwrite an existing output (or the input)")


def run(args: argparse.Namespace) -> int:
    options = CutOptions(layers=args.layers, indices=args.indices, tensors=args.tensors, strides=args.strides,
                         neck=args.neck, layout=args.layout, keep_outputs=args.keep_outputs, reference=args.reference,
                         like=args.like)
    out = cut_file(args.model, args.output, options, force=args.force)
    record, _ = read_feature_record(load_skeleton(out)[0])
    print(cut_table((record or {}).get("levels", [])))
    print(f"wrote {out}")
    return 0
