"""Fuzz: mutated models through ``graphfeat info`` and ``graphfeat cut`` (see tests/fuzz_mutators.py).

The default run does 500 cases (well under a minute); ``GRAPHFEAT_FUZZ_CASES=10000`` or
``bench/fuzz.py`` runs more. Every call must succeed with a checker-valid result or raise
GraphfeatError; the input is never modified and no stray file appears.
"""
from __future__ import annotations

import os
import re

import onnx
import onnx_fixtures  # noqa: F401  (first: puts the repository root on sys.path)
import pytest
from fuzz_mutators import run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx_fixtures import resnet_like

import graphfeat.onnxfile as gio
from graphfeat.onnxfile.tensors import external_tensors
from graphfeat import GraphfeatError

CASES = int(os.environ.get("GRAPHFEAT_FUZZ_CASES", "500"))


def test_fuzz_mutated_models(tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # nothing may be written to the working directory either
    work = tmp_path / "work"
    work.mkdir()
    stats = run(CASES, work)
    summary = stats.summary()
    print("fuzz:", summary, dict(stats.mutations))
    assert stats.crashes == [], "\n".join(stats.crashes[:5])
    assert summary["cases"] == CASES
    assert summary["successes"] >= CASES // 10 and summary["clean_errors"] >= CASES // 2, summary
    assert list(cwd.iterdir()) == [] and list(work.iterdir()) == []


def test_fuzz_through_the_cli(tmp_path):
    stats = run(40, tmp_path, start=10**6, use_cli=True)
    assert stats.crashes == [], "\n".join(stats.crashes[:5])


# -- external-data entries: property tests -------------------------------------------------------------
@pytest.fixture(scope="module")
def ext_dir(tmp_path_factory):
    model, _ = resnet_like("mindspore")
    d = tmp_path_factory.mktemp("ext") / "model"
    d.mkdir()
    path = d / "m.onnx"
    onnx.save(model, path, save_as_external_data=True, all_tensors_to_one_file=True, location="m.onnx.data", size_threshold=0)
    (d / "sub").mkdir()
    (d.parent / "outside.data").write_bytes((d / "m.onnx.data").read_bytes())
    return path, onnx.load(path, load_external_data=False)


def _with_entries(model: onnx.ModelProto, entries: list[tuple[str, str]]) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    t = external_tensors(copy)[0]
    del t.external_data[:]
    for k, v in entries:
        t.external_data.add(key=k, value=v)
    return copy


PATHISH = st.lists(st.sampled_from(list("./\\:~ab\x00\n") + ["..", "m.onnx.data", "sub", "outside.data", "C:"]), max_size=8).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(location=st.one_of(PATHISH, st.text(max_size=30)))
def test_only_the_real_data_file_is_accepted(ext_dir, location):
    """Any location string: accepted only if it names m.onnx.data inside the model directory."""
    path, model = ext_dir
    t = external_tensors(model)[0]
    offset = next(e.value for e in t.external_data if e.key == "offset")
    length = next(e.value for e in t.external_data if e.key == "length")
    candidate = _with_entries(model, [("location", location), ("offset", offset), ("length", length)])
    parts = [p for p in re.split(r"[\\/]+", location) if p not in ("", ".")]
    try:
        gio.validate_external_data(candidate, path.parent)
    except GraphfeatError:
        return
    assert parts == ["m.onnx.data"] and location.isprintable() and location[:1] != "/" and "\\" not in location
    assert not location.endswith("/")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.lists(st.tuples(st.sampled_from(["location", "offset", "length", "checksum", "basepath", "x", ""]),
                                  st.one_of(st.just("m.onnx.data"), st.just("0"), st.text(max_size=8))), max_size=5))  # fmt: skip
def test_any_entry_list_is_accepted_or_refused_cleanly(ext_dir, entries):
    path, model = ext_dir
    candidate = _with_entries(model, entries)
    try:
        gio.validate_external_data(candidate, path.parent)
    except GraphfeatError:
        return
    keys = [k for k, _ in entries]
    assert len(set(keys)) == len(keys) and set(keys) <= {"location", "offset", "length", "checksum"}
    values = dict(entries)
    assert values["location"] == "m.onnx.data"
    assert all(re.fullmatch(r"[0-9]+", values[k]) for k in ("offset", "length") if k in values)
