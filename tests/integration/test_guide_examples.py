"""docs/adding-a-backbone.md runs: its examples execute, its quotes match the code, its commands work.

* Python blocks starting ``# example:`` are executed in order in one namespace;
* Python blocks starting ``# from <path>`` must appear word for word in that file;
* the shell block's ``graphfeat`` commands are run one by one (paths moved to tmp).
"""
from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mindspore")
# one pytest-xdist worker runs this module, so its module-scoped MindSpore fixtures are built once
pytestmark = pytest.mark.xdist_group("guide_examples")

from mindspore import nn  # noqa: E402

import exporters  # noqa: E402
from exporters import FeatureExtractWrapper, build_model_with_cfg  # noqa: E402
from exporters.onnx_export import export_model  # noqa: E402
from exporters.registry import _model_entrypoints, _model_family, register_model  # noqa: E402
from graphfeat.errors import GraphfeatError  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "adding-a-backbone.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def blocks(lang: str) -> list[str]:
    return [body for kind, body in BLOCK.findall(GUIDE.read_text(encoding="utf-8")) if kind == lang]


def examples() -> dict[str, str]:
    found = {}
    for body in blocks("python"):
        first, _, rest = body.partition("\n")
        if first.startswith("# example: "):
            found[first[len("# example: "):].strip()] = body
    return found


@pytest.fixture(scope="module")
def guide_ns(tmp_path_factory):
    """The namespace after running every example block, in guide order.

    The blocks are written, one after the other, to a real module file and
    imported: MindSpore's graph compiler reads ``construct`` from its source file.
    """
    path = tmp_path_factory.mktemp("guide") / "guide_examples.py"
    path.write_text("\n\n".join(f"# ---- block: {name}\n{code}" for name, code in examples().items()),
                    encoding="utf-8")
    spec = importlib.util.spec_from_file_location("guide_examples", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["guide_examples"] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - say that it is the guide that fails
        raise AssertionError(f"the guide's examples fail ({path}): {type(exc).__name__}: {exc}") from exc
    yield vars(module)
    sys.modules.pop("guide_examples", None)


def test_the_guide_has_the_expected_examples():
    assert list(examples()) == ["imports", "scenario 1", "scenario 2", "scenario 3", "usage"]


def test_examples_run_and_define_the_three_scenarios(guide_ns):
    stages, flat, feats = guide_ns["Stages"], guide_ns["Flat"], guide_ns["TwoBranchFeatures"]
    assert not getattr(stages(), "flatten_sequential", False) and not getattr(stages(), "is_rewritten", False)
    assert flat().flatten_sequential is True
    assert feats().is_rewritten is True


def test_scenario_2_flattens_names(guide_ns):
    wrapper = build_model_with_cfg(guide_ns["Flat"], False, seed=0, features_only=True)
    assert wrapper.renamed == {f"features.{i}": f"features_{i}" for i in range(4)}
    assert wrapper.feature_info.module_name() == ["features.0", "features.2", "features.3"]
    assert "features_3.0.weight" in {p.name for p in wrapper.get_parameters()}


def test_scenario_3_keeps_the_classifier_names_and_weights(guide_ns):
    full = build_model_with_cfg(guide_ns["TwoBranch"], False, seed=5)
    feats = build_model_with_cfg(guide_ns["TwoBranchFeatures"], False, seed=5)
    full_params = {p.name: p.asnumpy() for p in full.get_parameters()}
    for p in feats.get_parameters():
        np.testing.assert_array_equal(p.asnumpy(), full_params[p.name], err_msg=p.name)


@pytest.mark.parametrize("body", [b for b in blocks("python") if b.startswith("# from ")])
def test_quoted_code_is_the_real_code(body):
    first, _, code = body.partition("\n")
    path = ROOT / first[len("# from "):].strip()
    assert code.strip() in path.read_text(encoding="utf-8"), f"the guide's quote of {path.name} is out of date"


# ------------------------------------------------------------------------ errors quoted in section 9

def section(title: str) -> str:
    text = GUIDE.read_text(encoding="utf-8")
    return text.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def test_quoted_wrapper_errors_are_the_real_messages(guide_ns):
    errors = section("9. Errors you will meet")
    stages = guide_ns["Stages"]

    class Net(stages):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.feature_info[1] = dict(chs=16, reduction=4, name="layer1.0")

    class Empty(stages):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.feature_info = []

    cases = [
        lambda: build_model_with_cfg(Empty, False, seed=0, features_only=True),
        lambda: build_model_with_cfg(Net, False, seed=0, features_only=True),
        lambda: FeatureExtractWrapper(build_model_with_cfg(stages, False, seed=0), out_indices=[3]),
        lambda: exporters.create_model("vgg11", pretrained=True),
    ]
    for case in cases:
        with pytest.raises(GraphfeatError) as err:
            case()
        message = str(err.value).replace("Empty ", "Net ")
        quoted = message[:60]
        assert quoted in errors, f"section 9 does not quote: {message}"


@pytest.fixture
def misordered(guide_ns):
    """The scenario-1 example with two stages created in the wrong order, registered for the test only."""
    conv_bn_relu, ops = guide_ns["conv_bn_relu"], guide_ns["ops"]

    class Misordered(nn.Cell):
        def __init__(self, num_classes=10, in_channels=3):
            super().__init__()
            self.stem = conv_bn_relu(in_channels, 8, 2)
            self.layer2 = conv_bn_relu(8, 8)  # created before layer1, called after it
            self.layer1 = conv_bn_relu(8, 8)
            self.feature_info = [dict(chs=8, reduction=2, name=n) for n in ("stem", "layer1", "layer2")]
            self.pool = ops.ReduceMean(keep_dims=False)
            self.classifier = nn.Dense(8, num_classes)

        def construct(self, x):
            x = self.layer2(self.layer1(self.stem(x)))
            return self.classifier(self.pool(x, (2, 3)))

    def guide_misordered(pretrained=False, num_classes=10, in_channels=3, **kwargs):
        return build_model_with_cfg(Misordered, pretrained, num_classes=num_classes, in_channels=in_channels,
                                    **kwargs)

    register_model(guide_misordered)
    yield "guide_misordered"
    _model_entrypoints.pop("guide_misordered", None)
    _model_family.pop("guide_misordered", None)


def test_creation_order_mismatch_fails_the_export_proof(misordered, tmp_path):
    with pytest.raises(GraphfeatError, match="no ONNX tensor equals the MindSpore output of feature level") as err:
        export_model(misordered, tmp_path / "m.onnx", input_size=(32, 32))
    assert "'layer1'" in str(err.value) and "'stem'" not in str(err.value)
    assert "no ONNX tensor equals the MindSpore output of feature level(s) 'layer1'" in section("9. Errors you will meet")
    assert not (tmp_path / "m.onnx").exists()


# ------------------------------------------------------------------------ the commands of section 8

def test_the_check_commands_work(tmp_path):
    (command_block,) = blocks("bash")
    commands = [line for line in command_block.splitlines() if line.startswith("graphfeat ")]
    assert [c.split()[1] for c in commands] == ["export", "info", "cut", "verify"]
    outputs = []
    for line in commands:
        argv = shlex.split(line.replace("/tmp/gf", str(tmp_path)))
        proc = subprocess.run([sys.executable, "-m", "graphfeat", *argv[1:]], capture_output=True, text=True,
                              cwd=ROOT)
        assert proc.returncode == 0, f"{line}\n{proc.stderr}"
        outputs.append(proc.stdout)
    assert "features.19" in outputs[1] and "metadata" in outputs[1]
    assert "all levels pass" in outputs[3]
