"""File descriptors and byte ranges: open a regular file safely, copy ranges, stage and publish atomically.

Everything that writes goes through a temp file beside its destination
(`stage`) and ``os.replace`` (`publish`), so a failure leaves no
half-written file.
"""
from __future__ import annotations

import mmap
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable

from ..errors import GraphfeatError

_CHUNK = 1 << 20


def open_regular(path: Path) -> int:
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


@contextmanager
def regular_file_bytes(path: Path) -> Iterator[bytes | memoryview]:
    """The bytes of ``path`` (see `open_regular`) inside the block: mapped read-only where the
    filesystem allows it, so they are not copied before a parse copies them (a copy of every byte of
    a large model), else read whole."""
    fd = open_regular(path)
    buf = None
    try:
        try:
            buf = mmap.mmap(fd, 0, access=mmap.ACCESS_READ) if os.fstat(fd).st_size else None
        except (OSError, ValueError):  # a filesystem without mmap
            buf = None
        if buf is None:
            try:
                with os.fdopen(fd, "rb", closefd=False) as f:
                    data = f.read()
            except OSError as exc:
                raise GraphfeatError(f"cannot read {path}: {exc.strerror or exc}") from None
            yield data
        else:
            view = memoryview(buf)
            try:
                yield view
            finally:
                view.release()
    finally:
        if buf is not None:
            buf.close()
        os.close(fd)


def copy_fd_range(out: BinaryIO, fd: int, offset: int, length: int, source: object) -> None:
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
            write_all(out, chunk)
            n = len(chunk)
        remaining -= n
        offset += n



def publish(staged: list[tuple[Path, Path]]) -> None:
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



def stage(dst: Path, write: Callable[[BinaryIO], object]) -> Path:
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



def write_all(f: BinaryIO, data: bytes) -> None:
    """Write all of ``data`` to an unbuffered file (``write`` may be partial)."""
    view = memoryview(data)
    while view:
        n = f.write(view[: 1 << 30])
        view = view[n:]
