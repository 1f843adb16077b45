"""External-data guards: every location is checked before a byte is read.

A location must be relative, inside the model directory, free of ``..``,
backslashes and control characters, with no symlink on the way, and name a
single-link regular file (not a FIFO, device or directory) that holds the
byte range. The ``external_data`` entries are parsed here, strictly (known keys
once each, decimal numbers), never by onnx's helpers; a checked file is
reopened with ``openat`` and ``O_NOFOLLOW`` on every component before a byte is read.
"""
from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

import onnx

from ..errors import GraphfeatError
from .tensors import external_tensors, tensor_nbytes

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
    """``(location, offset, length)`` of an external tensor, parsed strictly (see `EXTERNAL_KEYS`)."""
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


def open_checked(rng: ExternalRange) -> int:
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
        fd = open_checked(rng)
        try:
            data = os.pread(fd, rng.length, rng.offset)
        finally:
            os.close(fd)
        del tensor.external_data[:]
        tensor.data_location = onnx.TensorProto.DEFAULT
        tensor.raw_data = data


