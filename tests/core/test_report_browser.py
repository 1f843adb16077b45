"""The reports as a browser renders them: headless Chromium through Playwright opens each page from disk.

The page is checked as rendered, not as written: the rows a reader sees, the colour the pass and fail marks
really get from the style, the pyramid's shapes with a size on screen, and a screenshot that is not blank
(decoded here with zlib: the core install has no imaging library). Playwright's own browser download is not
used: the test drives the system's Chromium (``/usr/bin/chromium``, Debian's ``chromium`` package; another
path in ``GRAPHFEAT_CHROMIUM``). Without Playwright or Chromium the test skips, except under ``CI=true``,
where a missing browser is a failure, not a pass.
"""
from __future__ import annotations

import os
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import onnx
import onnx_fixtures  # noqa: F401  (first: puts the repository root on sys.path)
import pytest
from converter_fixtures import DATA, values_of

import graphfeat
from graphfeat.cli import main
from graphfeat.info import feature_levels

FIXTURE = "mindspore_mindcv_resnet18"
LEVELS = ["layer1", "layer2", "layer3", "layer4"]
CHROMIUM = os.environ.get("GRAPHFEAT_CHROMIUM", "/usr/bin/chromium")
VIEWPORT = {"width": 1280, "height": 900}
GREEN, RED = "rgb(24, 121, 78)", "rgb(180, 35, 24)"


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright)"
    if not os.access(CHROMIUM, os.X_OK):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set GRAPHFEAT_CHROMIUM)"
    return None


@pytest.fixture(scope="module")
def browser():
    why = _missing()
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser test must run in CI: {why}")
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """``verify --html`` of a cut whose layer3 differs from its reference by 1 %, and ``info --html`` of the
    original (a real MindSpore export)."""
    d = tmp_path_factory.mktemp("browser")
    original = DATA / f"{FIXTURE}.onnx"
    cut = d / "resnet18.features.onnx"
    onnx.save(graphfeat.cut(original, layers=LEVELS), cut)
    values = values_of(FIXTURE)
    levels = {f"level/{n}": values[f"level.{n}"] for n in LEVELS}
    levels["level/layer3"] = levels["level/layer3"] * 1.01
    np.savez(d / "bad.npz", input=values["input"], **levels)
    verify_html, info_html = d / "verify.html", d / "info.html"
    assert main(["verify", str(cut), "--reference", str(d / "bad.npz"), "--html", str(verify_html)]) == 1
    assert main(["info", str(original), "--html", str(info_html)]) == 0
    return {"verify": verify_html, "info": info_html, "original": original}


def _pixels(png: bytes) -> np.ndarray:
    """The RGB pixels of an 8-bit, non-interlaced RGB or RGBA PNG (what Chromium writes)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        body = png[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    bpp = 3 if colour == 2 else 4
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, 1 + width * bpp)
    out = np.zeros((height, width * bpp), np.uint8)
    for y in range(height):
        kind, line = raw[y, 0], raw[y, 1:]
        up = out[y - 1] if y else np.zeros_like(line)
        if kind == 0:
            out[y] = line
        elif kind == 1:  # Sub: a running sum along each channel
            out[y] = (np.cumsum(line.reshape(-1, bpp), axis=0, dtype=np.int64) % 256).ravel()
        elif kind == 2:
            out[y] = line + up  # uint8 arithmetic wraps at 256, as the filter does
        else:
            out[y] = _average_or_paeth(kind, line.tolist(), up.tolist(), bpp)
    return out.reshape(height, width, bpp)[:, :, :3]


def _average_or_paeth(kind: int, line: list[int], up: list[int], bpp: int) -> list[int]:
    """One row under filter 3 (Average) or 4 (Paeth): each byte depends on the decoded one to its left."""
    row = [0] * len(line)
    for i, value in enumerate(line):
        a = row[i - bpp] if i >= bpp else 0
        b, c = up[i], (up[i - bpp] if i >= bpp else 0)
        if kind == 3:
            pred = (a + b) // 2
        else:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
        row[i] = (value + pred) & 255
    return row


def _open(browser, path: Path):
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(path.as_uri())
    return page


def test_the_verify_report_renders_its_rows_marks_and_pyramid(browser, reports):
    start = time.perf_counter()
    page = _open(browser, reports["verify"])
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.reload()
    assert requests == [reports["verify"].as_uri()]  # the page fetches nothing besides itself
    rows = page.locator("table.levels tbody tr")
    assert rows.count() == 4
    assert [rows.nth(k).get_attribute("data-level") for k in range(4)] == LEVELS
    marks = page.locator("table.levels .mark")
    assert [marks.nth(k).inner_text() for k in range(4)] == ["\u2713 pass"] * 2 + ["\u2717 FAIL", "\u2713 pass"]
    colours = [marks.nth(k).evaluate("e => getComputedStyle(e).color") for k in range(4)]
    assert colours == [GREEN, GREEN, RED, GREEN]  # the style really marks the failing level, and only it
    shapes = page.locator("svg.pyramid rect.level")
    assert shapes.count() == 4
    boxes = [shapes.nth(k).bounding_box() for k in range(4)]
    assert all(b["width"] > 5 and b["height"] > 5 for b in boxes)
    assert [b["height"] for b in boxes] == sorted((b["height"] for b in boxes), reverse=True)
    assert page.locator("svg.errors rect.bar").count() == 4
    png = page.screenshot(full_page=True)
    blank = browser.new_page(viewport=VIEWPORT).screenshot(full_page=True)
    assert (_pixels(blank) == 255).all()  # the decoder reads a blank page as blank
    shot = _pixels(png)
    ink = (shot < 200).any(axis=2).mean()
    assert ink > 0.01 and len(png) > 5 * len(blank), (ink, len(png), len(blank))
    reds = ((shot[:, :, 0] > 170) & (shot[:, :, 1] < 110) & (shot[:, :, 2] < 60)).sum()
    greens = ((shot[:, :, 1] > 150) & (shot[:, :, 0] < 140) & (shot[:, :, 2] < 140)).sum()
    assert reds > 100 and greens > 100, (reds, greens)  # the failing bar and level, the passing ones
    assert time.perf_counter() - start < 60


def test_the_stride_map_renders_one_row_and_shape_per_level(browser, reports):
    page = _open(browser, reports["info"])
    names = [r.name for r in feature_levels(reports["original"])]
    rows = page.locator("table.levels tbody tr")
    assert [rows.nth(k).get_attribute("data-level") for k in range(rows.count())] == names
    assert page.locator("svg.pyramid rect.level").count() == len(names)
    cells = page.locator("svg.stride-map rect.tensor")
    assert cells.count() == page.locator("table.trunk tbody tr").count() > len(names)
    assert page.locator("svg.stride-map circle.chosen").count() == len(names)
    assert cells.nth(1).bounding_box()["width"] > 10
    ink = (_pixels(page.screenshot(full_page=True)) < 200).any(axis=2).mean()
    assert ink > 0.01, ink
