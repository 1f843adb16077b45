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
