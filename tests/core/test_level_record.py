"""The typed level record (``graphfeat.levels.LevelRecord``): records written by graphfeat read back and write
back unchanged; unknown keys pass through; a bad type is refused naming the field. No MindSpore."""
from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from graphfeat.errors import GraphfeatError
from graphfeat.levels import METADATA_KEY, LevelRecord, build_record, read_feature_record, record_levels

RECORDS = sorted((Path(__file__).parent.parent / "data" / "records").glob("*.json"))


def _model_with(key: str, value: str) -> onnx.ModelProto:
    model = onnx.ModelProto()
    model.metadata_props.add(key=key, value=value)
    return model


def test_the_record_fixtures_are_there():
    """Exports (with fingerprints), cuts by stride (backbone and neck) and a cut that found its levels by value."""
    assert {p.stem.split("_")[0] for p in RECORDS} == {"cut", "export"} and len(RECORDS) >= 5


@pytest.mark.parametrize("path", RECORDS, ids=[p.stem for p in RECORDS])
def test_a_written_record_reads_and_writes_back_the_same(path):
    text = path.read_text().strip()
    record, complete = read_feature_record(_model_with(METADATA_KEY, text))
    assert complete
    levels = record_levels(record)
    assert [lv.to_dict() for lv in levels] == record["levels"]
    assert json.dumps([lv.to_dict() for lv in levels]) == json.dumps(record["levels"])  # the keys' order too
    rebuilt = build_record(levels, base=record)  # the one builder, as a cut of every level writes it
    assert rebuilt == record and json.dumps(rebuilt["levels"]) == json.dumps(record["levels"])


def test_fields_are_typed():
    record = json.loads((Path(__file__).parent.parent / "data" / "records" / "cut_export_strides.json").read_text())
    lv = record_levels(record)[0]
    assert (lv.name, lv.tensor, lv.chs, lv.reduction, lv.index, lv.source_index) == ("stride8", "stride8", 128, 8, 0, 2)
    assert (lv.layout, lv.resolved_by, lv.layer, lv.origin, lv.after_layer, lv.source) == \
        ("nchw", "strides", "layer2", "34", None, None)
    assert lv.stands_for == "layer2" and lv.source_position == 2 and lv.extra == {}


def test_an_unknown_key_is_kept_in_its_place():
    value = {"index": 0, "name": "layer1", "from_a_newer_writer": {"x": [1, 2]}, "chs": 8, "reduction": 4,
             "tensor": "t"}
    lv = LevelRecord.from_dict(value)
    assert lv.extra == {"from_a_newer_writer": {"x": [1, 2]}}
    assert json.dumps(lv.to_dict()) == json.dumps(value)
    moved = lv.updated(tensor="out", source_index=0)
    assert list(moved.to_dict()) == [*value, "source_index"] and moved.tensor == "out"
    assert moved.extra == lv.extra


def test_a_field_of_another_type_is_kept_but_not_read():
    """A hand-edited ``"index": "first"`` is not a position: the level has none, and writes it back as it was."""
    value = {"name": "layer1", "chs": 8, "reduction": 4, "tensor": "t", "index": "first", "layer": None}
    lv = LevelRecord.from_dict(value)
    assert lv.index is None and lv.layer is None and lv.extra == {"index": "first", "layer": None}
    assert lv.to_dict() == value and lv.stands_for == "layer1"


@pytest.mark.parametrize("value,field", [
    ({"name": 5, "tensor": "t", "chs": 8, "reduction": 4}, "name"),
    ({"name": "layer1", "tensor": ["t"], "chs": 8, "reduction": 4}, "tensor"),
    ({"name": "layer1", "chs": 8, "reduction": 4}, "tensor"),
])
def test_a_bad_required_field_is_refused_naming_it(value, field):
    with pytest.raises(GraphfeatError, match=f"level 0.*'{field}'"):
        record_levels({"levels": [value]})


def test_a_bad_type_in_a_stored_record_is_refused_naming_the_field():
    value = {"levels": [{"name": "layer1", "tensor": "t", "chs": "8", "reduction": 4}]}
    with pytest.raises(GraphfeatError, match="chs='8'"):
        read_feature_record(_model_with(METADATA_KEY, json.dumps(value)))
    with pytest.raises(GraphfeatError, match="'tensor' must be a string"):
        read_feature_record(_model_with(METADATA_KEY, json.dumps({"levels": [{"name": "a", "tensor": 3}]})))


def test_a_new_level_omits_what_it_was_not_given():
    lv = LevelRecord.of(name="stride8", chs=16, reduction=8, tensor="stride8")
    assert lv.to_dict() == {"name": "stride8", "chs": 16, "reduction": 8, "tensor": "stride8"}
    assert LevelRecord(name="a", tensor="t", layer="layer1").to_dict() == {"name": "a", "tensor": "t", "layer": "layer1"}
    assert LevelRecord.of(name="a", tensor="t") == LevelRecord(name="a", tensor="t")
