"""README.md's "Supported families" table is generated from the registry and must be current."""
from __future__ import annotations

import pytest

pytest.importorskip("mindspore")

from exporters import catalog  # noqa: E402
from exporters.catalog import END, README, START, family_rows, family_table, readme_section, write_readme  # noqa: E402


@pytest.fixture(scope="module")
def table() -> str:
    return family_table()


def test_readme_table_is_current(table):
    got = readme_section(README.read_text(encoding="utf-8"))
    assert got == table, ("README.md's 'Supported families' table is out of date: "
                          "run `python -m exporters.catalog --write-readme`")


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
    monkeypatch.setattr(catalog, "README", readme)
    assert catalog.main(["--check"]) == 1
    assert "--write-readme" in capsys.readouterr().err
    assert catalog.main(["--write-readme"]) == 0
    assert catalog.main(["--check"]) == 0
