"""graphfeat says when protobuf runs in pure Python (MindSpore's import selects it when imported first)."""
from __future__ import annotations

import os
import subprocess
import sys

import onnx
import pytest

from onnx_fixtures import resnet_like

CODE = """
import warnings, graphfeat
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    graphfeat.cut_file({src!r}, {dst!r}, layers=["layer1"], force=True)
    graphfeat.cut_file({src!r}, {dst!r}, layers=["layer2"], force=True)
print(len(caught))
for w in caught:
    print(w.message)
"""


@pytest.mark.parametrize("backend, warnings_expected", [("python", 1), (None, 0)])
def test_pure_python_protobuf_is_named_once(tmp_path, backend, warnings_expected):
    src = tmp_path / "m.onnx"
    onnx.save(resnet_like("torchscript")[0], src)
    env = {k: v for k, v in os.environ.items() if k != "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"}
    if backend:
        env["PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"] = backend
    code = CODE.format(src=str(src), dst=str(tmp_path / "out.onnx"))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0] == str(warnings_expected), proc.stdout
    if warnings_expected:
        assert "protobuf runs in pure Python" in lines[1] and "Import graphfeat first" in lines[1]
