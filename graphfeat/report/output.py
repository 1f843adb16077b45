"""Writing a report: whole or not at all, and never over the model it describes.

A report is written through a temp file and renamed (an interrupted run
leaves the old report or none, never half a file). Its path is checked before
the work starts, so that ``--html model.onnx`` is refused at once instead of
destroying the input after a long verification.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from ..errors import GraphfeatError
from ..onnxfile import atomic_write


def check_report_path(path: str | os.PathLike, inputs: Iterable[str | os.PathLike | None], *,
                      flag: str = "--html") -> Path:
    """``path`` as a Path; GraphfeatError when it is one of ``inputs`` (the model, a reference) or a
    directory, or its directory does not exist."""
    dst = Path(path)
    for src in inputs:
        if src is None or not os.path.exists(src):
            continue
        if dst.exists() and os.path.samefile(dst, src) or dst.resolve() == Path(src).resolve():
            raise GraphfeatError(f"refusing to write the {flag} report over the input {src}; give another path")
    if dst.is_dir():
        raise GraphfeatError(f"{flag} {dst} is a directory; give a file name")
    if not dst.parent.is_dir():
        raise GraphfeatError(f"{flag}: directory {dst.parent} does not exist")
    return dst


def write_report(path: str | os.PathLike, content: str | bytes, inputs: Iterable[str | os.PathLike | None] = (),
                 *, flag: str = "--html") -> Path:
    """Write ``content`` (text as UTF-8) to ``path`` atomically, replacing an older report; never over one
    of ``inputs`` (`check_report_path`)."""
    dst = check_report_path(path, inputs, flag=flag)
    data = content.encode("utf-8") if isinstance(content, str) else content

    def write(f: BinaryIO) -> None:
        view = memoryview(data)
        while view:  # an unbuffered write may be partial
            view = view[f.write(view):]

    return atomic_write(dst, write, force=True)
