"""The reports: ``verify --html``, ``verify --junit-xml``, ``info --html`` and ``graphfeat.testing`` (no MindSpore).

The verified file is a cut of a real MindSpore export (``tests/data/converters/``), its reference the
framework's own level values; the failing case is that reference with one level scaled by 1 %. Several
runtimes are compared on a hand-built pyramid (``onnx.reference`` departs from ONNX Runtime on the MindSpore
file, which is no subject of these tests). The page is
read back with the standard library's HTML and XML parsers, so every count below is of what a browser or a
CI system would see, not of the strings the code meant to write.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import onnx
import onnx_fixtures  # noqa: F401  (first: puts the repository root on sys.path)
import onnxruntime
import pytest
from converter_fixtures import DATA, values_of
from onnx import TensorProto, helper, numpy_helper
from onnx_fixtures import add_metadata, expose, resnet_like, run

import graphfeat
from graphfeat.cli import main
from graphfeat.errors import GraphfeatError
from graphfeat.info import feature_levels, stride_candidates, stride_map
from graphfeat.report import junit_xml, write_report
from graphfeat.runtime import VerifyReport, verify
from graphfeat.testing import assert_pyramid_close

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = "mindspore_mindcv_resnet18"
LEVELS = ["layer1", "layer2", "layer3", "layer4"]
#: names a hostile file may carry: markup, quotes, an entity, a control character, a very long name
HOSTILE = ['<script>alert("t1")</script>', "b&amp;'\"<img src=x onerror=alert(2)>",
           "c</title><script>alert(3)</script>" + "L" * 600, "d\x1b[31m<script>"]


class Page(HTMLParser):
    """What a browser's parser sees: every start tag with its attributes, and the text of each ``<tr>``."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.rows: list[tuple[dict, str]] = []
        self._row: tuple[dict, list[str]] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "tr":
            self._row = (a, [])

    def handle_endtag(self, tag):
        if tag == "tr" and self._row is not None:
            self.rows.append((self._row[0], " ".join(self._row[1])))
            self._row = None

    def handle_data(self, data):
        if self._row is not None:
            self._row[1].append(data)

    def having(self, tag: str, cls: str) -> list[dict]:
        return [a for t, a in self.tags if t == tag and cls in (a.get("class") or "").split()]

    def rows_of(self, cls: str) -> list[tuple[dict, str]]:
        return [(a, text) for a, text in self.rows if cls in (a.get("class") or "").split()]


def _svgs(text: str) -> list[ET.Element]:
    """Each inline ``<svg>`` of the page, parsed as XML (a stray ``<`` or ``&`` would not parse)."""
    return [ET.fromstring(m) for m in re.findall(r"<svg\b.*?</svg>", text, flags=re.S)]


def _svg_class(svgs: list[ET.Element], cls: str) -> ET.Element:
    found = [s for s in svgs if cls in s.get("class", "").split()]
    assert len(found) == 1, [s.get("class") for s in svgs]
    return found[0]


def _shapes(svg: ET.Element, tag: str, cls: str) -> list[ET.Element]:
    return [e for e in svg.iter(f"{{http://www.w3.org/2000/svg}}{tag}") if cls in e.get("class", "").split()]


def _self_contained(text: str) -> None:
    """No script, and nothing the page would fetch: no src/href, stylesheet link, @import or url()."""
    page = Page(text)
    assert [t for t, _ in page.tags if t in ("script", "link", "iframe", "img", "object", "embed")] == []
    assert [a for _, a in page.tags if "src" in a or "href" in a or any(k.startswith("on") for k in a)] == []
    assert "@import" not in text and "url(" not in text


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The converter fixture's cut at layer1..4, its reference (the framework's values) and a perturbed one."""
    d = tmp_path_factory.mktemp("reports")
    cut = d / "resnet18.features.onnx"
    onnx.save(graphfeat.cut(DATA / f"{FIXTURE}.onnx", layers=LEVELS), cut)
    values = values_of(FIXTURE)
    good = {f"level/{n}": values[f"level.{n}"] for n in LEVELS}
    ref, bad = d / "ref.npz", d / "bad.npz"
    np.savez(ref, input=values["input"], **good)
    np.savez(bad, input=values["input"], **{**good, "level/layer3": good["level/layer3"] * 1.01})
    return {"dir": d, "cut": cut, "ref": ref, "bad": bad, "original": DATA / f"{FIXTURE}.onnx"}


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """A hand-built pyramid with its record, its cut, and the original to verify ``--against``."""
    d = tmp_path_factory.mktemp("plain")
    model, truth = resnet_like("plain")
    model = add_metadata(model, [(n, truth[n], c, r) for n, c, r in zip(LEVELS, (8, 16, 24, 32), (4, 8, 16, 32))])
    original, cut = d / "net.onnx", d / "net.features.onnx"
    onnx.save(model, original)
    onnx.save(graphfeat.cut(original, layers=LEVELS), cut)
    return {"original": original, "cut": cut}


@pytest.fixture(scope="module")
def failing(files):
    """``verify --html --junit-xml`` against the perturbed reference: exit code, stdout, the two files."""
    html, xml = files["dir"] / "bad.html", files["dir"] / "bad.xml"
    proc = subprocess.run([sys.executable, "-m", "graphfeat", "verify", str(files["cut"]), "--reference",
                           str(files["bad"]), "--html", str(html), "--junit-xml", str(xml)],
                          capture_output=True, text=True, cwd=ROOT)
    return {"proc": proc, "html": html.read_text(encoding="utf-8"), "xml": xml.read_bytes()}


def test_verify_html_shows_each_level_its_mark_and_the_failure(files, failing):
    assert failing["proc"].returncode == 1, failing["proc"].stderr
    text = failing["html"]
    page = Page(text)
    rows = page.rows_of("level")
    assert [a["data-level"] for a, _ in rows] == LEVELS
    marks = {a["data-level"]: "fail" if "fail" in a["class"].split() else "pass" for a, _ in rows}
    assert marks == {"layer1": "pass", "layer2": "pass", "layer3": "fail", "layer4": "pass"}
    by_level = {a["data-level"]: row for a, row in rows}
    assert "\u2717 FAIL" in by_level["layer3"] and "max_rel 9.90e-03 > rtol 0.0001" in by_level["layer3"]
    assert all("\u2713 pass" in by_level[n] and "FAIL" not in by_level[n] for n in ("layer1", "layer2", "layer4"))
    assert "2x32x4x4" in by_level["layer3"] and "float32" in by_level["layer3"]
    assert [a["class"] for a in page.having("span", "mark")] == ["mark pass"] * 2 + ["mark fail", "mark pass"]
    svgs = _svgs(text)
    levels = _shapes(_svg_class(svgs, "pyramid"), "rect", "level")
    assert [e.get("data-level") for e in levels] == LEVELS
    assert [e.get("data-stride") for e in levels] == ["4", "8", "16", "32"]
    heights = [float(e.get("height")) for e in levels]
    assert heights == sorted(heights, reverse=True) and heights[0] == 4 * heights[2]  # 1 / stride
    assert ["fail" in e.get("class").split() for e in levels] == [False, False, True, False]
    bars = _shapes(_svg_class(svgs, "errors"), "rect", "bar")
    widths = {e.get("data-level"): float(e.get("width")) for e in bars}
    assert len(bars) == 4 and widths["layer3"] == max(widths.values())
    _self_contained(text)


def test_verify_html_names_versions_command_and_reference(files, failing):
    text = failing["html"]
    versions = dict(row.split(" ", 1) for a, row in Page(text).rows if not a)
    assert versions["onnx"] == onnx.__version__ and versions["onnxruntime"] == onnxruntime.__version__
    assert versions["numpy"] == np.__version__ and versions["graphfeat"] == graphfeat.__version__
    assert versions["python"].startswith(platform.python_version())
    assert "openvino" not in versions  # only a runtime that ran is named
    digest = hashlib.sha256(files["bad"].read_bytes()).hexdigest()[:16]
    assert f"reference file {files['bad']} (sha256 {digest})" in text
    assert f"graphfeat verify {files['cut']} --reference {files['bad']} --html" in text
    assert "CPUExecutionProvider" in text and "2 distinct" not in text  # the count is its own fact
    assert re.search(r"<dt>distinct images</dt><dd>2</dd>", text)


def test_verify_html_passes_and_covers_every_runtime(plain, tmp_path, capsys):
    html = tmp_path / "ok.html"
    assert main(["verify", str(plain["cut"]), "--against", str(plain["original"]), "--runtime", "onnxruntime",
                 "reference", "--html", str(html)]) == 0
    assert f"wrote {html}" in capsys.readouterr().out
    text = html.read_text(encoding="utf-8")
    page = Page(text)
    sections = page.having("section", "runtime")
    assert [a["data-runtime"] for a in sections] == ["onnxruntime", "reference"]
    rows = page.rows_of("level")
    assert [(a["data-runtime"], a["data-level"]) for a, _ in rows] == [
        (rt, n) for rt in ("onnxruntime", "reference") for n in LEVELS]
    assert all("pass" in a["class"].split() and "\u2713 pass" in row for a, row in rows)
    assert len(_shapes(_svg_class(_svgs(text), "pyramid"), "rect", "level")) == 4
    assert len([s for s in _svgs(text) if "errors" in s.get("class")]) == 2
    assert "PASS: every level passes on onnxruntime, reference" in text
    assert f"original ONNX file {plain['original']}, run on ONNX Runtime on images seeded with 0" in text


def test_junit_xml_has_a_suite_per_runtime_and_a_case_per_level(plain, failing):
    root = ET.fromstring(failing["xml"])
    assert root.tag == "testsuites" and (root.get("tests"), root.get("failures")) == ("4", "1")
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "graphfeat.verify.onnxruntime" and suite.get("failures") == "1"
    cases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [("graphfeat.verify.onnxruntime", n) for n in LEVELS]
    failures = {c.get("name"): c.find("failure") for c in cases}
    assert [n for n, f in failures.items() if f is not None] == ["layer3"]
    assert failures["layer3"].get("message") == "max_rel 9.90e-03 > rtol 0.0001"
    assert "max_rel 0.0099" in failures["layer3"].text and "cosine" in failures["layer3"].text
    reports = graphfeat.runtime.verify_runtimes(plain["cut"], against=plain["original"],
                                                runtimes=["onnxruntime", "reference"], rtol=1e-7)
    assert [r.levels[0].max_rel for r in reports][0] == 0.0 < reports[1].levels[0].max_rel
    two = ET.fromstring(junit_xml(reports))
    assert [s.get("name") for s in two.findall("testsuite")] == ["graphfeat.verify.onnxruntime",
                                                                 "graphfeat.verify.reference"]
    assert [s.get("failures") for s in two.findall("testsuite")] == ["0", "4"]  # bit-exact only on the same ORT
    assert two.get("failures") == "4" and len(two.findall("testsuite/testcase")) == 8


def test_a_report_path_that_is_an_input_is_refused_before_the_run(files, capsys):
    before = files["cut"].read_bytes()
    for flag, path in (("--html", files["cut"]), ("--junit-xml", files["ref"])):
        assert main(["verify", str(files["cut"]), "--reference", str(files["ref"]), flag, str(path)]) == 2
        err = capsys.readouterr()
        assert err.out == "" and err.err.count("\n") == 1  # nothing ran: no table; one line
        assert f"refusing to write the {flag} report over the input {path}" in err.err
    assert files["cut"].read_bytes() == before
    same = files["dir"] / "same"
    assert main(["verify", str(files["cut"]), "--reference", str(files["ref"]), "--html", str(same),
                 "--junit-xml", str(files["dir"] / "." / "same")]) == 2
    assert "--html and --junit-xml name the same file" in capsys.readouterr().err and not same.exists()
    assert main(["info", str(files["cut"]), "--html", str(files["cut"])]) == 2
    assert "refusing to write the --html report over the input" in capsys.readouterr().err
    assert files["cut"].read_bytes() == before


def test_a_report_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    path = tmp_path / "r.html"
    write_report(path, "<p>old</p>")
    write_report(path, "<p>new</p>")  # a report replaces the last one
    assert path.read_text() == "<p>new</p>"

    def broken(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(GraphfeatError, match="No space left on device"):
        write_report(path, "<p>newer</p>" * 10_000)
    assert path.read_text() == "<p>new</p>" and sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]


def test_info_html_maps_the_trunk_the_candidates_and_the_levels(files, tmp_path, capsys):
    original, html = files["original"], tmp_path / "map.html"
    assert main(["info", str(original), "--html", str(html)]) == 0
    assert f"wrote {html}" in capsys.readouterr().out
    text = html.read_text(encoding="utf-8")
    page = Page(text)
    names = [r.name for r in feature_levels(original)]
    assert [a["data-level"] for a, _ in page.rows_of("level")] == names == ["conv1", "bn1"] + LEVELS
    smap = stride_map(original)
    trunk = page.rows_of("tensor")
    assert [a["data-tensor"] for a, _ in trunk] == [t.tensor for t in smap.tensors]
    # the rule's pick at each stride, as `info` lists it without --html
    picks = [a["data-tensor"] for a, row in trunk if "--strides" in row]
    assert picks == [c.tensor for c in stride_candidates(original) if c.deepest]
    level_of = {r.tensor: r.name for r in feature_levels(original)}
    assert {a["data-tensor"]: row for a, row in trunk if "level " in row}.keys() == level_of.keys()
    svgs = _svgs(text)
    cells = _shapes(_svg_class(svgs, "stride-map"), "rect", "tensor")
    assert [c.get("data-tensor") for c in cells] == [t.tensor for t in smap.tensors]
    fill = {}
    for c in cells:
        fill.setdefault(c.get("data-stride"), set()).add(c.get("fill"))
    assert all(len(f) == 1 for f in fill.values()) and len({f.pop() for f in fill.values()}) == len(fill)
    assert len(_shapes(_svg_class(svgs, "stride-map"), "circle", "chosen")) == len(set(level_of))
    assert len(_shapes(_svg_class(svgs, "pyramid"), "rect", "level")) == len(names)
    first = next(row for a, row in trunk if a["data-tensor"] == smap.tensors[1].tensor)
    assert "Conv" in first and "[2, 8, 32, 32]" in first and "nchw" in first
    _self_contained(text)


def _hostile_model() -> onnx.ModelProto:
    """Two strided convolutions and a head, every tensor named with markup (and one name 600 characters long)."""
    rng = np.random.default_rng(5)
    a, b, c, d = HOSTILE
    w1 = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((6, 4, 3, 3)).astype(np.float32), "w2")
    nodes = [helper.make_node("Conv", ["images", "w1"], [a], strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", [a], [b]),
             helper.make_node("Conv", [b, "w2"], [c], strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", [c], [d]),
             helper.make_node("GlobalAveragePool", [d], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["logits"])]
    graph = helper.make_graph(nodes, "hostile", [helper.make_tensor_value_info("images", TensorProto.FLOAT,
                                                                                [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 6])], [w1, w2])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_hostile_names_stay_text_in_every_report(tmp_path):
    original, cut, ref = tmp_path / "hostile.onnx", tmp_path / "hostile.cut.onnx", tmp_path / "hostile.npz"
    model = _hostile_model()
    onnx.save(model, original)
    onnx.save(graphfeat.cut(original, tensors=[HOSTILE[1], HOSTILE[3]]), cut)
    x = np.random.default_rng(2).standard_normal((1, 3, 32, 32)).astype(np.float32)
    values = run(expose(model, [HOSTILE[1], HOSTILE[3]]), x)
    np.savez(ref, input=x, **{f"level/{n}": values[n] for n in (HOSTILE[1], HOSTILE[3])})
    assert main(["info", str(original), "--html", str(tmp_path / "map.html")]) == 0
    assert main(["info", str(cut), "--html", str(tmp_path / "levels.html")]) == 0
    assert main(["verify", str(cut), "--reference", str(ref), "--html", str(tmp_path / "v.html"),
                 "--junit-xml", str(tmp_path / "v.xml")]) == 0
    for name in ("map.html", "levels.html", "v.html"):
        text = (tmp_path / name).read_text(encoding="utf-8")
        assert "<script" not in text.lower() and "<img" not in text.lower() and "\x1b" not in text, name
        _self_contained(text)
        for svg in _svgs(text):  # the SVG parts are well-formed XML
            assert svg.tag == "{http://www.w3.org/2000/svg}svg"
        assert "&lt;script&gt;alert(&quot;t1&quot;)&lt;/script&gt;" in text or name == "v.html"
        assert "\\x1b[31m&lt;script&gt;" in text, name
    page = Page((tmp_path / "map.html").read_text(encoding="utf-8"))
    tensors = [a["data-tensor"] for a, _ in page.rows_of("tensor")]
    assert tensors[1:5] == [HOSTILE[0], HOSTILE[1], HOSTILE[2], HOSTILE[3].replace("\x1b", "\\x1b")]
    levels = Page((tmp_path / "v.html").read_text(encoding="utf-8")).rows_of("level")
    assert [a["data-level"] for a, _ in levels] == [HOSTILE[1], HOSTILE[3].replace("\x1b", "\\x1b")]
    cases = ET.parse(tmp_path / "v.xml").getroot().findall("testsuite/testcase")
    assert [c.get("name") for c in cases] == [HOSTILE[1], HOSTILE[3].replace("\x1b", "\\x1b")]


def test_assert_pyramid_close_passes_and_returns_the_report(files, plain):
    report = assert_pyramid_close(files["cut"], files["ref"])
    assert isinstance(report, VerifyReport) and report.ok and [m.name for m in report.levels] == LEVELS
    both = assert_pyramid_close(onnx.load(plain["cut"]), plain["original"], runtime=["onnxruntime", "reference"])
    assert [r.runtime for r in both] == ["onnxruntime", "reference"] and all(r.ok for r in both)
    assert both[0].source.startswith("original ")  # an .onnx reference is the original, as --against


def test_assert_pyramid_close_raises_the_table_with_only_the_failing_level_flagged(files):
    with pytest.raises(AssertionError) as caught:
        assert_pyramid_close(files["cut"], files["bad"])
    message = str(caught.value)
    assert message.startswith("pyramid not close: level layer3 differs from the reference")
    lines = {line.split()[0]: line for line in message.splitlines()[2:] if line.split()[:1] and
             line.split()[0] in LEVELS}
    assert list(lines) == LEVELS
    assert [n for n, line in lines.items() if "FAIL" in line] == ["layer3"]
    assert all(line.rstrip().endswith(" ok") for n, line in lines.items() if n != "layer3")
    # a looser tolerance lets the same file pass; bad input stays a GraphfeatError, not a failed assertion
    assert assert_pyramid_close(files["cut"], files["bad"], rtol=2e-2).ok
    with pytest.raises(GraphfeatError):
        assert_pyramid_close(files["original"], files["ref"])


def test_testing_is_a_public_module_imported_on_first_use():
    code = ("import sys, graphfeat; assert 'graphfeat.testing' not in sys.modules; "
            "f = graphfeat.testing.assert_pyramid_close; print(f.__module__, 'testing' in graphfeat.__all__)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["graphfeat.testing", "True"]


def test_the_json_keeps_its_fields_and_the_limits_are_the_criterions(files):
    report = verify(files["cut"], reference=files["ref"], rtol=3e-4, atol=1e-6)
    level = report.levels[0]
    assert (level.limits.rtol, level.limits.atol, level.limits.min_sqnr) == (3e-4, 1e-6, None)
    assert level.criterion == "rtol 0.0003 + atol 1e-06 (--rtol given)"
    assert set(level.as_dict()) == {"name", "shape", "max_abs", "max_rel", "cosine", "ok", "note", "sqnr", "dtype",
                                    "criterion"}
    json.dumps(report.as_dict())
