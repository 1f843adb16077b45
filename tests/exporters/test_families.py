"""Every registered backbone against its written-down truth (``family_truth.py``).

One module for all families: the tests are parametrised from the registry
(``exporters.list_models()``), so a new family needs a ``family_truth.FAMILIES``
entry, not a test file; a registered model without a row fails here. What only
one family has (VGG's head pooling, RepVGG's re-parameterisation, ...) is tested
in ``test_family_specifics.py``.

The structural tests build with ``init=False`` (no seeded weights, no BatchNorm
calibration). The numeric test runs MindSpore (eager, as every test here: tests/conftest.py)
and runs its full matrix under ``--runslow`` only.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mindspore")
# one pytest-xdist worker runs this module, so its module-scoped MindSpore fixtures are built once
pytestmark = pytest.mark.xdist_group("families")

import mindspore as ms  # noqa: E402
from mindspore import Tensor, nn  # noqa: E402

import exporters  # noqa: E402
from exporters.init import deferred_parameters  # noqa: E402

from conftest import rand_images  # noqa: E402
from family_truth import FAMILIES  # noqa: E402
from ms_helpers import classifier, features, levels  # noqa: E402

TRUTH_FILE = "tests/exporters/family_truth.py"
MODELS = exporters.list_models()
# the numeric test's default models; the rest of the matrix is slow
NUMERIC_DEFAULT = ["mobilenet_v2_100", "vgg11"]


def row(name: str) -> dict:
    """The truth row of a registered model; fails, saying what to add, when there is none."""
    family = exporters.model_family(name)
    if family not in FAMILIES:
        pytest.fail(f"family {family!r} ({name}) has no entry: add FAMILIES[{family!r}] with its scenario and its "
                    f"models' expected feature_info and MindCV parameters to {TRUTH_FILE}")
    models = FAMILIES[family]["models"]
    if name not in models:
        pytest.fail(f"{name} ({family}) has no data row: add its expected feature_info and MindCV parameters to "
                    f"FAMILIES[{family!r}]['models'] in {TRUTH_FILE}")
    return models[name]


def expected_info(name: str) -> list[dict]:
    return [dict(chs=c, reduction=r, name=n) for n, c, r in row(name)["feature_info"]]


def scenario(name: str) -> int:
    row(name)
    return FAMILIES[exporters.model_family(name)]["scenario"]


def flat(name: str) -> str:
    """The documented flatten rule (docs/adding-a-backbone.md, section 3): child ``b`` of ``a`` is ``a_b``."""
    return name.replace(".", "_", 1)


def top_cells(net: nn.Cell, flatten: bool) -> list[tuple[str, str, nn.Cell]]:
    """``(name in the feature model, dotted name, cell)`` for the classifier's top-level cells in
    registration order, the children of each ``SequentialCell`` lifted when ``flatten``."""
    out = []
    for name, cell in net.name_cells().items():
        if flatten and isinstance(cell, nn.SequentialCell):
            out += [(flat(f"{name}.{child}"), f"{name}.{child}", c) for child, c in cell.name_cells().items()]
        else:
            out.append((name, name, cell))
    return out


def shapes(model: nn.Cell) -> dict[str, tuple]:
    return {p.name: tuple(p.shape) for p in model.get_parameters()}


def subset_of(n: int) -> tuple[int, ...]:
    """A selection whose deepest level is not the last one, so truncation shows (a single level if n < 3)."""
    return (0, n // 2) if n > 2 else (0,)


@pytest.fixture(scope="module", params=MODELS)
def built(request):
    """One registered model at a time (pytest groups the tests by it): the classifier, the features-only
    model with every level and one with a subset, all without weight initialisation (deferred: a parameter
    draws MindSpore's default values only if a test reads it)."""
    name = request.param
    with deferred_parameters():  # no parameter holds memory (vgg16's classifier: 0 MiB, not 528 MiB)
        default = exporters.create_model(name, features_only=True, init=False)
        every = range(len(default.feature_info.info))
        feats = default if len(default.feature_info) == len(every) else \
            exporters.create_model(name, features_only=True, out_indices=every, init=False)
        return dict(name=name,
                    classifier=exporters.create_model(name, init=False),
                    features=feats,
                    default=default,
                    subset=exporters.create_model(name, features_only=True,
                                                  out_indices=subset_of(len(feats.feature_info)), init=False))


# ---------------------------------------------------------------------------------- registry and truth agree

@pytest.mark.parametrize("family", sorted(set(exporters.list_families()) | set(FAMILIES)))
def test_registered_variants_are_the_truth_rows(family):
    registered = exporters.list_models(family=family)
    assert family in FAMILIES, (f"family {family!r} is registered but has no entry: add FAMILIES[{family!r}] "
                                f"to {TRUTH_FILE}")
    assert registered, f"{TRUTH_FILE} has rows for family {family!r}, which registers no model"
    assert FAMILIES[family]["scenario"] in (1, 2, 3)
    written = sorted(FAMILIES[family]["models"])
    missing = sorted(set(registered) - set(written))
    assert not missing, f"{missing} ({family}) have no data row: add their expected feature_info to {TRUTH_FILE}"
    stale = sorted(set(written) - set(registered))
    assert registered == written, f"{TRUTH_FILE} has rows for unregistered models: {stale}"


# --------------------------------------------------------------------------------------------- structure

def test_feature_info(built):
    name, model, feat = built["name"], built["classifier"], built["features"]
    expected = expected_info(name)
    if scenario(name) != 3:  # scenario 3: the feature class, not the classifier, registers the levels
        assert [dict(e) for e in model.feature_info] == expected, f"{name}: the classifier's feature_info"
    assert feat.feature_info.get_dicts() == expected, f"{name}: the features-only model's feature_info"
    assert feat.feature_info.module_name() == [e["name"] for e in expected]


def test_the_default_selection(built):
    """``out_indices=None`` selects every level, or the family's written-down default (ViT's BEiT levels)."""
    name = built["name"]
    expected = expected_info(name)
    chosen = row(name).get("default_out_indices", range(len(expected)))
    assert built["default"].feature_info.get_dicts() == [expected[i] for i in chosen], name


def test_scenario_markers(built):
    name, model, feat = built["name"], built["classifier"], built["features"]
    flatten, rewritten = getattr(model, "flatten_sequential", False), getattr(feat.net, "is_rewritten", False)
    kind = scenario(name)
    assert feat.flatten_sequential == (kind == 2) and flatten == (kind == 2), f"{name}: flatten_sequential"
    assert feat.is_rewritten == (kind == 3) and bool(rewritten) == (kind == 3), f"{name}: is_rewritten"
    assert not getattr(model, "is_rewritten", False), f"{name}: the classifier itself is never the feature class"
    if kind == 3:  # the feature class subclasses the classifier, keeping its names and weight order
        assert type(feat.net).__name__ == FAMILIES[exporters.model_family(name)]["feature_class"]
        assert type(feat.net) is not type(model) and isinstance(feat.net, type(model))


def test_mindcv_parameter_names_and_shapes(built):
    name, model = built["name"], built["classifier"]
    truth, params = row(name), shapes(model)
    assert truth.get("params"), f"{name}: add a sample of its MindCV parameter names and shapes to {TRUTH_FILE}"
    wrong = {p: (params.get(p), s) for p, s in truth["params"].items() if params.get(p) != tuple(s)}
    assert not wrong, f"{name}: parameter -> (actual shape, MindCV shape): {wrong}"
    present = [p for p in truth.get("absent", ()) if p in params]
    assert not present, f"{name}: parameters MindCV's model does not have: {present}"


def test_parameters_are_float32(built):
    for model in (built["classifier"], built["features"]):
        assert {p.dtype for p in model.get_parameters()} == {ms.float32}, built["name"]


def test_parameter_count(built):
    name, model = built["name"], built["classifier"]
    truth = row(name)
    if "trainable" not in truth and "total" not in truth:
        pytest.skip(f"{name}: no MindCV parameter count recorded in {TRUTH_FILE}")
    if "trainable" in truth:
        assert sum(int(np.prod(p.shape)) for p in model.trainable_params()) == truth["trainable"], name
        moving = [p.name for p in model.trainable_params() if "moving_" in p.name]
        assert not moving, f"{name}: BatchNorm statistics are trainable: {moving[:3]}"
    if "total" in truth:
        assert sum(int(np.prod(p.shape)) for p in model.get_parameters()) == truth["total"], name


def _check_truncated(name: str, model: nn.Cell, feat, deepest: str, what: str) -> None:
    """Scenarios 1 and 2: the feature model is exactly the classifier's cells up to ``deepest``,
    with the classifier's parameters of those cells under the flattened names."""
    flatten = scenario(name) == 2
    order = top_cells(model, flatten)
    names, dotted_names = [new for new, _, _ in order], [old for _, old, _ in order]
    assert deepest in dotted_names, f"{name}: the classifier has no cell {deepest}: {dotted_names}"
    end = dotted_names.index(deepest) + 1
    kept = names[:end]
    assert list(feat.net.name_cells()) == kept, f"{name} {what}: not the cells up to {deepest}"
    renamed = {old: new for new, old, _ in order[:end] if new != old}
    assert feat.renamed == renamed, f"{name} {what}: renamed"

    def in_features(p: str) -> str:
        head, _, rest = p.partition(".")
        nxt, _, tail = rest.partition(".")
        return f"{renamed[head + '.' + nxt]}.{tail}" if f"{head}.{nxt}" in renamed else p

    want = {in_features(p): s for p, s in shapes(model).items()}
    want = {p: s for p, s in want.items() if p.partition(".")[0] in kept}
    assert shapes(feat) == want, f"{name} {what}: the parameters are not the classifier's of the kept cells"
    assert len(want) < len(shapes(model)), f"{name} {what}: the head was not dropped"
    if flatten:
        dotted = [p for p in shapes(feat) if p.startswith(deepest.split(".")[0] + ".")]
        assert not dotted, f"{name} {what}: unflattened names {dotted[:3]}"


def test_features_only_keeps_the_cells_up_to_the_deepest_level(built):
    name, model, feat = built["name"], built["classifier"], built["features"]
    truth = row(name)
    if scenario(name) == 3:
        head = FAMILIES[exporters.model_family(name)]["head"]
        want = {p: s for p, s in shapes(model).items() if not p.startswith(head)}
        assert shapes(feat) == want, f"{name}: the feature class must have the classifier's parameters but the head"
        assert len(want) < len(shapes(model)), f"{name}: no head parameters ({head}) in the classifier"
        return
    assert "cells" in truth, f"{name}: add the number of top-level cells its features-only model keeps to {TRUTH_FILE}"
    assert len(feat.net.name_cells()) == truth["cells"], f"{name}: {list(feat.net.name_cells())}"
    _check_truncated(name, model, feat, truth["feature_info"][-1][0], "all levels")
    head = list(model.get_parameters())[-1].name  # the classifier's last parameter: its head
    assert head not in shapes(feat), f"{name}: the head {head} is in the features-only model"


def test_out_indices_subset_truncates_at_its_deepest_level(built):
    name, model, sub = built["name"], built["classifier"], built["subset"]
    info = row(name)["feature_info"]
    chosen = subset_of(len(info))
    assert len(built["features"].feature_info) == len(info), f"{name}: {len(info)} levels expected"
    assert sub.feature_info.module_name() == [info[i][0] for i in chosen]
    assert sub.feature_info.channels() == [info[i][1] for i in chosen]
    assert sub.feature_info.reduction() == [info[i][2] for i in chosen]
    if scenario(name) == 3:
        assert shapes(sub) == shapes(built["features"]), f"{name}: a rewritten class is never truncated"
        return
    _check_truncated(name, model, sub, info[chosen[-1]][0], f"out_indices={chosen}")
    assert len(shapes(sub)) < len(shapes(built["features"])), f"{name}: the subset kept the deeper levels"


# ------------------------------------------------------------------------------------------------ numbers

def _numeric_matrix() -> list:
    names = [n for n in MODELS if FAMILIES.get(exporters.model_family(n), {}).get("scenario") != 3]
    return [n if n in NUMERIC_DEFAULT else pytest.param(n, marks=pytest.mark.slow) for n in names]


@pytest.mark.parametrize("name", _numeric_matrix())
def test_levels_are_the_classifier_tensors_at_the_named_cells(name):
    """Scenarios 1 and 2: level i is the output of the classifier cell ``feature_info[i].name``, the
    classifier's cells run one by one (scenario 3: the small HRNet in test_family_specifics.py)."""
    full = classifier(name)  # first: its calibrated weights are the ones the feature model gets
    x = rand_images(2, 64, 64, seed=6)
    got = levels(features(name), x)
    want_names = [n for n, _, _ in row(name)["feature_info"]]
    y, outputs = Tensor(x), {}
    for _, old, cell in top_cells(full, scenario(name) == 2):
        y = cell(y)
        outputs[old] = y.asnumpy()
        if old == want_names[-1]:
            break
    assert len(got) == len(want_names)
    for level, g in zip(want_names, got):
        want = outputs[level]
        assert float(want.std()) > 1e-2, f"{name} {level}: degenerate reference"
        np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()), err_msg=level)
