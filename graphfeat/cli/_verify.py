"""``graphfeat verify``: each level a runtime produces against MindSpore or a reference file."""
from __future__ import annotations

import argparse
import json

from ..runtime import DEFAULT_RTOL, RUNTIMES, verify_runtimes
from ._format import verify_table


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="compare each level a runtime produces with the MindSpore reference")
    p.add_argument("model_path", metavar="CUT.onnx", help="a model written by graphfeat cut (or export --features-only)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="registered model name: compute the reference in MindSpore")
    src.add_argument("--reference", metavar="REF.npz", help="reference written by graphfeat export --reference")
    p.add_argument("--checkpoint", default="", help="with --model: the .ckpt the ONNX file was exported from")
    p.add_argument("--seed", type=int, default=0, help="with --model: the seed the ONNX file was exported with")
    p.add_argument("--runtime", nargs="+", choices=RUNTIMES, default=["onnxruntime"], metavar="RUNTIME",
                   help=f"one or more of {', '.join(RUNTIMES)} (default onnxruntime); the reference is computed once")
    p.add_argument("--batch", type=int, help="batch size (default 1, or the reference's)")
    p.add_argument("--input-size", nargs=2, type=int, metavar=("H", "W"), help="only for models with a dynamic size")
    p.add_argument("--atol", type=float, default=0.0, help="absolute tolerance added to --rtol (default 0)")
    p.add_argument("--rtol", type=float, default=DEFAULT_RTOL,
                   help="max error relative to the level's max magnitude (default 1e-4)")
    p.add_argument("--json", action="store_true", help="print JSON with the figures under 'levels'")


def run(args: argparse.Namespace) -> int:
    """Exit 0 if every level passes on every runtime, 1 if any fails (2 on bad input, via GraphfeatError).

    With one runtime the JSON is that runtime's report; with several it is
    ``{"ok": ..., "runtimes": [report, ...]}``.
    """
    reports = verify_runtimes(args.model_path, model=args.model, checkpoint=args.checkpoint,
                              reference=args.reference, runtimes=args.runtime, batch=args.batch,
                              input_size=args.input_size, rtol=args.rtol, atol=args.atol, seed=args.seed)
    ok = all(r.ok for r in reports)
    if args.json:
        doc = reports[0].as_dict() if len(reports) == 1 else {"ok": ok, "runtimes": [r.as_dict() for r in reports]}
        print(json.dumps(doc, indent=2))
    else:
        print("\n\n".join(verify_table(r) for r in reports))
    return 0 if ok else 1
