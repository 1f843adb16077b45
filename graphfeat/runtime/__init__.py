"""The run layer: run feature models on runtimes, compare levels, and talk to MindSpore workers.

Modules: :mod:`.sessions` (one callable per runtime: ONNX Runtime, OpenVINO,
``onnx.reference``), :mod:`.compare` (a level against its reference),
:mod:`.precision` (what a level is computed in, and the criterion that follows),
:mod:`.verification` (``verify``), :mod:`.pyramid` (``FeaturePyramid``, the
deploy-time object), :mod:`.workers` (the one MindSpore-worker protocol). It
imports the file, graph and levels layers, nothing above.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .compare import DEFAULT_RTOL, DEGENERATE_STD, LevelMetrics, compare_level
    from .precision import (DEFAULT_MIN_COSINE, DEFAULT_MIN_SQNR, DEFAULT_RTOLS, Criterion, Precision,
                            criterion_for, level_precisions)
    from .pyramid import FeaturePyramid
    from .sessions import RUNTIMES, ProviderWarning, Session, run_onnxruntime, session
    from .verification import VerifyReport, reference_inputs, verify, verify_runtimes
    from .workers import (ANSWER_PREFIX, INSTALL_HINT, Worker, export_in_worker, mindspore_available,
                          mindspore_levels, registered_models, run_job, worker_threads)

#: each shared name and the module it lives in (imported on first use: :mod:`graphfeat._lazy`)
_HOMES = {
    **dict.fromkeys(["DEFAULT_RTOL", "DEGENERATE_STD", "LevelMetrics", "compare_level"], ".compare"),
    **dict.fromkeys(["DEFAULT_MIN_COSINE", "DEFAULT_MIN_SQNR", "DEFAULT_RTOLS", "Criterion", "Precision",
                     "criterion_for", "level_precisions"], ".precision"),
    "FeaturePyramid": ".pyramid",
    **dict.fromkeys(["RUNTIMES", "ProviderWarning", "Session", "run_onnxruntime", "session"], ".sessions"),
    **dict.fromkeys(["VerifyReport", "reference_inputs", "verify", "verify_runtimes"], ".verification"),
    **dict.fromkeys(["ANSWER_PREFIX", "INSTALL_HINT", "Worker", "export_in_worker", "mindspore_available",
                     "mindspore_levels", "registered_models", "run_job", "worker_threads"], ".workers"),
}
__all__ = sorted(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
