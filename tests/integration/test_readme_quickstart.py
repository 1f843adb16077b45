"""The README's quickstart runs as written: each ``graphfeat`` line of its shell block, in order, in a fresh
directory, exits 0, and the files it names exist afterwards."""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mindspore")

ROOT = Path(__file__).resolve().parents[2]


def quickstart_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"^```bash\n(.*?)^```", section, re.S | re.M)
    return [line.strip() for line in block.splitlines() if line.strip().startswith("graphfeat ")]


def test_the_quickstart_has_the_four_steps():
    verbs = [shlex.split(c)[1] for c in quickstart_commands()]
    assert verbs == ["export", "info", "cut", "verify"]


def test_the_quickstart_runs_as_written(tmp_path):
    for command in quickstart_commands():
        argv = shlex.split(command)
        run = subprocess.run([sys.executable, "-m", "graphfeat", *argv[1:]], cwd=tmp_path, capture_output=True,
                             text=True, timeout=600)
        assert run.returncode == 0, f"{command}\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}"
    written = {a for c in quickstart_commands() for a in shlex.split(c) if re.search(r"\.(onnx|npz|html)$", a)}
    assert {p.name for p in tmp_path.iterdir()} >= written
    report = (tmp_path / "resnet18.verify.html").read_text(encoding="utf-8")
    assert "layer4" in report and "<script src" not in report
