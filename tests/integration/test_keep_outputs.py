"""``cut --keep-outputs`` changes nothing: the kept original outputs equal the uncut model's, on ONNX Runtime.

TensorRT users report that marking intermediate tensors as outputs changed their results (TRT#2232,
#3258); on the runtimes we have, our cut must not. One model per registered family, cut at its pyramid
(the deepest level at strides 4/8/16/32) with the classifier output kept, run on the export's three
distinct reference images: the logits must be bit-identical to the uncut file's, and each level equal to
the reference.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest

pytest.importorskip("mindspore")

import graphfeat  # noqa: E402
from graphfeat.runtime import run_onnxruntime  # noqa: E402
from ms_helpers import representatives  # noqa: E402


@pytest.mark.parametrize("name", representatives())
def test_keep_outputs_leaves_the_original_outputs_unchanged(exported, name, tmp_path):
    path, ref_path, _ = exported(name)
    ref = np.load(ref_path)
    x = ref["input"]
    assert x.shape[0] >= 2 and not np.array_equal(x[0], x[1])  # distinct images: a batch mix would show
    info = graphfeat.feature_info(path)
    layers = [info.module_name(i) for i in info.pyramid_indices()]
    cut_path = graphfeat.cut_file(path, tmp_path / "cut.onnx", layers=layers, keep_outputs=True)
    # one model in memory at a time (vgg11: 0.5 GB each, and its session as much again)
    original = onnx.load(path)
    outputs = [o.name for o in original.graph.output]
    feeds = {original.graph.input[0].name: x}
    before = run_onnxruntime(original, feeds)
    del original
    cut = onnx.load(cut_path)
    assert [o.name for o in cut.graph.output] == layers + outputs
    after = run_onnxruntime(cut, feeds)
    for out in outputs:
        assert float(before[out].std()) > 1e-3
        np.testing.assert_array_equal(after[out], before[out])
    for layer in layers:
        want = ref[f"level/{layer}"]
        np.testing.assert_allclose(after[layer], want, rtol=0, atol=1e-4 * float(np.abs(want).max()))
