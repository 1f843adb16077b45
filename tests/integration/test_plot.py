"""``graphfeat info --plot`` with the ``plot`` extra (matplotlib), which the core suite's venv does not have."""
from __future__ import annotations

import onnx
import onnx_fixtures  # noqa: F401  (first: puts the repository root on sys.path)
import pytest
from onnx_fixtures import add_metadata, resnet_like

from graphfeat.cli import main


def test_info_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    model, truth = resnet_like("plain")
    add_metadata(model, [(f"layer{i}", truth[f"layer{i}"], c, 2 ** (i + 1)) for i, c in zip(range(1, 5), (8, 16, 24, 32))])
    path, png = tmp_path / "meta.onnx", tmp_path / "pyramid.png"
    onnx.save(model, path)
    assert main(["info", str(path), "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {png}" in capsys.readouterr().out
