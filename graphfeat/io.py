"""Safe loading and atomic saving of ONNX files.

* :func:`load_model` parses the protobuf only; external weights stay on disk
  (``load_external_data=False`` semantics), and every external-data location is
  checked: relative, inside the model directory, no ``..``, no backslash or
  control character, no symlink on the way, a single-link regular file (not a
  FIFO, device or directory), and the byte range exists. The ``external_data``
  entries are parsed here, strictly (known keys once each, decimal numbers),
  never by onnx's helpers; a checked file is reopened with ``openat`` and
  ``O_NOFOLLOW`` on every component before a byte is read.
* :func:`load_skeleton` does the same but also leaves the data of large
  *embedded* initializers in the file (:mod:`graphfeat.wire`), so a cut holds
  the graph in memory, not the weights.
* :func:`save_model` writes through a temp file in the destination directory
  and ``os.replace``; it never follows a symlink at the destination and never
  overwrites without ``force``. External tensors are referenced in place when
  the result sits beside the source, otherwise only their byte ranges are
  streamed into ``<dst>.data``; deferred embedded tensors are streamed from
  the source file into their place in ``dst``. A result whose embedded
  tensors would exceed the 2 GB protobuf limit is written with external data.
"""
from __future__ import annotations

import math
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import onnx
from google.protobuf.message import DecodeError
from onnx import external_data_helper

from . import wire
from .errors import GraphfeatError
from .wire import Deferred

#: protobuf's hard limit; above it a model must use external data
PROTO_LIMIT = 2**31 - 1
#: room kept below PROTO_LIMIT for everything but tensor data
LIMIT_MARGIN = 64 << 20
#: tensors of at least this many bytes go to the data file when externalizing
EXTERNAL_THRESHOLD = 1024
_CHUNK = 1 << 20
_ITEMSIZE: dict[int, int] = {}
_TENSOR, _TENSORS = onnx.AttributeProto.TENSOR, onnx.AttributeProto.TENSORS
_GRAPH, _GRAPHS = onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS
#: standard-domain ops that may hold tensor or graph attributes
_TENSOR_ATTR_OPS = {"Constant", "ConstantOfShape", "If", "Loop", "Scan", "SequenceMap"}
_FOUR_BIT = {
    getattr(onnx.TensorProto, n) for n in ("INT4", "UINT4", "FLOAT4E2M1", "INT2", "UINT2") if hasattr(onnx.TensorProto, n)
}


# -- loading -------------------------------------------------------------------
class OutputError(GraphfeatError, OSError):
    """Writing the result failed (disk full, permissions, a name too long): nothing was left behind."""


def as_path(value: object, what: str = "a path to an ONNX file or an onnx.ModelProto") -> Path:
    """``value`` as a Path; anything but a str or os.PathLike is a GraphfeatError."""
    if isinstance(value, (str, os.PathLike)):
        try:
            return Path(value)
        except TypeError:  # a PathLike returning bytes
            pass
    raise GraphfeatError(f"expected {what}, got {type(value).__name__}")


def load_model(path: str | os.PathLike) -> onnx.ModelProto:
    """Parse ``path`` without reading external weights; raise GraphfeatError on bad files."""
    path = as_path(path)
    data = _read_regular_file(path)
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise GraphfeatError(
            f"{path} is not a valid ONNX model (protobuf parse failed: {exc}); the file may be truncated or not ONNX"
        ) from None
    del data
    check_sane(model, path)
    validate_external_data(model, path.parent)
    return model


def load_skeleton(path: str | os.PathLike) -> tuple[onnx.ModelProto, Deferred | None]:
    """Parse ``path`` as :func:`load_model` does, but leave the data of large embedded
    initializers in the file (:mod:`graphfeat.wire`). Returns the model, whose deferred
    initializers hold dims and type but no data, and where that data lies (None if nothing
    was deferred). :func:`save_model` given the same ``deferred`` streams the data into place."""
    path = as_path(path)
    fd = _open_regular(path)
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


def _open_regular(path: Path) -> int:
    """A read-only descriptor of ``path``; a FIFO, device or directory is refused before anything is read."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise GraphfeatError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise GraphfeatError(f"{path} is a directory, not an ONNX file") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise GraphfeatError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise GraphfeatError(f"{path} is a directory, not an ONNX file")
        if not stat.S_ISREG(st.st_mode):
            raise GraphfeatError(f"{path} is not a regular file (a FIFO, socket or device); refusing to read it")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_regular_file(path: Path) -> bytes:
    """The bytes of ``path`` (see :func:`_open_regular`)."""
    fd = _open_regular(path)
    try:
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    except OSError as exc:
        raise GraphfeatError(f"cannot read {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


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


# -- external data ----------------------------------------------------------
def all_tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """Every TensorProto in the model: initializers and attribute tensors, subgraphs included."""

    def walk(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield sparse.values
            yield sparse.indices
        for node in graph.node:
            if not node.domain and node.op_type not in _TENSOR_ATTR_OPS:
                continue  # standard ops without tensor or graph attributes
            for attr in node.attribute:
                kind = attr.type
                if kind == _TENSOR:
                    yield attr.t
                elif kind == _TENSORS:
                    yield from attr.tensors
                elif kind == _GRAPH:
                    yield from walk(attr.g)
                elif kind == _GRAPHS:
                    for sub in attr.graphs:
                        yield from walk(sub)

    yield from walk(model.graph)
    for func in model.functions:
        for node in func.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors


def external_tensors(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    """Tensors whose data lives in an external file."""
    return [t for t in all_tensors(model) if external_data_helper.uses_external_data(t)]


def tensor_nbytes(tensor: onnx.TensorProto) -> int | None:
    """Bytes the tensor's data takes in raw form, or None (strings, unknown types)."""
    n = math.prod(tensor.dims)
    dtype = tensor.data_type
    if dtype in _FOUR_BIT:
        return (n + 1) // 2
    size = _ITEMSIZE.get(dtype)
    if size is None:
        try:
            size = onnx.helper.tensor_dtype_to_np_dtype(dtype).itemsize
        except (KeyError, TypeError, ValueError):
            size = 0
        if dtype == onnx.TensorProto.STRING:
            size = 0
        _ITEMSIZE[dtype] = size
    return n * size if size else None


#: the external_data keys graphfeat accepts (``checksum`` is kept but not verified); anything else,
#: and any key given twice, is refused: readers disagree on which of two ``location`` entries wins
EXTERNAL_KEYS = ("location", "offset", "length", "checksum")
_DECIMAL = re.compile(r"[0-9]{1,18}")  # ASCII digits only (int() also takes " 1", "1_0", "\u0661"), < 2**63


@dataclass(frozen=True)
class ExternalRange:
    """One tensor's bytes in an external file, checked to be safe to open."""

    path: Path
    offset: int
    length: int
    base: Path  # the model directory
    parts: tuple[str, ...]  # ``path`` relative to ``base``, component by component


def external_info(tensor: onnx.TensorProto) -> tuple[str, int | None, int | None]:
    """``(location, offset, length)`` of an external tensor, parsed strictly (see :data:`EXTERNAL_KEYS`)."""
    entries: dict[str, str] = {}
    for entry in tensor.external_data:
        if type(entry.key) is not str or type(entry.value) is not str:  # protobuf's bytes for non-UTF-8 text
            raise GraphfeatError(
                f"tensor {tensor.name!r} has an external-data entry that is not valid UTF-8 text "
                f"({entry.key!r:.60}: {entry.value!r:.60})"
            )
        if entry.key not in EXTERNAL_KEYS:
            raise GraphfeatError(
                f"tensor {tensor.name!r} has an unknown external-data key {entry.key!r} "
                f"(allowed: {', '.join(EXTERNAL_KEYS)})"
            )
        if entry.key in entries:
            raise GraphfeatError(
                f"tensor {tensor.name!r} gives external-data key '{entry.key}' twice "
                f"({entries[entry.key]!r} and {entry.value!r}); refusing the ambiguous entry"
            )
        entries[entry.key] = entry.value
    numbers: list[int | None] = []
    for key in ("offset", "length"):
        value = entries.get(key)
        if value is not None and not _DECIMAL.fullmatch(value):
            raise GraphfeatError(
                f"tensor {tensor.name!r} has a malformed external-data {key} {value[:40]!r} "
                "(must be a non-negative decimal integer)"
            )
        numbers.append(None if value is None else int(value))
    return entries.get("location", ""), numbers[0], numbers[1]


def external_range(tensor: onnx.TensorProto, base_dir: Path, _stats: dict | None = None) -> ExternalRange:
    """Where ``tensor``'s data lies, after checking the location is safe and the range exists."""
    location, offset, length = external_info(tensor)
    path, parts, size = _safe_data_file(base_dir, location, tensor.name, _stats)
    offset = offset or 0
    nbytes = tensor_nbytes(tensor)
    if length is None:
        length = nbytes if nbytes is not None else size - offset
    elif nbytes is not None and length != nbytes:
        raise GraphfeatError(
            f"external data of tensor {tensor.name!r} in {location!r} is {length} bytes long, "
            f"but its dims and data type need {nbytes} bytes"
        )
    if length < 0 or offset + length > size:
        raise GraphfeatError(
            f"external data of tensor {tensor.name!r} needs bytes {offset}..{offset + length} of "
            f"{location!r}, but the file has {size} bytes (truncated?)"
        )
    return ExternalRange(path, offset, length, base_dir, parts)


def validate_external_data(model: onnx.ModelProto, base_dir: str | os.PathLike) -> None:
    """Check every external-data location of ``model``; reads no tensor data."""
    stats: dict = {}
    for tensor in external_tensors(model):
        external_range(tensor, Path(base_dir), stats)


def _safe_data_file(base_dir: Path, location: str, tensor: str, stats: dict | None) -> tuple[Path, tuple[str, ...], int]:
    if stats is not None and location in stats:
        return stats[location]
    where = f"external-data location {location!r} of tensor {tensor!r}"
    if not location:
        raise GraphfeatError(f"tensor {tensor!r} uses external data but names no location")
    if any(ord(c) < 32 or ord(c) == 127 for c in location):
        raise GraphfeatError(f"refusing {where}: it contains control characters")
    if os.path.isabs(location) or location.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", location):
        raise GraphfeatError(f"refusing {where}: absolute paths are not allowed (must be relative to the model directory)")
    parts = tuple(p for p in re.split(r"[\\/]+", location) if p not in ("", "."))
    if ".." in parts:
        raise GraphfeatError(f"refusing {where}: '..' would leave the model directory")
    if not parts or location.endswith(("/", "\\")):
        raise GraphfeatError(f"refusing {where}: it does not name a file")
    if "\\" in location:  # a separator on Windows, part of a file name elsewhere: readers would disagree
        raise GraphfeatError(f"refusing {where}: backslashes are ambiguous; external-data paths use '/'")
    cur = base_dir
    for part in parts:
        cur = cur / part
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            raise GraphfeatError(f"{where}: file not found ({cur})") from None
        except OSError as exc:
            raise GraphfeatError(f"refusing {where}: cannot examine '{cur}' ({exc.strerror or exc})") from None
        if stat.S_ISLNK(st.st_mode):
            raise GraphfeatError(f"refusing {where}: '{cur}' is a symlink")
    if not stat.S_ISREG(st.st_mode):
        raise GraphfeatError(f"refusing {where}: '{cur}' is not a regular file")
    if st.st_nlink > 1:
        raise GraphfeatError(f"refusing {where}: '{cur}' is hardlinked ({st.st_nlink} links)")
    real_base = os.path.realpath(base_dir)
    if os.path.commonpath([real_base, os.path.realpath(cur)]) != real_base:
        raise GraphfeatError(f"refusing {where}: it resolves outside the model directory")
    result = (cur, parts, st.st_size)
    if stats is not None:
        stats[location] = result
    return result


def _open_checked(rng: ExternalRange) -> int:
    """Open a validated data file again, component by component (``openat``), never following a
    symlink (no window to swap one in) nor blocking on a FIFO; it must still be a single-link regular file."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    fds: list[int] = []
    try:
        if os.open in os.supports_dir_fd:
            fds.append(os.open(rng.base, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)))
            for part in rng.parts[:-1]:
                fds.append(os.open(part, flags | getattr(os, "O_DIRECTORY", 0), dir_fd=fds[-1]))
            fd = os.open(rng.parts[-1], flags | getattr(os, "O_NONBLOCK", 0), dir_fd=fds[-1])
        else:  # no openat (Windows): the lstat walk of _safe_data_file is the check
            fd = os.open(rng.path, flags)
    except OSError as exc:
        raise GraphfeatError(f"cannot open external data '{rng.path}': {exc.strerror or exc}") from None
    finally:
        for d in fds:
            os.close(d)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
        os.close(fd)
        raise GraphfeatError(f"refusing external data '{rng.path}': not a single-link regular file")
    return fd


def materialize_external_data(model: onnx.ModelProto, base_dir: str | os.PathLike) -> None:
    """Read the external tensors ``model`` still references into memory (only those)."""
    stats: dict = {}
    for tensor in external_tensors(model):
        rng = external_range(tensor, Path(base_dir), stats)
        fd = _open_checked(rng)
        try:
            data = os.pread(fd, rng.length, rng.offset)
        finally:
            os.close(fd)
        del tensor.external_data[:]
        tensor.data_location = onnx.TensorProto.DEFAULT
        tensor.raw_data = data


def materialize_deferred(model: onnx.ModelProto, deferred: Deferred | None) -> None:
    """Read the data of the deferred initializers ``model`` still has (see :func:`load_skeleton`)."""
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


# -- saving ------------------------------------------------------------------
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
) -> Path:
    """Write ``model`` to ``dst`` atomically; see the module docstring for external data.

    ``src_dir`` is where the model's external-data locations are relative to
    (the source model's directory). ``src`` is the input file, protected from
    being overwritten without ``force``. ``deferred`` is what
    :func:`load_skeleton` returned: the data of those initializers is streamed
    from the source file. ``model`` may be modified (external data locations
    rewritten).
    """
    dst = Path(dst)
    check_destination(dst, Path(src) if src is not None else None, force)
    try:
        return _save(model, dst, src_dir, force, deferred)
    except GraphfeatError:
        raise
    except OSError as exc:
        raise _output_error(dst, exc) from None


def _save(model: onnx.ModelProto, dst: Path, src_dir, force: bool, deferred: Deferred | None) -> Path:
    data_name = dst.name + ".data"
    data_dst = dst.parent / data_name
    jobs: list[tuple[onnx.TensorProto, Callable[[BinaryIO], int]]] = []
    ext: list[onnx.TensorProto] = []
    embedded = 0  # bytes of tensor data in the proto, from dims and dtype (``ByteSize`` would serialize)
    for tensor in all_tensors(model):
        if external_data_helper.uses_external_data(tensor):
            ext.append(tensor)
        else:
            embedded += tensor_nbytes(tensor) or 0
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
            if external_data_helper.uses_external_data(tensor):
                continue
            if deferred is not None and wire.is_pending(tensor, deferred):
                jobs.append((tensor, _range_job(deferred.open, *deferred.ranges[tensor.name], deferred.path)))
                continue
            raw = _raw_bytes(tensor)
            if raw is not None and len(raw) >= EXTERNAL_THRESHOLD:
                jobs.append((tensor, _bytes_job(raw)))
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

            staged.append((_stage(data_dst, write_data), data_dst))
            for tensor, offset, length in offsets:
                tensor.raw_data = b"\0"  # set_external_data requires the field; cleared right after
                external_data_helper.set_external_data(tensor, data_name, offset, length)
                tensor.ClearField("raw_data")
                for field in ("float_data", "int32_data", "int64_data", "double_data", "uint64_data", "string_data"):
                    tensor.ClearField(field)
        if deferred is None:
            payload = model.SerializeToString()
            staged.append((_stage(dst, lambda f: _write_all(f, payload)), dst))
        else:
            staged.append((_stage(dst, lambda f: wire.write(f, model, deferred, _write_all, _copy_fd_range)), dst))
        _publish(staged)
    except BaseException:
        for tmp, _ in staged:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        raise
    return dst


def _publish(staged: list[tuple[Path, Path]]) -> None:
    """``os.replace`` each staged file onto its final name, the model last. If a later step
    fails, finals that did not exist before are removed again, so no orphan data file stays."""
    created: list[Path] = []
    try:
        for tmp, final in staged:
            existed = os.path.lexists(final)
            os.replace(tmp, final)
            if not existed:
                created.append(final)
    except BaseException:
        for final in created:
            final.unlink(missing_ok=True)
        raise


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
    return _range_job(lambda: _open_checked(rng), rng.offset, rng.length, f"external data file {rng.path}")


def _range_job(open_fd: Callable[[], int], offset: int, length: int, source: object) -> Callable[[BinaryIO], int]:
    """A data-file job: copy ``length`` bytes at ``offset`` of the file that ``open_fd()`` opens."""

    def job(out: BinaryIO) -> int:
        fd = open_fd()
        try:
            _copy_fd_range(out, fd, offset, length, source)
            return length
        finally:
            os.close(fd)

    return job


def _copy_fd_range(out: BinaryIO, fd: int, offset: int, length: int, source: object) -> None:
    """Copy ``length`` bytes of ``fd`` from ``offset`` to ``out`` (``sendfile``, else in chunks)."""
    remaining = length
    while remaining:
        try:
            n = os.sendfile(out.fileno(), fd, offset, min(remaining, 1 << 30))
        except (AttributeError, OSError):
            n = 0
        if n == 0:  # sendfile unavailable or unsupported: stream in chunks
            chunk = os.pread(fd, min(remaining, _CHUNK), offset)
            if not chunk:
                raise GraphfeatError(f"{source} ended early (copying {length} bytes from offset {offset})")
            _write_all(out, chunk)
            n = len(chunk)
        remaining -= n
        offset += n


def _bytes_job(raw: bytes) -> Callable[[BinaryIO], int]:
    def job(out: BinaryIO) -> int:
        _write_all(out, raw)
        return len(raw)

    return job


def _raw_bytes(tensor: onnx.TensorProto) -> bytes | None:
    if tensor.HasField("raw_data"):
        return tensor.raw_data
    if tensor.data_type == onnx.TensorProto.STRING:
        return None
    try:
        return onnx.numpy_helper.to_array(tensor).tobytes()
    except Exception:  # noqa: BLE001 - unusual dtypes stay embedded
        return None


def atomic_write(dst: str | os.PathLike, write: Callable[[BinaryIO], object], *, force: bool = False) -> Path:
    """Write any file through a temp file beside ``dst`` and ``os.replace``; refuse to overwrite
    without ``force`` or to write through a symlink."""
    dst = Path(dst)
    check_destination(dst, None, force)
    try:
        tmp = _stage(dst, write)
        try:
            _publish([(tmp, dst)])
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except GraphfeatError:
        raise
    except OSError as exc:
        raise _output_error(dst, exc) from None
    return dst


def _stage(dst: Path, write: Callable[[BinaryIO], object]) -> Path:
    """Write a temp file beside ``dst`` (O_EXCL, never a symlink); return its path."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    try:
        with os.fdopen(fd, "wb", buffering=0) as f:
            write(f)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
    except BaseException:
        os.unlink(tmp)
        raise
    return Path(tmp)


def _write_all(f: BinaryIO, data: bytes) -> None:
    """Write all of ``data`` to an unbuffered file (``write`` may be partial)."""
    view = memoryview(data)
    while view:
        n = f.write(view[: 1 << 30])
        view = view[n:]
