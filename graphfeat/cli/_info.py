"""``graphfeat info``: the feature layers as a table or JSON, optionally a pyramid plot or an HTML stride map."""
from __future__ import annotations

import argparse
import json
import sys

from ..info import feature_levels, stride_candidates, stride_map
from ..report import check_report_path, write_stride_map
from ._args import add_level_sources
from ._format import candidates_table, levels_json, levels_table


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="list the model's feature layers")
    p.add_argument("model", help="input .onnx file")
    p.add_argument("--json", action="store_true", help="print JSON: {layers: [...]}")
    add_level_sources(p)
    p.add_argument("--plot", metavar="PNG", help="draw the pyramid to this image (needs graphfeat[plot])")
    p.add_argument("--html", metavar="REPORT.html",
                   help="also write the stride map: the trunk from input to head coloured by stride, the candidates "
                        "and the file's levels marked, each tensor's op, shape and layout (to pick --tensors)")


def run(args: argparse.Namespace) -> int:
    sources = [args.reference, args.like]
    smap = None
    if args.html:  # the map's analysis is the one the table's rows come from: measured once
        check_report_path(args.html, [args.model, *sources])
        smap = stride_map(args.model, reference=args.reference, like=args.like)
    rows = smap.levels if smap is not None else feature_levels(args.model, reference=args.reference, like=args.like)
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
    if smap is not None:
        written = write_stride_map(args.html, smap, args.model, argv=getattr(args, "argv", None), inputs=sources)
        print(f"wrote {written}", file=sys.stderr if args.json else sys.stdout)
    return 0
