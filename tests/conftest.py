"""Shared pytest helpers."""
from __future__ import annotations

import importlib.util

import numpy as np
import onnx  # noqa: F401  (first: protobuf picks its fast upb backend, as in graphfeat and its export
import pytest  # workers; importing MindSpore first would select the pure-Python one for the whole session)

if importlib.util.find_spec("mindspore") is not None:
    # exporters caps oneDNN's ISA before any MindSpore kernel runs (exporters/_cpu.py): without it, k x k
    # convolutions run ~100x slower on AVX-512 CPUs. The core venv has no MindSpore and skips this.
    import exporters  # noqa: F401


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


@pytest.fixture
def images():
    return rand_images


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """``exported(name, size=(64, 64))`` exports a model once per session, with its reference npz.

    Returns ``(onnx_path, reference_path, report)``. Needs MindSpore.
    """
    pytest.importorskip("mindspore")
    from exporters.onnx_export import export_model

    cache: dict = {}
    root = tmp_path_factory.mktemp("exports")

    def get(name: str, size: tuple = (64, 64)):
        key = (name, tuple(size))
        if key not in cache:
            stem = f"{name}_{size[0]}x{size[1]}"
            path, ref = root / f"{stem}.onnx", root / f"{stem}.npz"
            cache[key] = (path, ref, export_model(name, path, input_size=size, reference=ref))
        return cache[key]

    return get


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run the full matrix marked 'slow' (or set GRAPHFEAT_SLOW=1)")


def pytest_collection_modifyitems(config, items):
    import os

    if config.getoption("--runslow") or os.environ.get("GRAPHFEAT_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="full matrix: run with --runslow or GRAPHFEAT_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
