"""The task pages under docs/ run: their code blocks execute, their commands parse, their links resolve.

* a ``bash`` block whose first line is ``# run`` is run command by command in a temp dir (a line starting
  with ``graphfeat`` through this Python's ``-m graphfeat``, one starting with ``python`` through this
  Python); each must exit 0, or the code its trailing ``# exit N`` comment gives;
* a ``python`` block whose first line is ``# run`` is executed, in page order, in one namespace per page
  (cwd: the temp dir, which is also on ``sys.path``);
* a ``python`` block whose first line is ``# file: NAME`` is written to NAME in the temp dir (the module a
  later ``graphfeat export --cell`` imports);
* every ``graphfeat VERB ...`` line of any ``bash`` block parses with the CLI's own parser;
* every relative link points to a page of the site, and its ``#anchor`` to a heading that exists;
* zoo.md's families table is the registry's (``exporters.catalog``), and no page tells history.

The temp dir holds a link ``tests/data`` to the repository's, so a page may cut the committed converter
fixtures (always with ``-o``: nothing is written into the repository, which the test checks).
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import unicodedata
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mindspore")
# one pytest-xdist worker runs this module
pytestmark = [pytest.mark.xdist_group("docs_pages"),
              pytest.mark.filterwarnings("ignore::UserWarning:onnxconverter_common")]

from exporters import catalog  # noqa: E402
from graphfeat.cli import build_parser  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = ["cut.md", "verify.md", "toolchain.md", "own-network.md", "dynamic-size.md", "zoo.md", "design.md",
         "performance.md", "sources.md"]
#: pages a link may point to: these, the lead's, the guide
SITE = set(PAGES) | {"index.md", "install.md", "api.md", "api/graphfeat.md", "api/exporters.md",
                     "adding-a-backbone.md", "changelog.md"}
#: the modules a page's runnable blocks need beyond MindSpore (the page is skipped without them)
NEEDS = {"toolchain.md": ("onnxsim", "onnxconverter_common", "polygraphy")}
#: commands a `# run` block may call besides graphfeat and python: tools installed beside this Python
TOOLS = {"polygraphy"}
#: pages that must show a runnable example
MUST_RUN = {"cut.md", "verify.md", "dynamic-size.md", "own-network.md"}
BLOCK = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
EXIT = re.compile(r"#\s*exit\s+(\d+)\s*$")
LINK = re.compile(r"\]\(([^)\s]+)\)")
HISTORY = re.compile(r"\bround \d|\bissue #?\d|\b20\d\d-\d\d-\d\d\b|\bwe first tried\b|\bsession \d"
                     r"|\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,40}\b", re.I)


def text(page: str) -> str:
    return (DOCS / page).read_text(encoding="utf-8")


def blocks(page: str) -> list[tuple[str, str]]:
    return [(lang, body) for lang, body in BLOCK.findall(text(page))]


def commands(body: str) -> list[str]:
    """The commands of a shell block: comment and blank lines dropped, ``\\`` continuations joined."""
    out, pending = [], ""
    for line in body.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        out.append(pending + line)
        pending = ""
    return out


def argv_of(command: str) -> list[str]:
    return shlex.split(command, comments=True)


# ------------------------------------------------------------------------------------------ static checks

def test_every_page_exists_and_is_short():
    for page in PAGES:
        assert (DOCS / page).is_file(), page
        assert len(text(page).splitlines()) < 400, f"{page} is too long to read in a few minutes"


@pytest.mark.parametrize("page", PAGES)
def test_every_graphfeat_command_parses(page):
    parser = build_parser()
    lines = [c for lang, body in blocks(page) if lang in ("bash", "sh", "shell") for c in commands(body)]
    for line in lines:
        argv = argv_of(line)
        if not argv or argv[0] != "graphfeat":
            continue
        try:
            with contextlib.redirect_stderr(open(os.devnull, "w")):
                parser.parse_args(argv[1:])
        except SystemExit as exc:  # argparse's exit 2: the page's command line does not parse
            raise AssertionError(f"{page}: `{line}` does not parse") from exc


def headings(page: str) -> set[str]:
    """The anchors mkdocs (Python-Markdown's toc) gives the page's headings."""
    body = BLOCK.sub("", (DOCS / page).read_text(encoding="utf-8"))
    found = set()
    for line in body.splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            title = re.sub(r"`|\*\*|\[|\]\([^)]*\)", "", m.group(1))
            title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
            slug = re.sub(r"[^\w\s-]", "", title).strip().lower()
            found.add(re.sub(r"[-\s]+", "-", slug))
    return found


@pytest.mark.parametrize("page", PAGES)
def test_links_resolve(page):
    body = BLOCK.sub("", text(page))
    for target in LINK.findall(body):
        if re.match(r"[a-z]+://", target) or target.startswith("mailto:"):
            continue
        name, _, anchor = target.partition("#")
        name = name or page
        assert name in SITE, f"{page}: link to {target}, not a page of the site"
        if anchor or name in PAGES:
            assert (DOCS / name).is_file(), f"{page}: link to {name}, which does not exist"
        if anchor:
            assert anchor in headings(name), f"{page}: no heading '#{anchor}' in {name}"


@pytest.mark.parametrize("page", PAGES)
def test_no_history(page):
    for n, line in enumerate(text(page).splitlines(), 1):
        m = HISTORY.search(line)
        assert not m, f"{page}:{n} tells history ({m.group(0)!r}): {line}"


def test_zoo_families_table_is_the_registrys():
    assert catalog.readme_section(text("zoo.md")) == catalog.family_table(), (
        "docs/zoo.md's families table is out of date (exporters.catalog writes it)")


def test_dynamic_size_limits_are_the_registrys():
    section = text("dynamic-size.md").split("## Per-family limits", 1)[1].split("\n## ", 1)[0]
    rows = {m.group(1) for m in re.finditer(r"^\| (\w+) \|", section, re.M)} - {"family"}
    assert rows == set(catalog.DYNAMIC_SIZE_LIMITS), "dynamic-size.md's limits differ from exporters.catalog's"


def test_the_required_pages_have_a_runnable_example():
    for page in MUST_RUN:
        assert any(body.startswith("# run") for _, body in blocks(page)), f"{page} has no `# run` block"


# ------------------------------------------------------------------------------------------ running blocks

def run_shell(page: str, body: str, cwd: Path) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(cwd), os.environ.get("PYTHONPATH")) if p))
    for line in commands(body):
        argv = argv_of(line)
        expected = int(EXIT.search(line).group(1)) if EXIT.search(line) else 0
        if argv[0] == "graphfeat":
            argv = [sys.executable, "-m", "graphfeat", *argv[1:]]
        elif argv[0] in ("python", "python3"):
            argv = [sys.executable, *argv[1:]]
        elif argv[0] in TOOLS:
            argv = [str(Path(sys.executable).parent / argv[0]), *argv[1:]]
        else:
            raise AssertionError(f"{page}: a `# run` block may only run graphfeat, python or {sorted(TOOLS)}: `{line}`")
        proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == expected, (
            f"{page}: `{line}` exited {proc.returncode}, the page says {expected}\n{proc.stdout}\n{proc.stderr}")


RUNNABLE = [p for p in PAGES if any(body.startswith(("# run", "# file:")) for _, body in blocks(p))]


@pytest.mark.parametrize("page", RUNNABLE)
def test_page_runs(page, tmp_path, monkeypatch):
    for module in NEEDS.get(page, ()):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{page} needs {module} (the toolchain extra)")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "data").symlink_to(ROOT / "tests" / "data")
    data_before = sorted(p.name for p in (ROOT / "tests" / "data").rglob("*"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    namespace: dict = {"__name__": f"docs_{page[:-3].replace('-', '_')}"}
    try:
        for n, (lang, body) in enumerate(blocks(page)):
            first = body.partition("\n")[0].strip()
            if lang == "python" and first.startswith("# file:"):
                (tmp_path / first[len("# file:"):].strip()).write_text(body, encoding="utf-8")
            elif lang == "python" and first == "# run":
                exec(compile(body, f"{page} (block {n})", "exec"), namespace)  # noqa: S102 - the page's example
            elif lang in ("bash", "sh", "shell") and first == "# run":
                run_shell(page, body, tmp_path)
    finally:
        for name in [m for m, mod in sys.modules.items() if str(tmp_path) in str(getattr(mod, "__file__", ""))]:
            sys.modules.pop(name, None)
    assert sorted(p.name for p in (ROOT / "tests" / "data").rglob("*")) == data_before, (
        f"{page} wrote into the repository's tests/data (give every cut of a fixture -o)")
