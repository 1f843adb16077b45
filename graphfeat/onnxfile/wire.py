"""ONNX files at the protobuf wire level: embedded weights by byte range, never read.

``onnx.load`` reads the whole file and parses every weight into memory;
``SerializeToString`` then copies them once more. A cut needs neither: it
edits the graph and keeps the weights it still uses byte for byte.

* `scan` builds a *skeleton* of a model file: the file's bytes with the
  ``raw_data`` of each large top-level initializer left out, plus the byte
  range of each left-out ``raw_data`` in the file. It reads the file through
  ``mmap`` and touches the graph, never a weight page.
* `write` serializes a model whose deferred initializers lack their
  data, streaming each one's bytes from the source file into its place. Fields
  go in field-number order, so the file is byte-identical to
  ``SerializeToString`` of the model with its data read in.

Only what the wire format makes unambiguous is deferred: anything unusual
(a repeated graph or ``raw_data`` field, duplicate or empty names, groups,
truncation) makes `scan` return None, and the caller parses the file
normally, so every error message stays the one a plain parse gives.
"""
from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import onnx

from ..errors import GraphfeatError
from . import fileio

_LEN = 2  # wire type of strings, bytes and messages
_MODEL_GRAPH = 7  # ModelProto.graph
_GRAPH_INITIALIZER = 5  # GraphProto.initializer
_TENSOR_NAME, _TENSOR_RAW = 8, 9  # TensorProto.name, TensorProto.raw_data
_TENSOR_EXTERNAL = (13, 14)  # TensorProto.external_data, TensorProto.data_location
#: raw_data of at most this many bytes stays in the skeleton (shape constants and the like)
DEFER_MIN_BYTES = 4096


class _Unusual(Exception):
    """The file is not in the plain form `scan` handles; parse it normally."""


@dataclass(frozen=True)
class Deferred:
    """Embedded weights left in the source file: initializer name -> ``(offset, length)`` of its
    ``raw_data``, and the identity of the file they were scanned from."""

    path: Path
    ranges: dict[str, tuple[int, int]]
    identity: tuple[int, int, int, int]  # st_dev, st_ino, st_size, st_mtime_ns

    def open(self) -> int:
        """A read-only descriptor of the source file, after checking it is still the scanned file."""
        fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        if _identity(os.fstat(fd)) != self.identity:
            os.close(fd)
            raise GraphfeatError(
                f"{self.path} changed while it was being cut; its weights can no longer be copied. Run the cut again"
            )
        return fd


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


# -- reading ---------------------------------------------------------------
def _varint(buf, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _Unusual
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def fields(buf, start: int, end: int) -> Iterator[tuple[int, int, int, int, int]]:
    """``(number, wire_type, field_start, value_start, value_end)`` of each field in ``buf[start:end]``;
    for a length-delimited field the value is its payload."""
    pos = start
    while pos < end:
        key = buf[pos]  # one-byte keys and lengths (the common case) are decoded inline
        key, value_start = (key, pos + 1) if key < 0x80 else _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if wire == _LEN:
            if value_start >= end:
                raise _Unusual
            length = buf[value_start]
            length, value_start = (length, value_start + 1) if length < 0x80 else _varint(buf, value_start, end)
            value_end = value_start + length
        elif wire == 0:
            value_end = _varint(buf, value_start, end)[1]
        elif wire == 1:
            value_end = value_start + 8
        elif wire == 5:
            value_end = value_start + 4
        else:  # groups (3, 4) and invalid wire types
            raise _Unusual
        if number == 0 or value_end > end:
            raise _Unusual
        yield number, wire, pos, value_start, value_end
        pos = value_end


def scan(fd: int, path: Path) -> tuple[bytes, Deferred] | None:
    """The skeleton of the model file open as ``fd`` (found at ``path``) and where its deferred
    weights lie, or None when nothing would be deferred or the file is unusual (see the module
    docstring)."""
    st = os.fstat(fd)
    if st.st_size == 0:
        return None
    with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as buf:
        try:
            skeleton, ranges = _scan_model(buf, st.st_size)
        except _Unusual:
            return None
    if not ranges:
        return None
    return skeleton, Deferred(Path(path), ranges, _identity(st))


def _scan_model(buf, size: int) -> tuple[bytes, dict[str, tuple[int, int]]]:
    out = bytearray()
    ranges: dict[str, tuple[int, int]] = {}
    graphs = 0
    for number, wire, start, value_start, value_end in fields(buf, 0, size):
        if number != _MODEL_GRAPH:
            out += buf[start:value_end]
            continue
        graphs += 1
        if wire != _LEN or graphs > 1:
            raise _Unusual
        graph = _scan_graph(buf, value_start, value_end, ranges)
        if graph is not None:  # (None: nothing deferred, and scan() returns None; no copy is made)
            out += _key(_MODEL_GRAPH) + _encode_varint(len(graph)) + graph
    return bytes(out), ranges


def _scan_graph(buf, start: int, end: int, ranges: dict[str, tuple[int, int]]) -> bytearray | None:
    out = bytearray()
    copied = start  # buf[copied:pos] is still to be copied verbatim
    pos = start
    while pos < end:  # fields() inlined: a graph has a field per node and per tensor
        field_start = pos
        key = buf[pos]
        key, pos = (key, pos + 1) if key < 0x80 else _varint(buf, pos, end)
        if key & 7 != _LEN:
            pos = next(fields(buf, field_start, end))[4]
            continue
        if pos >= end:
            raise _Unusual
        length = buf[pos]
        length, pos = (length, pos + 1) if length < 0x80 else _varint(buf, pos, end)
        value_start, pos = pos, pos + length
        if pos > end or key >> 3 == 0:
            raise _Unusual
        if key >> 3 != _GRAPH_INITIALIZER or length <= DEFER_MIN_BYTES:
            continue  # (an initializer this small cannot hold raw_data worth deferring)
        tensor = _scan_tensor(buf, value_start, pos, ranges)
        if tensor is None:
            continue
        out += buf[copied:field_start]
        out += _key(_GRAPH_INITIALIZER) + _encode_varint(len(tensor)) + tensor
        copied = pos
    if copied == start:
        return None  # no tensor deferred
    out += buf[copied:end]
    return out


def _scan_tensor(buf, start: int, end: int, ranges: dict[str, tuple[int, int]]) -> bytes | None:
    """The tensor without its raw_data if that is large (recording the range), else None (keep it)."""
    name = raw = None
    for number, wire, field_start, value_start, value_end in fields(buf, start, end):
        if number == _TENSOR_NAME:
            if name is not None or wire != _LEN:
                raise _Unusual
            name = bytes(buf[value_start:value_end])
        elif number in _TENSOR_EXTERNAL:
            raise _Unusual  # data both embedded and external: leave it to the full parse
        elif number == _TENSOR_RAW:
            if raw is not None or wire != _LEN:
                raise _Unusual
            raw = (field_start, value_start, value_end)
    if raw is None or raw[2] - raw[1] <= DEFER_MIN_BYTES:
        return None
    try:
        text = name.decode("utf-8") if name else ""
    except UnicodeDecodeError:
        raise _Unusual from None
    if not text or text in ranges:
        raise _Unusual
    ranges[text] = (raw[1], raw[2] - raw[1])
    return bytes(buf[start:raw[0]]) + bytes(buf[raw[2]:end])


# -- writing ---------------------------------------------------------------
def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _key(number: int) -> bytes:
    return _encode_varint(number << 3 | _LEN)


def _split(data: bytes, number: int) -> tuple[bytes, bytes]:
    """The fields of a serialized message numbered below ``number``, and the rest, each in order."""
    low, high = bytearray(), bytearray()
    for n, _, start, _, end in fields(data, 0, len(data)):
        (low if n < number else high).extend(data[start:end])
    return bytes(low), bytes(high)


def write(out: BinaryIO, model: onnx.ModelProto, deferred: Deferred) -> None:
    """Serialize ``model`` to ``out``, streaming the data of its deferred initializers (those named in
    ``deferred`` and holding no data) from the source file."""
    graph = model.graph
    todo = {k: deferred.ranges[t.name] for k, t in enumerate(graph.initializer) if is_pending(t, deferred)}
    if not todo:
        fileio.write_all(out, model.SerializeToString())
        return
    head = onnx.ModelProto()
    head.CopyFrom(model)
    head.ClearField("graph")
    shell = onnx.GraphProto()
    shell.CopyFrom(graph)
    shell.ClearField("initializer")
    model_low, model_high = _split(head.SerializeToString(), _MODEL_GRAPH)
    graph_low, graph_high = _split(shell.SerializeToString(), _GRAPH_INITIALIZER)
    pieces: list[bytes | tuple[int, int]] = []  # bytes, or a (offset, length) range of the source file
    for k, tensor in enumerate(graph.initializer):
        body = tensor.SerializeToString()
        if k not in todo:
            pieces.append(_key(_GRAPH_INITIALIZER) + _encode_varint(len(body)) + body)
            continue
        offset, length = todo[k]
        raw_head = _key(_TENSOR_RAW) + _encode_varint(length)
        size = len(body) + len(raw_head) + length
        pieces.append(_key(_GRAPH_INITIALIZER) + _encode_varint(size) + body + raw_head)
        pieces.append((offset, length))
    initializers = sum(len(p) if isinstance(p, bytes) else p[1] for p in pieces)
    graph_size = len(graph_low) + initializers + len(graph_high)
    fd = deferred.open()
    try:
        fileio.write_all(out, model_low + _key(_MODEL_GRAPH) + _encode_varint(graph_size) + graph_low)
        for piece in pieces:
            if isinstance(piece, bytes):
                fileio.write_all(out, piece)
            else:
                fileio.copy_fd_range(out, fd, *piece, deferred.path)
        fileio.write_all(out, graph_high + model_high)
    finally:
        os.close(fd)


def is_pending(tensor: onnx.TensorProto, deferred: Deferred) -> bool:
    """A deferred initializer that still holds no data of its own."""
    return (
        tensor.name in deferred.ranges
        and not tensor.HasField("raw_data")
        and tensor.data_location != onnx.TensorProto.EXTERNAL
    )
