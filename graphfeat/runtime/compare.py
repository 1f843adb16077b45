"""Comparing a produced feature level with its reference.

Used by ``graphfeat verify`` and by the export's proofs. The figure of merit
is the error relative to the reference level's largest magnitude:
``max|a - r| / max|r|``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

#: default tolerance: max error <= 1e-4 x the level's max magnitude
DEFAULT_RTOL = 1e-4
#: a reference level whose std is below this proves nothing
DEGENERATE_STD = 1e-6


@dataclass
class LevelMetrics:
    """How far one produced level is from its reference."""

    name: str
    shape: tuple
    max_abs: float
    max_rel: float
    cosine: float
    ok: bool
    note: str = ""

    def as_dict(self) -> dict:
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d


def compare_level(name: str, actual: np.ndarray, expected: np.ndarray, rtol: float = DEFAULT_RTOL,
                  atol: float = 0.0) -> LevelMetrics:
    """Metrics of ``actual`` against ``expected``; ``ok`` needs matching shapes, a non-degenerate
    reference, and ``max_abs <= atol + rtol * max|expected|``."""
    expected = np.asarray(expected, dtype=np.float64)
    if actual is None or tuple(actual.shape) != tuple(expected.shape):
        got = None if actual is None else tuple(actual.shape)
        return LevelMetrics(name, tuple(expected.shape), float("inf"), float("inf"), 0.0, False,
                            f"shape {got} != expected {tuple(expected.shape)}")
    actual = np.asarray(actual, dtype=np.float64)
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    diff = float(np.abs(actual - expected).max()) if expected.size else 0.0
    denom = float(np.linalg.norm(actual) * np.linalg.norm(expected))
    cosine = float(np.dot(actual.ravel(), expected.ravel()) / denom) if denom > 0 else 0.0
    max_rel = diff / scale if scale > 0 else float("inf")
    if float(expected.std()) < DEGENERATE_STD:
        return LevelMetrics(name, tuple(expected.shape), diff, max_rel, cosine, False,
                            f"reference is degenerate (std {expected.std():.2g} < {DEGENERATE_STD}); "
                            "a comparison on it proves nothing")
    ok = bool(np.isfinite(actual).all()) and diff <= atol + rtol * scale
    return LevelMetrics(name, tuple(expected.shape), diff, max_rel, cosine, ok)
