"""``graphfeat verify`` and ``graphfeat demo`` (the main job)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .errors import GraphfeatError
from .feature_info import FeatureInfo
from .proof import DEFAULT_RTOL
from .runtimes import RUNTIMES


def add_verify_parser(sub: argparse._SubParsersAction) -> None:
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


def cmd_verify(args: argparse.Namespace) -> int:
    """Exit 0 if every level passes on every runtime, 1 if any fails (2 on bad input, via GraphfeatError).

    With one runtime the JSON is that runtime's report; with several it is
    ``{"ok": ..., "runtimes": [report, ...]}``.
    """
    from .verify import verify_runtimes

    reports = verify_runtimes(args.model_path, model=args.model, checkpoint=args.checkpoint,
                              reference=args.reference, runtimes=args.runtime, batch=args.batch,
                              input_size=args.input_size, rtol=args.rtol, atol=args.atol, seed=args.seed)
    ok = all(r.ok for r in reports)
    if args.json:
        doc = reports[0].as_dict() if len(reports) == 1 else {"ok": ok, "runtimes": [r.as_dict() for r in reports]}
        print(json.dumps(doc, indent=2))
    else:
        print("\n\n".join(r.table() for r in reports))
    return 0 if ok else 1


DEFAULT_DEMO_MODEL = "resnet50"


def add_demo_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the main job: export, info, cut, verify on one model")
    p.add_argument("model", nargs="?", default=DEFAULT_DEMO_MODEL, help=f"registered model (default {DEFAULT_DEMO_MODEL})")
    p.add_argument("--out-dir", default="models_onnx", help="where the files go (default models_onnx/)")
    p.add_argument("--input-size", nargs=2, type=int, default=[224, 224], metavar=("H", "W"))
    p.add_argument("--layers", nargs="*", help="levels to cut (default: the deepest level at strides 4, 8, 16, 32)")


def cmd_demo(args: argparse.Namespace) -> int:
    """Export MODEL, show its levels, cut the pyramid, verify it on ONNX Runtime at batch 1 and 3."""
    from .cli_export import export_one, format_report
    from .cut import cut_file
    from .info import feature_levels, format_table
    from .verify import verify

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path, ref_path = out / f"{args.model}.onnx", out / f"{args.model}.reference.npz"
    cut_path = out / f"{args.model}.features.onnx"
    print(f"== 1. export {args.model} (MindSpore -> ONNX, levels recorded and proven)")
    export_args = argparse.Namespace(input_size=args.input_size, checkpoint="", seed=0, static_batch=False,
                                     features_only=False, out_indices=None, reference=str(ref_path),
                                     opset=17, force=True)
    print(format_report(export_one(export_args, args.model, str(onnx_path))))
    print(f"\n== 2. graphfeat info {onnx_path}")
    rows = feature_levels(onnx_path)
    print(format_table(rows))
    info = FeatureInfo([{"name": r.name, "chs": r.chs, "reduction": r.reduction} for r in rows])
    layers = args.layers or [info.module_name(i) for i in info.pyramid_indices()]
    print(f"\n== 3. graphfeat cut {onnx_path} --layers {' '.join(layers)}")
    written = cut_file(onnx_path, cut_path, layers=layers, force=True)
    print(f"wrote {written}")
    print(format_table(feature_levels(written)))
    ok = True
    for batch in (1, 3):
        print(f"\n== 4. graphfeat verify {written} --reference {ref_path} --batch {batch}")
        report = verify(written, reference=ref_path, batch=batch)
        print(report.table())
        ok = ok and report.ok
    if not ok:
        raise GraphfeatError("verification failed")
    return 0
