"""Atomic saving: a temp file beside the destination and ``os.replace``, never a half-written file.

[`save_model`][graphfeat.save_model] never follows a symlink at the destination and never
overwrites without ``force``. External tensors are referenced in place when
the result sits beside the source, otherwise only their byte ranges are
streamed into ``<dst>.data``; deferred embedded tensors are streamed from the
source file into their place in ``dst``. A result whose embedded tensors would
exceed the 2 GB protobuf limit is written with external data.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Callable

import onnx
from onnx import external_data_helper

from ..errors import GraphfeatError, OutputError
from . import wire
from . import external
from .external import ExternalRange, external_info, external_range
from . import fileio
from .tensors import TensorSizes, all_tensors, external_tensors, is_external, raw_bytes, tensor_sizes
from .wire import Deferred

#: protobuf's hard limit; above it a model must use external data
PROTO_LIMIT = 2**31 - 1
#: room kept below PROTO_LIMIT for everything but tensor data
LIMIT_MARGIN = 64 << 20
#: tensors of at least this many bytes go to the data file when externalizing
EXTERNAL_THRESHOLD = 1024


def check_destination(dst: Path, src: Path | None, force: bool) -> None:
    """Refuse symlinked, directory or existing destinations (the input itself included) unless ``force``."""
    if "\0" in str(dst):
        raise GraphfeatError(f"the output path {str(dst)!r} contains a NUL character")
    try:
        _check_destination(dst, src, force)
    except GraphfeatError:
        raise
    except OSError as exc:
        raise _output_error(dst, exc) from None


def _output_error(dst: Path, exc: OSError) -> OutputError:
    err = OutputError(f"cannot write {dst}: {exc.strerror or exc}")
    err.errno = exc.errno
    return err


def _check_destination(dst: Path, src: Path | None, force: bool) -> None:
    if not dst.parent.is_dir():
        raise GraphfeatError(f"output directory {dst.parent} does not exist")
    if dst.is_symlink():
        raise GraphfeatError(f"refusing to write {dst}: it is a symlink")
    if dst.exists():
        if dst.is_dir():
            raise GraphfeatError(f"refusing to write {dst}: it is a directory")
        if src is not None and os.path.samefile(src, dst):
            if not force:
                raise GraphfeatError(f"refusing to overwrite the input {dst}; pass --force or choose another -o")
        elif not force:
            raise GraphfeatError(f"{dst} already exists; pass --force to overwrite it")


def save_model(
    model: onnx.ModelProto,
    dst: str | os.PathLike,
    *,
    src_dir: str | os.PathLike | None = None,
    src: str | os.PathLike | None = None,
    force: bool = False,
    deferred: Deferred | None = None,
    sizes: TensorSizes | None = None,
) -> Path:
    """Write ``model`` to ``dst`` atomically; see the module docstring for external data.

    ``src_dir`` is where the model's external-data locations are relative to
    (the source model's directory). ``src`` is the input file, protected from
    being overwritten without ``force``. ``deferred`` is what
    `load_skeleton` returned: the data of those initializers is streamed
    from the source file. ``sizes``: `tensors.tensor_sizes` of ``model`` as it is, when the
    caller has it. ``model`` may be modified (external data locations rewritten).
    """
    dst = Path(dst)
    check_destination(dst, Path(src) if src is not None else None, force)
    try:
        return _save(model, dst, src_dir, force, deferred, sizes)
    except GraphfeatError:
        raise
    except OSError as exc:
        raise _output_error(dst, exc) from None


def _save(model: onnx.ModelProto, dst: Path, src_dir, force: bool, deferred: Deferred | None,
          sizes: TensorSizes | None) -> Path:
    data_name = dst.name + ".data"
    data_dst = dst.parent / data_name
    jobs = _data_jobs(model, dst, src_dir, deferred, sizes)
    staged: list[tuple[str, Path]] = []
    try:
        if jobs:
            _check_data_destination(data_dst, model, src_dir, force)
            offsets: list[tuple[onnx.TensorProto, int, int]] = []

            def write_data(f: BinaryIO) -> None:
                pos = 0
                for tensor, job in jobs:
                    n = job(f)
                    offsets.append((tensor, pos, n))
                    pos += n

            staged.append((fileio.stage(data_dst, write_data), data_dst))
            for tensor, offset, length in offsets:
                tensor.raw_data = b"\0"  # set_external_data requires the field; cleared right after
                external_data_helper.set_external_data(tensor, data_name, offset, length)
                tensor.ClearField("raw_data")
                for field in ("float_data", "int32_data", "int64_data", "double_data", "uint64_data", "string_data"):
                    tensor.ClearField(field)
        if deferred is None:
            payload = model.SerializeToString()
            staged.append((fileio.stage(dst, lambda f: fileio.write_all(f, payload)), dst))
        else:
            staged.append((fileio.stage(dst, lambda f: wire.write(f, model, deferred)), dst))
        fileio.publish(staged)
    except BaseException:
        for tmp, _ in staged:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        raise
    return dst


def _data_jobs(model: onnx.ModelProto, dst: Path, src_dir, deferred: Deferred | None, sizes: TensorSizes | None
               ) -> list[tuple[onnx.TensorProto, Callable[[BinaryIO], int]]]:
    """What goes into ``<dst>.data``, tensor by tensor: external ranges copied from another directory (every
    location checked, kept ones too), and, when the embedded data would pass protobuf's limit, the large
    embedded or deferred tensors."""
    jobs: list[tuple[onnx.TensorProto, Callable[[BinaryIO], int]]] = []
    ext: list[onnx.TensorProto] = []
    embedded = 0  # bytes of tensor data in the proto, from dims and dtype (``ByteSize`` would serialize)
    for tensor, nbytes, outside in sizes if sizes is not None else tensor_sizes(model):
        if outside:
            ext.append(tensor)
        else:
            embedded += nbytes or 0
    if ext:
        if src_dir is None:
            raise GraphfeatError("the model references external data but its source directory is unknown")
        same_dir = os.path.realpath(src_dir) == os.path.realpath(dst.parent)
        stats: dict = {}
        for tensor in ext:  # a location kept in place is re-checked too: we never write a hostile one
            rng = external_range(tensor, Path(src_dir), stats)
            if not same_dir:
                jobs.append((tensor, _copy_range_job(rng)))
    if embedded > PROTO_LIMIT - LIMIT_MARGIN:
        for tensor in all_tensors(model):
            if is_external(tensor):
                continue
            if deferred is not None and wire.is_pending(tensor, deferred):
                jobs.append((tensor, _range_job(deferred.open, *deferred.ranges[tensor.name], deferred.path)))
                continue
            raw = raw_bytes(tensor)
            if raw is not None and len(raw) >= EXTERNAL_THRESHOLD:
                jobs.append((tensor, _bytes_job(raw)))
    return jobs



def _check_data_destination(data_dst: Path, model: onnx.ModelProto, src_dir, force: bool) -> None:
    if data_dst.is_symlink():
        raise GraphfeatError(f"refusing to write {data_dst}: it is a symlink")
    if data_dst.exists():
        if src_dir is not None:
            for tensor in external_tensors(model):
                candidate = Path(src_dir) / external_info(tensor)[0]
                if candidate.exists() and os.path.samefile(candidate, data_dst):
                    raise GraphfeatError(f"refusing to write {data_dst}: it holds the input's own external data")
        if not force:
            raise GraphfeatError(f"{data_dst} already exists; pass --force to overwrite it")


def _copy_range_job(rng: ExternalRange) -> Callable[[BinaryIO], int]:
    return _range_job(lambda: external.open_checked(rng), rng.offset, rng.length, f"external data file {rng.path}")


def _range_job(open_fd: Callable[[], int], offset: int, length: int, source: object) -> Callable[[BinaryIO], int]:
    """A data-file job: copy ``length`` bytes at ``offset`` of the file that ``open_fd()`` opens."""

    def job(out: BinaryIO) -> int:
        fd = open_fd()
        try:
            fileio.copy_fd_range(out, fd, offset, length, source)
            return length
        finally:
            os.close(fd)

    return job



def _bytes_job(raw: bytes) -> Callable[[BinaryIO], int]:
    def job(out: BinaryIO) -> int:
        fileio.write_all(out, raw)
        return len(raw)

    return job



def atomic_write(dst: str | os.PathLike, write: Callable[[BinaryIO], object], *, force: bool = False) -> Path:
    """Write any file through a temp file beside ``dst`` and ``os.replace``; refuse to overwrite
    without ``force`` or to write through a symlink."""
    dst = Path(dst)
    check_destination(dst, None, force)
    try:
        tmp = fileio.stage(dst, write)
        try:
            fileio.publish([(tmp, dst)])
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except GraphfeatError:
        raise
    except OSError as exc:
        raise _output_error(dst, exc) from None
    return dst


