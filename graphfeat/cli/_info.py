"""``graphfeat info``: the feature layers as a table or JSON, optionally a pyramid plot."""
from __future__ import annotations

import argparse
import json

from ..info import feature_levels, stride_candidates
from ._args import add_level_sources
from ._format import candidates_table, levels_json, levels_table


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="list the model's feature layers")
    p.add_argument("model", help="input .onnx file")
    p.add_argument("--json", action="store_true", help="print JSON: {layers: [...]}")
    add_level_sources(p)
    p.add_argument("--plot", metavar="PNG", help="draw the pyramid to this image (needs graphfeat[plot])")


def run(args: argparse.Namespace) -> int:
    rows = feature_levels(args.model, reference=args.reference, like=args.like)
    candidates = [] if rows else stride_candidates(args.model)
    if args.plot:
        from ._plot import plot_pyramid  # matplotlib only when asked

        plot_pyramid(rows, args.plot)
    if args.json:
        print(json.dumps(levels_json(rows, candidates), indent=2))
    else:
        print(levels_table(rows) if rows or not candidates else candidates_table(candidates))
        if args.plot:
            print(f"wrote {args.plot}")
    return 0
