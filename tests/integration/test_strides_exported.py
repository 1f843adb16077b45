"""``cut --strides`` on our own exports with every name stripped (nodes, tensors, initializers, metadata).

Per family, what the rule picks at strides 4/8/16/32 (the README's table says why):

* ``recorded``: the level the export recorded at that stride (the stage output);
* an int: a *later* trunk tensor at the same stride with that many channels, the expansion activation
  of the next stage's first block (MobileNet, EfficientNet) or the last activation before the max-pool
  (VGG). Its values must equal that tensor of the named original, found through the renaming.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest

pytest.importorskip("mindspore")

import graphfeat  # noqa: E402
from graphfeat.graph import GraphIndex  # noqa: E402
from graphfeat.levels import FeatureInfo, read_metadata  # noqa: E402
from graphfeat.runtime import run_onnxruntime  # noqa: E402
from onnx_fixtures import anonymize  # noqa: E402

R = "recorded"
EXPECTED = {
    "resnet18": {4: R, 8: R, 16: R, 32: R},
    "repvgg_a0": {4: R, 8: R, 16: R, 32: R},
    "convnext_tiny": {4: R, 8: R, 16: R, 32: R},  # the downsampling LayerNorm is a normalization tail
    "efficientnet_b0": {4: 144, 8: 240, 16: 672, 32: R},
    "mobilenet_v3_small_100": {4: 72, 8: 96, 16: 288, 32: R},
    "vgg11": {4: 256, 8: 512, 16: 512, 32: R},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_strides_on_a_stripped_export(exported, name):
    path, ref_path, _ = exported(name)
    original = onnx.load(path)
    anon, renamed = anonymize(original)
    back = {new: old for old, new in renamed.items()}
    assert read_metadata(anon) is None and graphfeat.feature_levels(anon) == []  # nothing resolves by name
    cut = anon  # cut in place: no second copy of the weights (vgg11: 0.5 GB)
    picked = graphfeat.cut_model(cut, strides=[4, 8, 16, 32])
    onnx.checker.check_model(cut, full_check=True)
    source = {r.name: back[r.tensor] for r in picked}  # the tensor each level is, in the named original
    ref = np.load(ref_path)
    x = ref["input"][:1]
    got = run_onnxruntime(cut, {cut.graph.input[0].name: x})
    record = read_metadata(original)
    info = FeatureInfo(record["levels"])
    deepest = {info.reduction(i): record["levels"][i] for i in info.pyramid_indices()}
    index = GraphIndex(original)
    levels = read_metadata(cut)["levels"]
    for s, level in zip((4, 8, 16, 32), levels):
        out = got[f"stride{s}"]
        expected_level = ref[f"level/{deepest[s]['name']}"][:1]
        assert float(expected_level.std()) > 1e-3
        assert (level["reduction"], level["layout"], level["resolved_by"]) == (s, "nchw", "strides")
        if EXPECTED[name][s] == R:
            np.testing.assert_allclose(out, expected_level, rtol=0, atol=1e-5 * float(np.abs(expected_level).max()))
            continue
        # a later trunk tensor at the same stride: find it in the named original and compare by value
        assert out.shape[1] == EXPECTED[name][s] == level["chs"] and out.shape[2:] == expected_level.shape[2:]
        original_tensor = source[f"stride{s}"]
        assert index.pos[index.producer[original_tensor]] > index.pos[index.producer[deepest[s]["tensor"]]]
        want = run_onnxruntime(original, {original.graph.input[0].name: x}, [original_tensor])[original_tensor]
        assert float(want.std()) > 1e-3
        np.testing.assert_array_equal(out, want)


def test_hrnet_branches_are_refused_with_the_tensors_named(exported):
    path, _, _ = exported("hrnet_w18")
    anon, _ = anonymize(onnx.load(path))
    with pytest.raises(graphfeat.GraphfeatError, match=r"stride 8 is not on the trunk: .*--tensors"):
        graphfeat.cut(anon, strides=[4, 8])
    cut = graphfeat.cut(anon, strides=[4])  # before the branches split, the trunk is one path
    assert [o.name for o in cut.graph.output] == ["stride4"]
