"""The real converters' files after the deployment tools: onnxsim, onnxslim and Polygraphy's constant folding
(which paddle2onnx also runs, and which drops metadata). ``cut --strides`` must still give the framework's own
levels, the neck's on a detector."""
from __future__ import annotations

import pytest

for _tool in ("onnxsim", "onnxslim", "polygraphy"):
    pytest.importorskip(_tool, reason=f"needs {_tool} (pip install graphfeat[toolchain])")

import numpy as np  # noqa: E402
import onnx  # noqa: E402

import graphfeat  # noqa: E402
from converter_fixtures import DATA, FIXTURES, check_strides, run_all, values_of  # noqa: E402
from onnx_fixtures import anonymize  # noqa: E402
from tools import TOOLS  # noqa: E402

#: onnxsim and onnxslim fold each BatchNormalization into its convolution and name the result anew: MindCV's
#: EfficientNet keeps no name of its stages, so the file gets the rule's levels (the next block's expansion
#: activation), not MindCV's stage outputs; they must equal the rule's levels on the original, names stripped
RENAMES_LEVELS = {("mindspore_mindcv_efficientnet_b0", "onnxsim"), ("mindspore_mindcv_efficientnet_b0", "onnxslim")}

CELLS = [(fid, tool) for fid in sorted(FIXTURES) for tool in ("onnxsim", "onnxslim", "polygraphy_fold")]


@pytest.mark.parametrize("fid,tool", CELLS, ids=[f"{f}-{t}" for f, t in CELLS])
def test_strides_after_the_tool(fid, tool, tmp_path):
    dst = tmp_path / f"{fid}.{tool}.onnx"
    TOOLS[tool][0](DATA / f"{fid}.onnx", dst)
    if (fid, tool) in RENAMES_LEVELS:
        strides = [lv["stride"] for lv in FIXTURES[fid]["levels"] if lv["strides"]]
        x = values_of(fid)["input"]
        got = run_all(graphfeat.cut(str(dst), strides=strides), x)
        want = run_all(graphfeat.cut(anonymize(onnx.load(DATA / f"{fid}.onnx"))[0], strides=strides), x)
        for name, value in want.items():
            np.testing.assert_allclose(got[name], value, rtol=1e-4, atol=1e-4 * float(np.abs(value).max()))
        return
    check_strides(fid, str(dst))
    if FIXTURES[fid]["neck"]:
        check_strides(fid, str(dst), neck=True)
