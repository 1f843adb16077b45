"""Assertions for a user's own CI: ``assert_pyramid_close`` is to a feature file what ``assert_allclose`` is to
an array.

It runs `graphfeat.runtime.verify_runtimes` and raises ``AssertionError``
(a test failure, not an error in the test) when a level differs, with the
per-level table as the message so the CI log shows which level and by how
much. Bad input (a file without levels, a reference for another model) stays
a [`graphfeat.GraphfeatError`][graphfeat.GraphfeatError]: that is a broken test, not a failed one.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import onnx

from .errors import GraphfeatError
from .onnxfile import save_model
from .report.text import verify_table
from .runtime import VerifyOptions, VerifyReport, verify_runtimes

__all__ = ["assert_pyramid_close"]

_ONNX, _NPZ = "onnx", "npz"


def _kind(reference: str | os.PathLike) -> str:
    """Whether ``reference`` is an export's npz or an original ONNX file: by suffix, else by its first bytes
    (an npz is a zip archive)."""
    suffix = Path(reference).suffix.lower()
    if suffix in (".npz", ".onnx"):
        return suffix[1:]
    try:
        with open(reference, "rb") as f:
            return _NPZ if f.read(4) == b"PK\x03\x04" else _ONNX
    except OSError as exc:
        raise GraphfeatError(f"cannot read reference '{reference}': {exc.strerror or exc}") from None


def _verify(path: str | os.PathLike, reference: str | os.PathLike, runtimes: Sequence[str],
            fields: dict) -> list[VerifyReport]:
    source = {"reference": reference} if _kind(reference) == _NPZ else {"against": reference}
    return verify_runtimes(path, VerifyOptions(**source, runtimes=tuple(runtimes), **fields))


def assert_pyramid_close(model: str | os.PathLike | onnx.ModelProto, reference: str | os.PathLike, *,
                         rtol: float | None = None, atol: float = 0.0, min_cosine: float | None = None,
                         min_sqnr: float | None = None, runtime: str | Sequence[str] = "onnxruntime",
                         **options) -> VerifyReport | list[VerifyReport]:
    """Assert that every level of ``model`` matches ``reference`` on ``runtime``.

    ``model``: a file written by ``graphfeat cut`` or ``export`` (a path, or its ModelProto with the weights
    inside). ``reference``: the ``.npz`` of ``graphfeat export --reference``, or the original ``.onnx`` the
    file was made from (as ``verify --against``). Tolerances as `graphfeat.runtime.verify_runtimes`
    (None: each level's precision's default); ``runtime`` one name or several; ``options`` the other fields
    of `graphfeat.runtime.VerifyOptions` (``batch``, ``input_size``, ``seed``, ``providers``).

    Returns the `graphfeat.runtime.VerifyReport` (a list for several runtimes) when all levels pass;
    raises ``AssertionError`` whose message is the per-level table of each runtime, the failing levels
    marked ``FAIL``. Bad input raises [`graphfeat.GraphfeatError`][graphfeat.GraphfeatError].
    """
    runtimes = [runtime] if isinstance(runtime, str) else list(runtime)
    fields = dict(options, rtol=rtol, atol=atol, min_cosine=min_cosine, min_sqnr=min_sqnr)
    if isinstance(model, onnx.ModelProto):
        with tempfile.TemporaryDirectory(prefix="graphfeat-assert-") as tmp:
            path = Path(tmp) / "model.onnx"
            save_model(model, path)  # over the 2 GB protobuf limit, with its weights in a side file
            reports = _verify(path, reference, runtimes, fields)
    else:
        reports = _verify(model, reference, runtimes, fields)
    if not all(r.ok for r in reports):
        failing = sorted({m.name for r in reports for m in r.levels if not m.ok})
        verb = "differs" if len(failing) == 1 else "differ"
        raise AssertionError(f"pyramid not close: level{'s' if len(failing) != 1 else ''} {', '.join(failing)} "
                             f"{verb} from the reference\n\n" + "\n\n".join(verify_table(r) for r in reports))
    return reports[0] if isinstance(runtime, str) else reports
