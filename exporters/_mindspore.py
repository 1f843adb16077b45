"""Import MindSpore quietly and set the CPU graph-mode context once."""
from __future__ import annotations

import os

# MindSpore reads GLOG_v at import time; 3 keeps its WARNING lines out of user output.
os.environ.setdefault("GLOG_v", "3")

import mindspore as ms  # noqa: E402

_configured = False


def configure() -> None:
    """Run MindSpore in GRAPH_MODE on the CPU (idempotent)."""
    global _configured
    if not _configured:
        ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
        _configured = True


configure()
