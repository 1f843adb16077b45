"""Safe loading: parse a model without its external weights, optionally leaving large embedded ones in the file.

* [`load_model`][graphfeat.load_model] parses the protobuf only; external weights stay on disk
  (``load_external_data=False`` semantics) and every external-data location
  is checked (`external`).
* `load_skeleton` does the same but also leaves the data of large
  *embedded* initializers in the file (`wire`), so a cut holds the
  graph in memory, not the weights.
* `load_with_weights` reads the external weights too, for a model
  handed to ONNX Runtime as bytes (which cannot tell where the file was);
  `weights_loader` defers that read until a step needs the weights.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path

import onnx
from google.protobuf.internal import api_implementation
from google.protobuf.message import DecodeError

from ..errors import GraphfeatError
from . import wire
from .external import materialize_external_data, validate_external_data
from .fileio import open_regular, regular_file_bytes
from .tensors import tensor_nbytes
from .wire import Deferred


def as_path(value: object, what: str = "a path to an ONNX file or an onnx.ModelProto") -> Path:
    """``value`` as a Path; anything but a str or os.PathLike is a GraphfeatError."""
    if isinstance(value, (str, os.PathLike)):
        try:
            return Path(value)
        except TypeError:  # a PathLike returning bytes
            pass
    raise GraphfeatError(f"expected {what}, got {type(value).__name__}")


_warned_slow_protobuf = False


def warn_if_protobuf_is_pure_python() -> None:
    """Warn once per process when protobuf runs in pure Python, where ONNX files parse and serialize an order
    of magnitude slower. ``PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python`` selects it; importing MindSpore before onnx
    or graphfeat sets that variable when it is unset."""
    global _warned_slow_protobuf
    if _warned_slow_protobuf or api_implementation.Type() != "python":
        return
    _warned_slow_protobuf = True
    warnings.warn("protobuf runs in pure Python in this process (PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python; "
                  "importing MindSpore before onnx or graphfeat sets it): ONNX files load and save 10-60x slower. "
                  "Import graphfeat first, or unset the variable before Python starts", stacklevel=3)


def load_model(path: str | os.PathLike) -> onnx.ModelProto:
    """Parse ``path`` without reading external weights; raise GraphfeatError on bad files.

    The parse reads the file through ``mmap`` where it can (`fileio.regular_file_bytes`)."""
    warn_if_protobuf_is_pure_python()
    path = as_path(path)
    model = onnx.ModelProto()
    with regular_file_bytes(path) as data:
        try:
            model.ParseFromString(data)
        except (DecodeError, RuntimeError, ValueError) as exc:
            raise GraphfeatError(f"{path} is not a valid ONNX model (protobuf parse failed: {exc}); the file may "
                                 "be truncated or not ONNX") from None
    check_sane(model, path)
    validate_external_data(model, path.parent)
    return model


def load_with_weights(path: str | os.PathLike) -> onnx.ModelProto:
    """[`load_model`][graphfeat.load_model], then its external weights read into memory (the same checks): the whole model,
    whose bytes run on ONNX Runtime wherever they are (external-data locations are relative to the file)."""
    path = as_path(path)
    model = load_model(path)
    materialize_external_data(model, path.parent)
    return model


def weights_loader(model_or_path: onnx.ModelProto | str | os.PathLike) -> Callable[[], onnx.ModelProto]:
    """A call that returns the whole model, weights and all, when a step needs them (finding a level by
    value): the given proto itself (never modified by that step), or the file read by `load_with_weights`."""
    if isinstance(model_or_path, onnx.ModelProto):
        return lambda: model_or_path
    return partial(load_with_weights, model_or_path)


def load_skeleton(path: str | os.PathLike) -> tuple[onnx.ModelProto, Deferred | None]:
    """Parse ``path`` as [`load_model`][graphfeat.load_model] does, but leave the data of large embedded
    initializers in the file (`wire`). Returns the model, whose deferred
    initializers hold dims and type but no data, and where that data lies (None if nothing
    was deferred). `save_model` given the same ``deferred`` streams the data into place."""
    warn_if_protobuf_is_pure_python()
    path = as_path(path)
    fd = open_regular(path)
    try:
        scanned = wire.scan(fd, path)
    except OSError:  # mmap refused (e.g. a special filesystem): parse it normally
        scanned = None
    finally:
        os.close(fd)
    if scanned is None:
        return load_model(path), None
    data, deferred = scanned
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError):
        return load_model(path), None  # its own message
    del data
    ranges = deferred.ranges
    sizes = {t.name: tensor_nbytes(t) for t in model.graph.initializer if t.name in ranges}
    if len(sizes) != len(ranges) or any(sizes[name] != n for name, (_, n) in ranges.items()):
        return load_model(path), None  # dims disagree with the data: keep the file's own bytes in view
    check_sane(model, path)
    validate_external_data(model, path.parent)
    return model, deferred



def check_sane(model: onnx.ModelProto, path: object) -> None:
    """The fields every ONNX model needs; ``path`` names the model in the message."""
    problems = []
    if model.ir_version <= 0:
        problems.append("no ir_version")
    if not model.HasField("graph") or not model.graph.node:
        problems.append("no graph nodes")
    elif not model.graph.output:
        problems.append("no graph outputs")
    if not model.opset_import:
        problems.append("no opset_import")
    if problems:
        raise GraphfeatError(
            f"{path} is not a valid ONNX model ({', '.join(problems)}); the file may be truncated or not ONNX"
        )



def materialize_deferred(model: onnx.ModelProto, deferred: Deferred | None) -> None:
    """Read the data of the deferred initializers ``model`` still has (see `load_skeleton`)."""
    if deferred is None:
        return
    pending = [t for t in model.graph.initializer if wire.is_pending(t, deferred)]
    if not pending:
        return
    fd = deferred.open()
    try:
        for tensor in pending:
            offset, length = deferred.ranges[tensor.name]
            tensor.raw_data = os.pread(fd, length, offset)
    finally:
        os.close(fd)


