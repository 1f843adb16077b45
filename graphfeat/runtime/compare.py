"""Comparing a produced feature level with its reference.

Used by ``graphfeat verify`` and by the export's proofs. The figure of merit
is the error relative to the reference level's largest magnitude:
``max|a - r| / max|r|``. Also measured: the cosine similarity and the SQNR
(``10 log10(sum r^2 / sum (r - a)^2)`` dB, ``inf`` when equal), which judge a
quantised level (`precision`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np

#: default tolerance: max error <= 1e-4 x the level's max magnitude
DEFAULT_RTOL = 1e-4
#: a reference level whose std is below this proves nothing
DEGENERATE_STD = 1e-6


class Limits(NamedTuple):
    """The figures a level was judged by: ``max_abs <= atol + rtol * max|ref|`` (``rtol`` None: not checked),
    ``cosine >= min_cosine`` and ``sqnr >= min_sqnr`` where given."""

    rtol: float | None
    atol: float = 0.0
    min_cosine: float | None = None
    min_sqnr: float | None = None


@dataclass
class LevelMetrics:
    """How far one produced level is from its reference; ``limits`` are the figures ``criterion`` states (the
    JSON has them as that text)."""

    name: str
    shape: tuple
    max_abs: float
    max_rel: float
    cosine: float
    ok: bool
    note: str = ""
    sqnr: float = float("inf")
    dtype: str = ""
    criterion: str = ""
    limits: Limits | None = None

    def as_dict(self) -> dict:
        d = asdict(self)
        del d["limits"]
        d["shape"] = list(self.shape)
        if not np.isfinite(self.sqnr):  # +inf: identical outputs; -inf: no signal or non-finite output
            d["sqnr"] = None
        return d


def sqnr_db(actual: np.ndarray, expected: np.ndarray) -> float:
    """Signal-to-quantisation-noise ratio in dB: ``10 log10(sum r^2 / sum (r - a)^2)``."""
    noise = float(np.square(expected - actual).sum())
    signal = float(np.square(expected).sum())
    if noise == 0.0:
        return float("inf")
    if signal == 0.0:
        return float("-inf")
    return float(10.0 * np.log10(signal / noise))


def compare_level(name: str, actual: np.ndarray, expected: np.ndarray, rtol: float | None = DEFAULT_RTOL,
                  atol: float = 0.0, *, min_cosine: float | None = None, min_sqnr: float | None = None,
                  criterion: str = "") -> LevelMetrics:
    """Metrics of ``actual`` against ``expected``; ``ok`` needs matching shapes, a non-degenerate
    reference, finite values, ``max_abs <= atol + rtol * max|expected|`` (unless ``rtol`` is None), and
    ``cosine >= min_cosine`` and ``sqnr >= min_sqnr`` where those are given. ``criterion`` is recorded."""
    expected = np.asarray(expected, dtype=np.float64)
    limits = Limits(rtol, atol, min_cosine, min_sqnr)
    dtype = "" if actual is None else str(np.asarray(actual).dtype)
    if actual is None or tuple(actual.shape) != tuple(expected.shape):
        got = None if actual is None else tuple(actual.shape)
        return LevelMetrics(name, tuple(expected.shape), float("inf"), float("inf"), 0.0, False,
                            f"shape {got} != expected {tuple(expected.shape)}", float("-inf"), dtype, criterion, limits)
    actual = np.asarray(actual, dtype=np.float64)
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    diff = float(np.abs(actual - expected).max()) if expected.size else 0.0
    denom = float(np.linalg.norm(actual) * np.linalg.norm(expected))
    cosine = float(np.dot(actual.ravel(), expected.ravel()) / denom) if denom > 0 else 0.0
    max_rel = diff / scale if scale > 0 else float("inf")
    finite = bool(np.isfinite(actual).all())
    sqnr = sqnr_db(actual, expected) if finite else float("-inf")
    args = (name, tuple(expected.shape), diff, max_rel, cosine)
    if float(expected.std()) < DEGENERATE_STD:
        return LevelMetrics(*args, False, f"reference is degenerate (std {expected.std():.2g} < {DEGENERATE_STD}); "
                            "a comparison on it proves nothing", sqnr, dtype, criterion, limits)
    fails = []
    if not finite:
        fails.append("non-finite values")
    if rtol is not None and not diff <= atol + rtol * scale:
        fails.append(f"max_rel {max_rel:.2e} > rtol {rtol:g}" + (f" + atol {atol:g}" if atol else ""))
    elif rtol is None and atol and not diff <= atol:
        fails.append(f"max_abs {diff:.2e} > atol {atol:g}")
    if min_cosine is not None and not cosine >= min_cosine:
        fails.append(f"cosine {cosine:.4f} < {min_cosine:g}")
    if min_sqnr is not None and not sqnr >= min_sqnr:
        fails.append(f"SQNR {sqnr:.1f} dB < {min_sqnr:g}")
    return LevelMetrics(*args, not fails, "; ".join(fails), sqnr, dtype, criterion, limits)
