"""Import MindSpore quietly and set the CPU graph-mode context once; `eager` for one-off runs, `compiled`
for a block that must run GRAPH_MODE.

Before the import, `_cpu` caps oneDNN's CPU ISA where MindSpore's
convolutions would otherwise crawl (``GRAPHFEAT_ONEDNN_ISA``; see
``exporters/_cpu.py``, and ``isa_policy()`` for what was decided).

It also compiles ``x += y`` on tensors as ``Add``, not ``InplaceAddExt``
(`augassign_out_of_place`): MindSpore 2.10's ONNX exporter has no
converter for ``InplaceAddExt``, which its GRAPH_MODE makes of every tensor
``+=`` (MindCV's ResNet, ResNeSt and EfficientNet blocks: ``out += identity``).
"""
from __future__ import annotations

import os
from contextlib import AbstractContextManager, contextmanager
from typing import Iterator

from ._cpu import apply_isa_policy, isa_policy, warn_if_too_late  # noqa: F401  (isa_policy: for reports)
from ._heap import trim_heap

# MindSpore reads GLOG_v at import time; 3 keeps its WARNING lines out of user output.
os.environ.setdefault("GLOG_v", "3")
# oneDNN reads ONEDNN_MAX_CPU_ISA at its first kernel; set it before anything can run one.
apply_isa_policy()

# protobuf picks its backend once, at the first import, from PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION; MindSpore's
# import sets that variable to "python" when it is unset. Pick the backend (the fast upb one by default) before,
# and take the variable back after: every process started from this one (pytest-xdist workers, export
# workers, a user's subprocesses) would otherwise run protobuf in pure Python, many times slower on ONNX files.
from google.protobuf.internal import api_implementation  # noqa: E402,F401

_PROTOBUF_VAR = "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"
_protobuf_choice = os.environ.get(_PROTOBUF_VAR)

import mindspore as ms  # noqa: E402

if _protobuf_choice is None:
    os.environ.pop(_PROTOBUF_VAR, None)

from graphfeat.runtime import worker_threads  # noqa: E402

warn_if_too_late()  # only asks oneDNN if mindspore was imported before exporters

_configured = False

#: MindSpore's own compile option (``mindspore.graph._parse.compile_config``): "Whether enable augassign inplace".
AUGASSIGN_INPLACE = "JIT_ENABLE_AUGASSIGN_INPLACE"


def augassign_out_of_place() -> None:
    """Compile a tensor ``x += y`` as ``x = x + y`` (``Add``) in GRAPH_MODE: ``JIT_ENABLE_AUGASSIGN_INPLACE=0``.

    MindSpore reads its compile options once, at the first graph compile of
    the process (MindSpore 2.10: setting it later has no effect, and setting
    it back has none either), so this is process-wide and must come before any
    graph compiles -- as the oneDNN cap must come before any convolution (a
    process that compiled a graph before ``import exporters`` keeps the in-place
    ``+=``, and such a cell's export fails naming ``InplaceAddExt``). Values
    change only where the augmented tensor is aliased and read again (the
    in-place update would show through the alias); a residual ``out += identity``
    on a fresh ``out`` gives the same values either way. The export's own
    reference runs in this process, eagerly (`eager`), where a tensor ``+=``
    is not compiled at all;
    ``tests/exporters/test_mindcv.py`` checks MindCV's ``+=`` families against
    MindCV run at MindSpore's default, in place, in another process.
    """
    from mindspore.graph._parse import compile_config

    setattr(compile_config, AUGASSIGN_INPLACE, "0")


def configure() -> None:
    """Run MindSpore in GRAPH_MODE on the CPU, each op to its end before the next (``launch_blocking``), with
    ``GRAPHFEAT_THREADS`` kernel threads when set (idempotent).

    ``mindspore.runtime.launch_blocking()``: by default MindSpore hands ops through queues to its own
    runtime threads, which spin while they wait. Synchronous launches give the same outputs (the export's
    file is byte-identical) for less CPU and wall time, most on a single core (numbers: bench/README.md,
    "Measurements behind the code's rules").
    """
    global _configured
    if not _configured:
        ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
        ms.runtime.launch_blocking()
        augassign_out_of_place()
        threads = worker_threads()  # set by ``graphfeat export --jobs N`` per worker
        if threads:
            from mindspore.device_context.cpu.op_tuning import threads_num

            threads_num(threads)
        _configured = True


configure()


@contextmanager
def _in_mode(mode: int) -> Iterator[None]:
    """Run MindSpore in ``mode`` inside the block, then restore the mode it had."""
    before = ms.get_context("mode")
    if before == mode:
        yield
        return
    ms.set_context(mode=mode)
    try:
        yield
    finally:
        ms.set_context(mode=before)


def eager() -> AbstractContextManager[None]:
    """Run MindSpore in PYNATIVE_MODE inside the block, then restore the mode.

    For a network run once or twice at a shape (the export's reference levels,
    the BatchNorm calibration): GRAPH_MODE compiles a graph per cell and input
    shape first, which costs far more than one eager run. The kernels are the
    same: the models checked gave bit-identical outputs in both modes (which, and
    the compile times: bench/README.md, "Measurements behind the code's rules").
    """
    return _in_mode(ms.PYNATIVE_MODE)


def compiled() -> AbstractContextManager[None]:
    """Run MindSpore in GRAPH_MODE inside the block, then restore the mode (the inverse of `eager`)."""
    return _in_mode(ms.GRAPH_MODE)


def release_memory() -> None:
    """Free what finished work left: unreachable objects, MindSpore's compiled graphs and runtime memory
    (``mindspore.ms_memory_recycle``), and the C heap's free pages (`_heap.trim_heap`; without it,
    freed weights stay in the process's resident set)."""
    import gc

    gc.collect()
    ms.ms_memory_recycle()
    trim_heap()
