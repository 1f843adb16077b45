"""Helpers for the tests that need MindSpore (import only after importorskip)."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from mindspore import Tensor

import exporters
from exporters.init import deferred_parameters

# the smallest model of each family runs the slower checks
PREFERRED = ["resnet18", "resnest50", "repvgg_a0", "mobilenet_v3_small_100", "convnext_tiny",
             "efficientnet_b0", "rexnet_10", "hrnet_w18", "vgg11", "mobilenet_v2_100", "mobilevit_xx_small",
             "pvt_v2_b0"]


#: families whose models take only their own image size (a learned position embedding), which the shared tests'
#: 64 px exports cannot; each has a test module of its own that exports a reduced configuration instead
OWN_SIZE_ONLY = {"vit": "tests/exporters/test_vit.py", "swin": "tests/exporters/test_swin.py"}


def representatives() -> list[str]:
    """One model per registered family that the shared tests can run at 64 px (see :data:`OWN_SIZE_ONLY`)."""
    reps = []
    for family in exporters.list_families():
        if family in OWN_SIZE_ONLY:
            continue
        names = exporters.list_models(family=family)
        reps.append(next((n for n in PREFERRED if n in names), names[0]))
    return reps


@lru_cache(maxsize=2)  # each holds its weights (tests/conftest.py clears these after every module)
def features(name: str, seed: int = 0, out_indices: tuple | None = None):
    """A cached features-only model."""
    return exporters.create_model(name, seed=seed, features_only=True, out_indices=out_indices)


@lru_cache(maxsize=2)
def classifier(name: str, seed: int = 0):
    """A cached full classifier."""
    return exporters.create_model(name, seed=seed)


@lru_cache(maxsize=2)
def unseeded(name: str, features_only: bool = False):
    """A cached registered model without weight initialisation (cheap: nothing compiles, and its parameters
    draw MindSpore's default values only when read or run)."""
    with deferred_parameters():
        return exporters.create_model(name, features_only=features_only, init=False)


def levels(model, x: np.ndarray) -> list[np.ndarray]:
    """Run a feature model; it must return a tuple."""
    out = model(Tensor(x))
    assert isinstance(out, tuple), "the feature model must return a tuple (lists do not export)"
    return [o.asnumpy() for o in out]


def release_models() -> None:
    """Drop the cached models and seeded weights, then hand their memory, MindSpore's compiled graphs and
    whatever else was freed back to the system (``exporters._mindspore.release_memory``)."""
    from exporters._mindspore import release_memory
    from exporters.init import clear_weights_cache

    features.cache_clear()
    classifier.cache_clear()
    unseeded.cache_clear()
    clear_weights_cache()
    release_memory()


def register_for_test(monkeypatch, name: str, family: str, create) -> str:
    """Register ``create(pretrained=False, **kwargs)`` as model ``name`` of ``family`` for one test (an export of a
    classifier takes a registered name); ``monkeypatch`` restores the registry afterwards."""
    from exporters import registry

    monkeypatch.setitem(registry._model_entrypoints, name, create)
    monkeypatch.setitem(registry._model_family, name, family)
    return name


def check_cut_everywhere(path, reference, model_name: str, picked: list[str], out_indices: list[int],
                         out_dir, size: tuple[int, int]) -> None:
    """The cut of ``picked`` out of the export at ``path``: verified against the export's ``reference`` on ONNX
    Runtime, OpenVINO and onnx.reference, and at batch 3 (a batch not exported) equal to MindSpore's levels
    ``out_indices`` of ``model_name``, NCHW, without the classifier's output."""
    import graphfeat
    from exporters.onnx_export import INPUT_NAME, OUTPUT_NAME
    from graphfeat.runtime import run_onnxruntime

    from conftest import assert_close_rel, rand_images

    cut_path = graphfeat.cut_file(path, out_dir / f"{model_name}.features.onnx", layers=picked)
    for runtime in ("onnxruntime", "openvino", "reference"):
        verdict = graphfeat.verify(cut_path, reference=reference, runtime=runtime)
        assert verdict.ok and [m.name for m in verdict.levels] == picked, (runtime, verdict)
    cut = graphfeat.cut(str(path), layers=picked)
    x = rand_images(3, *size, seed=3)
    got = run_onnxruntime(cut, {INPUT_NAME: x}, [o.name for o in cut.graph.output])
    want = levels(exporters.create_model(model_name, seed=0, features_only=True, out_indices=out_indices), x)
    assert OUTPUT_NAME not in got
    for out, expected, label in zip(cut.graph.output, want, picked):
        assert float(expected.std()) > 1e-2, f"{label}: no signal"
        assert got[out.name].shape == (3,) + expected.shape[1:], label
        assert_close_rel(got[out.name], expected, 1e-4, label)


def seeded_like_the_classifier(features_cls, classifier_cls, config: dict, x: np.ndarray) -> list[np.ndarray]:
    """The levels of a rewritten feature class built from a cold weights cache, checked bit-equal to its
    classifier's ``feature_view()`` with the same seed and carrying signal; returned for shape checks."""
    from exporters.helpers import build_model_with_cfg
    from exporters.init import clear_weights_cache

    clear_weights_cache()  # the feature class draws its own weights: they must still be the classifier's
    feats = build_model_with_cfg(features_cls, False, seed=0, **config)
    clf = build_model_with_cfg(classifier_cls, False, seed=0, **config)
    got, view = levels(feats, x), levels(clf.feature_view(), x)
    assert len(got) == len(view) == len(feats.feature_info)
    for i, (g, v) in enumerate(zip(got, view)):
        assert 1e-2 < float(g.std()) < 1e2, f"level {i}: std {g.std():.3g}"
        np.testing.assert_array_equal(g, v, err_msg=f"level {i}")
    return got
