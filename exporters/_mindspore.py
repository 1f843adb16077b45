"""Import MindSpore quietly and set the CPU graph-mode context once.

Before the import, :mod:`._cpu` caps oneDNN's CPU ISA where MindSpore's
convolutions would otherwise crawl (``GRAPHFEAT_ONEDNN_ISA``; see
``exporters/_cpu.py``, and ``isa_policy()`` for what was decided).
"""
from __future__ import annotations

import os

from ._cpu import apply_isa_policy, isa_policy, warn_if_too_late  # noqa: F401  (isa_policy: for reports)

# MindSpore reads GLOG_v at import time; 3 keeps its WARNING lines out of user output.
os.environ.setdefault("GLOG_v", "3")
# oneDNN reads ONEDNN_MAX_CPU_ISA at its first kernel; set it before anything can run one.
apply_isa_policy()

import mindspore as ms  # noqa: E402

warn_if_too_late()  # only asks oneDNN if mindspore was imported before exporters

_configured = False


def configure() -> None:
    """Run MindSpore in GRAPH_MODE on the CPU (idempotent)."""
    global _configured
    if not _configured:
        ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
        _configured = True


configure()
