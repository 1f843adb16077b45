"""The run layer: run feature models on runtimes, compare levels, and talk to MindSpore workers.

Modules: `sessions` (one callable per runtime: ONNX Runtime, OpenVINO,
``onnx.reference``), `compare` (a level against its reference),
`precision` (what a level is computed in, and the criterion that follows),
`verification` (``verify``), `pyramid` (``FeaturePyramid``, the
deploy-time object), `workers` (the one MindSpore-worker protocol), `export_options`
(``ExportOptions``, the export's options and their defaults). It
imports the file, graph and levels layers, nothing above.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .compare import DEFAULT_RTOL, DEGENERATE_STD, LevelMetrics, compare_level
    from .export_options import DEFAULT_INPUT_SIZE, DEFAULT_OPSET, DEFAULT_SEED, SECOND_SIZE_OFFSET, ExportOptions
    from .precision import DEFAULT_MIN_COSINE, DEFAULT_MIN_SQNR, DEFAULT_RTOLS, level_precisions
    from .pyramid import FeaturePyramid
    from .sessions import RUNTIMES, ProviderWarning, Session, run_onnxruntime, session
    from .verification import VerifyOptions, VerifyReport, verify, verify_runtimes
    from .workers import (ANSWER_PREFIX, Worker, export_in_worker, mindspore_levels, registered_models, run_job,
                          worker_threads)

__all__ = [
    "ANSWER_PREFIX",
    "DEFAULT_INPUT_SIZE",
    "DEFAULT_MIN_COSINE",
    "DEFAULT_MIN_SQNR",
    "DEFAULT_OPSET",
    "DEFAULT_RTOL",
    "DEFAULT_RTOLS",
    "DEFAULT_SEED",
    "DEGENERATE_STD",
    "RUNTIMES",
    "SECOND_SIZE_OFFSET",
    "ExportOptions",
    "FeaturePyramid",
    "LevelMetrics",
    "ProviderWarning",
    "Session",
    "VerifyOptions",
    "VerifyReport",
    "Worker",
    "compare_level",
    "export_in_worker",
    "level_precisions",
    "mindspore_levels",
    "registered_models",
    "run_job",
    "run_onnxruntime",
    "session",
    "verify",
    "verify_runtimes",
    "worker_threads",
]

__getattr__, __dir__ = lazy_exports(__name__, {
    ".compare": ["DEFAULT_RTOL", "DEGENERATE_STD", "LevelMetrics", "compare_level"],
    ".export_options": ["DEFAULT_INPUT_SIZE", "DEFAULT_OPSET", "DEFAULT_SEED", "SECOND_SIZE_OFFSET", "ExportOptions"],
    ".precision": ["DEFAULT_MIN_COSINE", "DEFAULT_MIN_SQNR", "DEFAULT_RTOLS", "level_precisions"],
    ".pyramid": ["FeaturePyramid"],
    ".sessions": ["RUNTIMES", "ProviderWarning", "Session", "run_onnxruntime", "session"],
    ".verification": ["VerifyOptions", "VerifyReport", "verify", "verify_runtimes"],
    ".workers": ["ANSWER_PREFIX", "Worker", "export_in_worker", "mindspore_levels", "registered_models", "run_job",
                 "worker_threads"]})
