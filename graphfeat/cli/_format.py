"""Text the CLI prints: tables of levels, export and verify reports, with names made safe to print.

Names come from the model file, which must not be able to drive the user's
terminal, so every cell goes through `printable`; it and the verify
table live in `graphfeat.report.text`, which the library's own assertions
share.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from ..levels import LevelRecord
from ..report.text import printable

if TYPE_CHECKING:  # for the hints only: `graphfeat export` needs neither onnx nor ONNX Runtime in its process
    from ..info import Level, StrideCandidate

LEVEL_COLUMNS = ("index", "name", "chs", "reduction", "tensor", "shape", "resolved_by", "stride", "layout", "note")
CANDIDATE_COLUMNS = ("stride", "tensor", "op", "shape", "layout", "deepest")
#: shown only on a detector: where each level lies, and what `cut --strides` / `--neck` take
DETECTOR_COLUMNS = ("source", "pick")


def _cell(v: Any) -> str:
    if v is None:
        return "?"
    if isinstance(v, list):
        return "[" + ", ".join(_cell(d) for d in v) + "]"
    return printable(str(v)).replace("\n", "\\n")


def table(header: list[str], rows: list[list[Any]]) -> str:
    """A plain-text table: left-aligned columns, two spaces apart."""
    cells = [header] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[k]) for row in cells) for k in range(len(header))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells)


def levels_table(rows: list[Level]) -> str:
    """``graphfeat info``'s table of feature levels (``stride`` and ``layout`` measured)."""
    if not rows:
        return "no feature layers found (no graphfeat metadata, module scopes or named parameters resolve)"
    columns = LEVEL_COLUMNS + (DETECTOR_COLUMNS if any(r.source for r in rows) else ())
    return table(list(columns), [[getattr(r, c) for c in columns] for r in rows])


def candidates_table(rows: list[StrideCandidate]) -> str:
    """The trunk candidates of a file without named levels; ``deepest`` marks what ``--strides`` takes."""
    if not rows:
        return "no trunk tensor has a measurable stride (see `graphfeat info --json`)"
    head = ("No named feature layers: the trunk tensors at each measured stride follow. `graphfeat cut --strides S` "
            "takes the one marked deepest; `--tensors` takes any.")
    neck = any(r.source == "neck" for r in rows)
    if neck:
        head += " This graph has a neck: the trunk is the backbone's, and `--strides S --neck` takes the neck rows."
    columns = list(CANDIDATE_COLUMNS) + (["source"] if neck else [])
    cells = [[r.stride, r.tensor, r.op, r.shape, r.layout + ("+cls" if r.class_token else ""),
              "deepest" if r.deepest else ""] + ([r.source] if neck else []) for r in rows]
    return head + "\n" + table(columns, cells)


def cut_table(levels: list[dict]) -> str:
    """What a cut kept: each output (a level of the record, as its JSON), the tensor it came from and why
    (the rule, and the layer it stands for)."""
    rows = []
    for lv in map(LevelRecord.from_dict, levels):
        if lv.resolved_by == "strides":
            why = f"{lv.source if lv.source is not None else 'backbone'}: deepest at stride {lv.reduction}"
            if lv.layer:
                why += f" (layer {lv.layer})"
            elif lv.after_layer:
                why += f" (the activation after layer {lv.after_layer})"
        else:
            why = lv.resolved_by or "metadata"
        rows.append([lv.name, lv.origin if lv.origin is not None else lv.tensor, lv.chs, lv.reduction,
                     lv.layout if lv.layout is not None else "nchw", why])
    return table(["output", "from tensor", "chs", "stride", "layout", "why"], rows)


def levels_json(rows: list[Level], candidates: list[StrideCandidate] | None = None) -> dict[str, Any]:
    """The ``--json`` document: ``{"layers": [{index, name, chs, reduction, tensor, shape, resolved_by, stride,
    layout, note}], "candidates": [{stride, tensor, op, shape, layout, deepest, class_token}]}``."""
    return {"layers": [asdict(r) for r in rows], "candidates": [asdict(c) for c in candidates or []]}


def export_report(r: dict) -> str:
    """What one export wrote and how closely it matched MindSpore."""
    out = "-" if r["output_max_rel"] is None else f"{r['output_max_rel']:.2e}"
    lines = [f"wrote {r['path']}: {r['nodes']} nodes, {r['size_bytes'] / 2**20:.1f} MiB, opset {r['opset']}, "
             f"{r['seconds']:.1f}s; max rel err: output {out}, worst level {r['worst_level_max_rel']:.2e}"]
    lines += [f"  {lv.index:>2}  {lv.name:<14} chs {lv.chs:<5} stride {lv.reduction:<3} tensor '{lv.tensor}'"
              for lv in map(LevelRecord.from_dict, r["levels"])]
    lines += [f"  note: {n}" for n in r["notes"]]
    if r.get("reference"):
        lines.append(f"wrote reference {r['reference']}")
    return "\n".join(lines)


def export_summary(reports: list[dict]) -> str:
    """A markdown table of export reports: size, time and the proof's worst errors."""
    rows = ["| model | nodes | MiB | opset | seconds | max rel err: output | worst level |",
            "|---|---|---|---|---|---|---|"]
    for r in reports:
        out = "-" if r["output_max_rel"] is None else f"{r['output_max_rel']:.1e}"
        rows.append(f"| {r['model']} | {r['nodes']} | {r['size_bytes'] / 2**20:.1f} | {r['opset']} | "
                    f"{r['seconds']:.0f} | {out} | {r['worst_level_max_rel']:.1e} |")
    return "\n".join(rows)
