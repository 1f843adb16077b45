"""Plain text of a verify report: one line per level, names made safe to print.

Names come from the model file, which must not be able to drive the user's
terminal, so every name goes through `printable`. The CLI prints this
table; `graphfeat.testing.assert_pyramid_close` raises it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for the hints only: the CLI imports this module before any verb needs numpy or onnx
    from ..runtime import VerifyReport


def printable(text: str) -> str:
    """``text`` with control and other non-printable characters escaped (``\\x1b``)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == "\n" else c.encode("unicode_escape").decode("ascii") for c in text)


def verify_table(report: VerifyReport) -> str:
    """One runtime's per-level comparison, the criterion each level was judged by, and the verdict."""
    rows = [f"{'level':<16} {'shape':<20} {'dtype':<8} {'max_abs':>10} {'max_rel':>10} {'cosine':>10} "
            f"{'sqnr_db':>8}  {'criterion':<28} result"]
    for m in report.levels:
        shape = "x".join(str(d) for d in m.shape)
        verdict = "ok" if m.ok else "FAIL" + (f" ({m.note})" if m.note else "")
        rows.append(f"{printable(m.name):<16} {shape:<20} {m.dtype:<8} {m.max_abs:>10.2e} {m.max_rel:>10.2e} "
                    f"{m.cosine:>10.6f} {m.sqnr:>8.1f}  {m.criterion:<28} {verdict}")
    extra = [f"providers {', '.join(report.providers)}"] if report.providers else []
    extra.append(f"{report.images} distinct image{'s' if report.images != 1 else ''}")
    if report.source:
        extra.append(f"vs {printable(report.source)}")
    rows.append(f"{report.runtime}: {'all levels pass' if report.ok else 'FAILED'} "
                f"(input {'x'.join(str(d) for d in report.input_shape)}; {'; '.join(extra)})")
    rows += [f"note: {printable(n)}" for n in report.notes]
    return "\n".join(rows)
