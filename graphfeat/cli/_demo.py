"""``graphfeat demo``: the main job, export -> info -> cut -> verify on one model."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import GraphfeatError
from ..info import feature_levels
from ..levels import FeatureInfo
from ..report.text import verify_table
from ..runtime import DEFAULT_INPUT_SIZE, export_in_worker, verify
from ..surgery import cut_file
from ._format import export_report, levels_table

DEFAULT_DEMO_MODEL = "resnet50"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the main job: export, info, cut, verify on one model")
    p.add_argument("model", nargs="?", default=DEFAULT_DEMO_MODEL, help=f"registered model (default {DEFAULT_DEMO_MODEL})")
    p.add_argument("--out-dir", default="models_onnx", help="where the files go (default models_onnx/)")
    p.add_argument("--input-size", nargs=2, type=int, default=list(DEFAULT_INPUT_SIZE), metavar=("H", "W"))
    p.add_argument("--layers", nargs="*", help="levels to cut (default: the deepest level at strides 4, 8, 16, 32)")


def run(args: argparse.Namespace) -> int:
    """Export MODEL, show its levels, cut the pyramid, verify it on ONNX Runtime at batch 1 and 3."""
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path, ref_path = out / f"{args.model}.onnx", out / f"{args.model}.reference.npz"
    cut_path = out / f"{args.model}.features.onnx"
    print(f"== 1. export {args.model} (MindSpore -> ONNX, levels recorded and proven)")
    print(export_report(export_in_worker(args.model, onnx_path, input_size=args.input_size,
                                         reference=ref_path, force=True)))
    print(f"\n== 2. graphfeat info {onnx_path}")
    rows = feature_levels(onnx_path)
    print(levels_table(rows))
    info = FeatureInfo([{"name": r.name, "chs": r.chs, "reduction": r.reduction} for r in rows])
    layers = args.layers or [info.module_name(i) for i in info.pyramid_indices()]
    print(f"\n== 3. graphfeat cut {onnx_path} --layers {' '.join(layers)}")
    written = cut_file(onnx_path, cut_path, layers=layers, force=True)
    print(f"wrote {written}")
    print(levels_table(feature_levels(written)))
    ok = True
    for batch in (1, 3):
        print(f"\n== 4. graphfeat verify {written} --reference {ref_path} --batch {batch}")
        report = verify(written, reference=ref_path, batch=batch)
        print(verify_table(report))
        ok = ok and report.ok
    if not ok:
        raise GraphfeatError("verification failed")
    return 0
