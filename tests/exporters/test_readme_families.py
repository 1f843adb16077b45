"""The families tables (README.md's compact one, docs/zoo.md's with every level) are generated from the registry
and must be current."""
from __future__ import annotations

import pytest

pytest.importorskip("mindspore")

from exporters import catalog  # noqa: E402
from exporters.catalog import (END, README, START, ZOO, family_rows, family_table, readme_section,  # noqa: E402
                               write_readme)


@pytest.fixture(scope="module")
def table() -> str:
    return family_table(compact=True)


def test_readme_table_is_current(table):
    got = readme_section(README.read_text(encoding="utf-8"))
    assert got == table, ("README.md's 'Supported families' table is out of date: "
                          "run `python -m exporters.catalog --write`")


def test_zoo_page_table_is_current_and_lists_every_level():
    got = readme_section(ZOO.read_text(encoding="utf-8"))
    assert got == family_table(), "docs/zoo.md's table is out of date: run `python -m exporters.catalog --write`"
    assert "`blocks.0` 768/16" in got and "`blocks.11` 768/16" in got  # ViT's every block, past its default four


def test_the_compact_table_gives_each_familys_strides(table):
    vgg = next(line for line in table.splitlines() if line.startswith("| vgg |"))
    assert "| 2, 4, 8, 16, 32 |" in vgg and "`vgg16_bn`" in vgg


def test_scenarios_come_from_the_model_attributes(monkeypatch):
    rows = {r["family"]: r for r in family_rows()}
    assert rows["resnet"]["scenario"] == 1
    assert rows["vgg"]["scenario"] == 2 and rows["mobilenetv2"]["scenario"] == 2
    assert rows["hrnet"]["scenario"] == 3
    assert rows["vgg"]["models"] == ["vgg11", "vgg16", "vgg11_bn", "vgg16_bn"]
    assert rows["vgg"]["levels"][-1] == ("features.20", 512, 32)


def test_write_readme_replaces_only_the_section(tmp_path, table):
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\nintro\n\n{START}\n| stale |\n{END}\n\n## after\n", encoding="utf-8")
    assert write_readme(readme) is True
    text = readme.read_text(encoding="utf-8")
    assert readme_section(text) == table
    assert text.startswith("# title\n\nintro\n\n") and text.endswith(f"{END}\n\n## after\n")
    assert write_readme(readme) is False  # idempotent


def test_missing_markers_are_an_error(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n", encoding="utf-8")
    with pytest.raises(ValueError, match="markers"):
        write_readme(readme)


def test_check_flag_reports_a_stale_readme(tmp_path, monkeypatch, capsys, table):
    readme = tmp_path / "README.md"
    readme.write_text(f"{START}\n| stale |\n{END}\n", encoding="utf-8")
    zoo = tmp_path / "zoo.md"
    zoo.write_text(f"{START}\n| stale |\n{END}\n", encoding="utf-8")
    monkeypatch.setattr(catalog, "PAGES", {readme: True, zoo: False})
    assert catalog.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert "README.md's" in err and "zoo.md's" in err and "--write" in err
    assert catalog.main(["--write"]) == 0
    assert catalog.main(["--check"]) == 0
    assert readme_section(zoo.read_text(encoding="utf-8")) == family_table()
