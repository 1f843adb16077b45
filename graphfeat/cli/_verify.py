"""``graphfeat verify``: each level a runtime produces against MindSpore, a reference file or the original."""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from ..errors import GraphfeatError
from ..report import check_report_path, printable, verify_table, write_junit, write_verify_html
from ..runtime import (DEFAULT_MIN_COSINE, DEFAULT_MIN_SQNR, DEFAULT_RTOLS, RUNTIMES, VerifyOptions, VerifyReport,
                       verify_runtimes)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="compare each level a runtime produces with the MindSpore reference")
    p.add_argument("model_path", metavar="CUT.onnx", help="a model written by graphfeat cut (or export --features-only)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="registered model name: compute the reference in MindSpore")
    src.add_argument("--reference", metavar="REF.npz", help="reference written by graphfeat export --reference")
    src.add_argument("--against", metavar="ORIGINAL.onnx",
                     help="the file this one was made from (before fp16, quantisation, optimisation): its levels, "
                          "run on ONNX Runtime on the same seeded images, are the reference (no MindSpore, no npz)")
    p.add_argument("--checkpoint", default="", help="with --model: the .ckpt the ONNX file was exported from")
    p.add_argument("--seed", type=int, default=0,
                   help="with --model: the seed the ONNX file was exported with (also seeds the images); "
                        "with --against: seeds the images")
    p.add_argument("--runtime", nargs="+", choices=RUNTIMES, default=["onnxruntime"], metavar="RUNTIME",
                   help=f"one or more of {', '.join(RUNTIMES)} (default onnxruntime); the reference is computed once")
    p.add_argument("--providers", nargs="+", metavar="EP",
                   help="ONNX Runtime execution providers, in order (e.g. CUDAExecutionProvider CPUExecutionProvider); "
                        "the report lists the ones really active")
    p.add_argument("--strict-providers", action="store_true",
                   help="exit 2 when a requested provider is not active (default: a warning on stderr)")
    p.add_argument("--batch", type=int,
                   help="batch size (default: every image the reference holds, else 1); larger than the reference "
                        "holds repeats its images, with a note")
    p.add_argument("--input-size", nargs=2, type=int, metavar=("H", "W"), help="only for models with a dynamic size")
    p.add_argument("--atol", type=float, default=0.0, help="absolute tolerance added to --rtol (default 0)")
    rtols = ", ".join(f"{v:g} {k}" for k, v in DEFAULT_RTOLS.items() if k != "float64")
    p.add_argument("--rtol", type=float, default=None,
                   help=f"max error relative to the level's max magnitude (default by the level's precision: {rtols}); "
                        "on a quantised level it is checked besides cosine and SQNR")
    p.add_argument("--min-cosine", type=float, default=None,
                   help=f"cosine floor (default {DEFAULT_MIN_COSINE:g} for quantised levels, none otherwise)")
    p.add_argument("--min-sqnr", type=float, default=None, metavar="DB",
                   help=f"SQNR floor in dB (default {DEFAULT_MIN_SQNR:g} for quantised levels, none otherwise)")
    p.add_argument("--json", action="store_true", help="print JSON with the figures under 'levels'")
    p.add_argument("--html", metavar="REPORT.html",
                   help="also write a self-contained HTML report (tables, error plot, pyramid, versions, the "
                        "command); written when levels fail too")
    p.add_argument("--junit-xml", metavar="FILE",
                   help="also write JUnit XML for CI: one testsuite per runtime, one testcase per level")


def run(args: argparse.Namespace) -> int:
    """Exit 0 if every level passes on every runtime, 1 if any fails (2 on bad input, via GraphfeatError).

    With one runtime the JSON is that runtime's report; with several it is
    ``{"ok": ..., "runtimes": [report, ...]}``. Warnings (an inactive provider) go to stderr, one line each.
    ``--html`` and ``--junit-xml`` are written whatever the verdict; a report path that is one of the inputs is
    refused before anything runs.
    """
    inputs = [args.model_path, args.reference, args.against]
    for path, flag in ((args.html, "--html"), (args.junit_xml, "--junit-xml")):
        if path:
            check_report_path(path, inputs, flag=flag)
    if args.html and args.junit_xml and Path(args.html).resolve() == Path(args.junit_xml).resolve():
        raise GraphfeatError("--html and --junit-xml name the same file; give each its own")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        options = VerifyOptions(model=args.model, checkpoint=args.checkpoint, reference=args.reference,
                                against=args.against, runtimes=tuple(args.runtime), batch=args.batch,
                                input_size=args.input_size, rtol=args.rtol, atol=args.atol,
                                min_cosine=args.min_cosine, min_sqnr=args.min_sqnr, seed=args.seed,
                                providers=args.providers, strict_providers=args.strict_providers)
        reports = verify_runtimes(args.model_path, options)
    for w in caught:
        print(f"graphfeat verify: warning: {printable(str(w.message))}", file=sys.stderr)
    ok = all(r.ok for r in reports)
    if args.json:
        doc = reports[0].as_dict() if len(reports) == 1 else {"ok": ok, "runtimes": [r.as_dict() for r in reports]}
        print(json.dumps(doc, indent=2))
    else:
        print("\n\n".join(verify_table(r) for r in reports))
    _write_reports(args, reports, options, inputs)
    return 0 if ok else 1


def _write_reports(args: argparse.Namespace, reports: list[VerifyReport], options: VerifyOptions,
                   inputs: list) -> None:
    """The ``--html`` page and the ``--junit-xml`` file, each named on stdout (stderr under ``--json``)."""
    written = []
    if args.html:
        written.append(write_verify_html(args.html, reports, options, argv=getattr(args, "argv", None)))
    if args.junit_xml:
        written.append(write_junit(args.junit_xml, reports, inputs))
    for path in written:
        print(f"wrote {path}", file=sys.stderr if args.json else sys.stdout)
