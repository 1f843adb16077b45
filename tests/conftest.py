"""Shared pytest helpers."""
from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import onnx  # noqa: F401  (first: protobuf picks its fast upb backend, as in graphfeat and its export
import pytest  # workers; importing MindSpore first would select the pure-Python one for the whole session)

if importlib.util.find_spec("mindspore") is not None:
    # exporters caps oneDNN's ISA before any MindSpore kernel runs (exporters/_cpu.py): without it, k x k
    # convolutions run ~100x slower on AVX-512 CPUs. The core venv has no MindSpore and skips this.
    import exporters  # noqa: F401
    import mindspore

    # The tests' own MindSpore runs are eager (PYNATIVE_MODE): GRAPH_MODE compiles a graph per cell and input
    # shape, 1-15 s each, which made most of the suite's time and memory. The kernels are the same (the
    # export's graph and outputs are identical in both modes). What must hold in GRAPH_MODE runs it inside
    # ``exporters._mindspore.compiled()``: every family's levels against its export at batch 3
    # (test_export.py), RepVGG's re-parameterisation (no stale graph). Exports run as users run them:
    # in worker processes that import exporters afresh (GRAPH_MODE), or in-process, where the export's
    # graph is the same in either mode.
    mindspore.set_context(mode=mindspore.PYNATIVE_MODE)


def rand_images(batch: int, h: int, w: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """A seeded standard-normal NCHW float32 batch."""
    return np.random.default_rng(seed).standard_normal((batch, channels, h, w)).astype(np.float32)


def assert_close_rel(actual: np.ndarray, expected: np.ndarray, rtol: float = 1e-4, what: str = "") -> None:
    """max|a - e| <= rtol * max|e|, on a non-degenerate reference."""
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = float(np.abs(expected).max())
    assert float(expected.std()) > 1e-6, f"{what}: the reference is degenerate (std {expected.std():.3g})"
    err = float(np.abs(actual - expected).max())
    assert err <= rtol * scale, f"{what}: max abs err {err:.3g} > {rtol} x max|ref| {scale:.3g}"


@pytest.fixture(autouse=True, scope="module")
def _release_models_after_module():
    """After each test module, drop the MindSpore models and weights the helpers cached, so that a worker's
    memory is what one module needs, not every model it has built (vgg16: 1 GB; cleared, it is returned)."""
    yield
    if "ms_helpers" in sys.modules:
        sys.modules["ms_helpers"].release_models()


@pytest.fixture
def images():
    return rand_images


def _shared_dir(tmp_path_factory, name: str) -> Path:
    """A directory that every pytest-xdist worker of this run shares (this session's own without xdist)."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    path = root / name
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """``exported(name, size=(64, 64), **options)`` exports a model once per test run, with its reference npz.

    ``options`` are ``export_in_worker``'s (``dynamic_size``, ``second_size``, ``features_only``, ...).
    Returns ``(onnx_path, reference_path, report)``. Needs MindSpore. The export runs the way
    ``graphfeat export A B C`` runs it, in a worker process (so its MindSpore graphs do not stay in this
    process's memory) that this session keeps for its next export (``graphfeat.runtime.Worker``: MindSpore
    starts once, not once per export). Its files are shared by every pytest-xdist worker of the run: the
    first worker to ask exports under a file lock, the others wait and reuse it.
    """
    pytest.importorskip("mindspore")
    from exporters.onnx_export import ExportReport
    from graphfeat.runtime import Worker, export_in_worker

    cache: dict = {}
    root = _shared_dir(tmp_path_factory, "exports")
    worker = Worker(max_rss_mb=1024)  # a new process after a job that leaves it larger (a test worker's MindSpore
    # and its export worker's sit side by side)

    def get(name: str, size: tuple = (64, 64), **options):
        key = (name, tuple(size), json.dumps(options, sort_keys=True))
        if key not in cache:
            stem = f"{name}_{size[0]}x{size[1]}" + "".join(
                f"_{k}-{'x'.join(map(str, v)) if isinstance(v, (list, tuple)) else v}" for k, v in sorted(options.items()))
            path, ref, done = root / f"{stem}.onnx", root / f"{stem}.npz", root / f"{stem}.report.json"
            with open(root / f"{stem}.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                if not done.exists():
                    report = export_in_worker(name, path, input_size=size, reference=ref, worker=worker, **options)
                    done.write_text(json.dumps(report))
            cache[key] = (path, ref, ExportReport(**json.loads(done.read_text())))
        return cache[key]

    yield get
    worker.close()


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run the full matrix marked 'slow' (or set GRAPHFEAT_SLOW=1)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow") or os.environ.get("GRAPHFEAT_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="full matrix: run with --runslow or GRAPHFEAT_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
