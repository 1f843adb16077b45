"""``graphfeat verify --html``: one self-contained page showing how each level compared, on each runtime.

It is the artefact that shows a failure, so it is written whatever the
verdict: per runtime a table of every level (shape, dtype, max abs/rel error,
cosine, SQNR, the criterion, a pass/fail mark) and an error plot; the pyramid
as a picture; where the reference came from; the providers that really ran,
the versions and the command, so the result can be reproduced.
"""
from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import GraphfeatError
from ..levels import LevelRecord, read_metadata, record_levels
from ..onnxfile import load_skeleton
from ..runtime import VerifyOptions, VerifyReport
from .environment import command, versions
from .error_plot import error_plot_svg
from .markup import attrs, esc
from .output import write_report
from .page import Markup, facts, page, table
from .pyramid import PyramidLevel, pyramid_svg

LEVEL_HEADER = ("level", "shape", "dtype", "max_abs", "max_rel", "cosine", "SQNR dB", "criterion", "result")
_NUM = (None, None, None, "num", "num", "num", "num", "wrap", "wrap")


def _sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def reference_origin(options: VerifyOptions) -> str:
    """Where the expected levels came from: MindSpore's model, seed and checkpoint; an npz (with its sha256);
    or the original ONNX file run on ONNX Runtime."""
    if options.model is not None:
        weights = f"checkpoint {options.checkpoint}" if options.checkpoint else "no checkpoint"
        return f"MindSpore model {options.model}, seed {options.seed}, {weights}"
    if options.reference is not None:
        try:
            digest = f" (sha256 {_sha256(options.reference)[:16]})"
        except OSError:
            digest = ""
        return f"reference file {options.reference}{digest}, written by graphfeat export --reference"
    return f"original ONNX file {options.against}, run on ONNX Runtime on images seeded with {options.seed}"


def _number(value: float, spec: str) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "\u221e" if value > 0 else "-\u221e"
    return format(value, spec)


def _mark(ok: bool, note: str = "") -> Markup:
    if ok:
        return Markup('<span class="mark pass">\u2713 pass</span>')
    return Markup('<span class="mark fail">\u2717 FAIL</span>' + (f" {esc(note)}" if note else ""))


def _levels_table(report: VerifyReport) -> str:
    rows = [[m.name, "x".join(map(str, m.shape)), m.dtype or "?", _number(m.max_abs, ".2e"),
             _number(m.max_rel, ".2e"), _number(m.cosine, ".6f"), _number(m.sqnr, ".1f"), m.criterion,
             _mark(m.ok, m.note)] for m in report.levels]
    row_attrs = [{"class_": f"level {'pass' if m.ok else 'fail'}", "data_level": m.name,
                  "data_runtime": report.runtime} for m in report.levels]
    return table(LEVEL_HEADER, rows, cls="levels", row_attrs=row_attrs, col_cls=_NUM)


def _runtime_section(report: VerifyReport) -> str:
    verdict = "pass" if report.ok else "fail"
    passed = sum(m.ok for m in report.levels)
    providers = ", ".join(report.providers) or "(the runtime's own)"
    pairs = [("providers active", providers)]
    if report.requested_providers and report.requested_providers != report.providers:
        pairs.append(("providers requested", ", ".join(report.requested_providers)))
    pairs += [("compared with", report.source), ("input", "x".join(map(str, report.input_shape))),
              ("distinct images", report.images)]
    pairs += [("note", n) for n in report.notes]
    return (f"<section{attrs(class_=f'runtime {verdict}', data_runtime=report.runtime)}><h2>"
            f"{esc(report.runtime)}: <span class=\"verdict {verdict}\">"
            f"{'PASS' if report.ok else 'FAIL'}</span> ({passed} of {len(report.levels)} levels pass)</h2>"
            + facts(pairs) + _levels_table(report)
            + error_plot_svg(report.levels, label=f"error per level on {report.runtime}") + "</section>")


def _record(path: str) -> dict[str, LevelRecord]:
    """The file's levels by name (their stride and channels for the picture); empty when unreadable."""
    try:
        return {lv.name: lv for lv in record_levels(read_metadata(load_skeleton(path)[0]))}
    except GraphfeatError:
        return {}


def _pyramid(reports: Sequence[VerifyReport]) -> str:
    record = _record(reports[0].model)
    status: dict[str, bool] = {}
    for r in reports:
        for m in r.levels:
            status[m.name] = status.get(m.name, True) and m.ok
    drawn = []
    for name, ok in status.items():
        lv = record.get(name)
        stride = lv.reduction if lv is not None else None
        chs = lv.chs if lv is not None else None
        drawn.append(PyramidLevel(name, stride, chs, "pass" if ok else "fail"))
    return pyramid_svg(drawn, label="the verified pyramid")


def _pyramid_note(reports: Sequence[VerifyReport]) -> str:
    what = "height: the level's grid (1 / stride); width: its channels; colour: its stride; outline: its verdict"
    if len(reports) > 1:
        what += " (a level fails if it fails on any runtime)"
    return f'<p class="note">{esc(what)}</p>'


def verify_html(reports: Sequence[VerifyReport], options: VerifyOptions, *,
                argv: Sequence[str] | None = None) -> str:
    """The page for ``reports`` (one per runtime, as `graphfeat.runtime.verify_runtimes` returns them),
    made with ``options``, by the command ``argv`` (this process's when None)."""
    if not reports:
        raise GraphfeatError("no verify report to write")
    ok = all(r.ok for r in reports)
    verdict = "pass" if ok else "fail"
    failing = sorted({m.name for r in reports for m in r.levels if not m.ok})
    summary = ("every level passes on " + ", ".join(r.runtime for r in reports) if ok
               else f"{', '.join(failing)} {'fails' if len(failing) == 1 else 'fail'}")
    head = [f"<h1>graphfeat verify: {esc(Path(reports[0].model).name)}</h1>",
            f'<p class="verdict {verdict}">{"PASS" if ok else "FAIL"}: {esc(summary)}</p>',
            facts([("model", reports[0].model), ("reference", reference_origin(options)),
                   ("command", Markup(f"<code>{esc(command(argv))}</code>")),
                   ("runtimes", ", ".join(r.runtime for r in reports))]),
            "<h2>Pyramid</h2>", _pyramid_note(reports), _pyramid(reports)]
    sections = [_runtime_section(r) for r in reports]
    env = table(("package", "version"), versions([r.runtime for r in reports]), cls="versions")
    return page(f"graphfeat verify {'PASS' if ok else 'FAIL'}: {Path(reports[0].model).name}",
                head + sections + ["<h2>Versions</h2>", env])


def write_verify_html(path: str | os.PathLike, reports: Sequence[VerifyReport], options: VerifyOptions, *,
                      argv: Sequence[str] | None = None) -> Path:
    """Write `verify_html` to ``path`` atomically; never over the model or its reference."""
    inputs = [reports[0].model if reports else None, options.reference, options.against]
    return write_report(path, verify_html(reports, options, argv=argv), inputs)
