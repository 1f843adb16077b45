"""The house rules, checked on the source: layers, the public boundary, and no MindSpore in the core.

Layers, bottom-up (a module may import only from its own layer or below):
errors, _lazy < levels < onnxfile < graph < resolve < surgery, info < runtime < report, testing < cli.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import networkx as nx
import pytest

import graphfeat

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "graphfeat"
LAYERS = {"errors": 0, "_lazy": 0, "levels": 1, "onnxfile": 2, "graph": 3, "resolve": 4, "surgery": 5, "info": 5,
          "runtime": 6, "report": 7, "testing": 7, "cli": 8}
#: units whose ``__all__`` the rest of the project (exporters, bench, scripts) may import from
SHARED = ("errors", "levels", "onnxfile", "graph", "resolve", "runtime", "cli")
#: internals a script may use, and why
ALLOWED_INTERNALS = {("bench/check_rule.py", "graphfeat.graph.check"): "measures the checker rule itself"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """``(absolute module, imported names)`` for every import in ``path`` (function bodies included)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.append((base, [a.name for a in node.names]))
    return found


def _unit(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "graphfeat" else None


def _sources(folder: str) -> list[Path]:
    return sorted(p for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_belongs_to_a_layer():
    units = {_unit(_module_name(p)) for p in _sources("graphfeat")} - {None, "__main__"}
    assert units == set(LAYERS)


def test_no_import_runs_up_the_layers_and_none_is_circular():
    upward, graph = [], nx.DiGraph()
    for path in _sources("graphfeat"):
        importer = _module_name(path)
        for module, names in _imports(path):
            if not module.startswith("graphfeat"):
                continue
            targets = [f"{module}.{n}" for n in names if importlib.util.find_spec(module) is not None
                       and (PACKAGE / Path(*f"{module}.{n}".split(".")[1:])).with_suffix(".py").exists()]
            for target in targets or [module]:
                graph.add_edge(importer, target)
            src, dst = _unit(importer), _unit(module)
            if src in LAYERS and dst in LAYERS and LAYERS[dst] > LAYERS[src]:
                upward.append(f"{importer} imports {module} ({src} -> {dst})")
    assert upward == []
    cycles = [c for c in nx.simple_cycles(graph) if not all(m.count(".") <= 1 for m in c) or len(c) > 1]
    assert [c for c in cycles if not _package_self_loop(c)] == []


def _package_self_loop(cycle: list[str]) -> bool:
    """A package ``__init__`` importing its own modules is not a cycle between modules."""
    return len(cycle) == 2 and (cycle[0].startswith(cycle[1] + ".") or cycle[1].startswith(cycle[0] + "."))


def test_no_module_shares_its_name_with_a_public_function():
    public_functions = {n for n in graphfeat.__all__ if inspect.isfunction(getattr(graphfeat, n))}
    modules = {p.stem if p.name != "__init__.py" else p.parent.name for p in _sources("graphfeat")}
    assert public_functions & modules == set()
    for name in public_functions:
        assert inspect.isfunction(importlib.import_module("graphfeat").__dict__[name]), name


def test_exporters_bench_and_scripts_use_only_the_public_and_shared_names():
    shared = {unit: set(importlib.import_module(f"graphfeat.{unit}").__all__) for unit in SHARED}
    problems = []
    for folder in ("exporters", "bench", "scripts"):
        for path in _sources(folder):
            rel = path.relative_to(ROOT).as_posix()
            for module, names in _imports(path):
                if not module.startswith("graphfeat") or (rel, module) in ALLOWED_INTERNALS:
                    continue
                if module == "graphfeat":
                    bad = [n for n in names if n not in graphfeat.__all__ and n not in SHARED]
                elif _unit(module) in SHARED and module.count(".") == 1:
                    bad = [n for n in names if n not in shared[_unit(module)]] if names else []
                else:
                    bad = [module]
                problems += [f"{rel}: {module}.{n}" if n != module else f"{rel}: {module}" for n in bad]
    assert problems == []


def test_graphfeat_never_imports_mindspore_or_exporters():
    hits = [f"{p.relative_to(ROOT)}: {m}" for p in _sources("graphfeat") for m, _ in _imports(p)
            if m.split(".")[0] in ("mindspore", "exporters")]
    assert hits == []


def test_the_whole_package_runs_without_mindspore(tmp_path):
    """Every graphfeat module imports, and a cut runs, with MindSpore made unimportable."""
    from onnx_fixtures import resnet_like

    import onnx

    path = tmp_path / "m.onnx"
    onnx.save(resnet_like("torchscript")[0], path)
    code = f"""
import importlib, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('mindspore', 'exporters'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
import pkgutil, graphfeat
for m in pkgutil.walk_packages(graphfeat.__path__, 'graphfeat.'):
    if m.name != 'graphfeat.__main__':
        importlib.import_module(m.name)
from graphfeat.cli import main
assert main(['cut', {str(path)!r}, '--layers', 'layer1', 'layer2']) == 0
assert main(['export', 'resnet18']) == 2
assert main(['export', 'resnet18', 'resnet34', '--jobs', '2']) == 2  # kept workers (graphfeat.runtime.Worker)
bad = [m for m in sys.modules if m.split('.')[0] in ('mindspore', 'exporters')]
assert not bad, bad
print('clean')
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "clean" in proc.stdout
    assert "needs MindSpore, which is not installed" in proc.stderr


@pytest.mark.skipif("mindspore" in sys.modules, reason="another test module of this session imported MindSpore")
def test_this_session_has_not_imported_mindspore():
    """In the core-only run (``scripts/dev.sh test``'s first step, a venv without MindSpore) nothing pulled it in."""
    assert "mindspore" not in sys.modules and "exporters" not in sys.modules


def test_export_starts_its_worker_before_the_heavy_imports(tmp_path):
    """``graphfeat export`` hands its job to a MindSpore worker without importing onnx, networkx, numpy or ONNX
    Runtime in its own process: the worker's start (~1.3 s) does not wait for those imports (~0.3 s)."""
    code = f"""
import atexit, sys
heavy = ("onnx", "networkx", "numpy", "onnxruntime")
atexit.register(lambda: print("imported:", sorted(m for m in heavy if m in sys.modules)))
from graphfeat.cli import main
sys.exit(main(["export", "no_such_model", "-o", {str(tmp_path / "x.onnx")!r}]))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    # exit 2 either way: no MindSpore in this venv, or the worker knows no such model
    assert proc.returncode == 2 and "no_such_model" in proc.stderr, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("imported: []")


#: a number, or a range of two (``15.2-15.9``), and a unit of time, memory or ratio (``x`` only glued: ``2.6x``)
_NUMBER = r"~?\d+(?:\.\d+)?(?:\s*[-–]\s*\d+(?:\.\d+)?)?"
_UNIT = r"(?:\s*(?:ms|µs|us|s|min|GiB|MiB|KiB|GB|MB|kB|KB)|x)(?![\w/])"
_MONTH = (r"(?:January|February|March|April|May|June|July|August|September|October|November|December"
          r"|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)")
#: the project's history, which belongs in git and bench/README.md, not in a docstring, comment or message
HISTORY = {
    # #16 or issue 16; not a hex colour (#16a34a, #333), an HTML entity, a URL's issues/16 or an upstream
    # tracker's owner/repo#16 (the way to cite another project's bug)
    "issue number": re.compile(r"(?<![\w&#/])#(?![0-9a-fA-F]{3}\b|[0-9a-fA-F]{6}\b|[0-9a-fA-F]{8}\b)\d{1,5}\b"
                               r"|\b(?:[Ii]ssues?|ISSUES?|[Tt]ickets?|PR|GH)[ \t-]*#?\d+\b"),
    "date": re.compile(rf"\b(?:19|20)\d\d-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])\b"
                       rf"|\b{_MONTH}\.?\s+(?:\d{{1,2}},?\s+)?(?:19|20)\d\d\b"),
    "numbered round or session": re.compile(r"(?<!-)\b(?:round|session|sprint|milestone)s?\s+#?\d+\b",
                                            re.IGNORECASE),  # not a flag: --rounds 2
    # 831 ms -> 8.4 ms, 0.84 -> 0.57 s, 0.54 s instead of 0.90 s, from 7 to 6 min (not stride 2 -> 4, 3x3 -> 1x1)
    "before/after measurement": re.compile(
        rf"{_NUMBER}(?:{_UNIT})?\s*(?:->|→|=>|⇒)\s*{_NUMBER}{_UNIT}"
        rf"|{_NUMBER}{_UNIT}\s*(?:instead of|rather than|vs\.?|versus|against|down from|up from)\s*{_NUMBER}{_UNIT}"
        rf"|\bfrom\s+{_NUMBER}(?:{_UNIT})?\s+to\s+{_NUMBER}{_UNIT}"),
}


def _history(text: str) -> list[tuple[int, str, str]]:
    """``(offset, kind, match)`` of every piece of history in ``text``."""
    return [(m.start(), kind, m.group(0)) for kind, pattern in HISTORY.items() for m in pattern.finditer(text)]


def _comments_and_strings(path: Path):
    """``(line, text)`` of every comment (without its ``#``) and string literal, docstrings included."""
    for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if tok.type == tokenize.COMMENT:
            yield tok.start[0], tok.string[1:]
        elif tok.type == tokenize.STRING or tok.type == getattr(tokenize, "FSTRING_MIDDLE", None):
            yield tok.start[0], tok.string


def test_the_history_patterns_catch_history_and_nothing_else():
    history = ["issue #16", "(#16)", "issue 16", "Issues 14 and 16", "measured 2026-11-28", "Nov 28, 2026",
               "round 2", "session 5", "Round 2's sixth session", "831 ms -> 8.4 ms", "3.50 -> 3.11 GiB",
               "15.2-15.9 s -> 12.9-13.4 s", "0.84 -> 0.57 s", "7.4x -> 2.6x", "0.54 s instead of 0.90 s",
               "610 MB vs 365 MB", "from 6.5 to 5.4 s", "12 ms\n    -> 9 ms"]
    legitimate = [" noqa: E402", ": doc comment", "!/usr/bin/env python", "#16a34a", "#fff", "#333", "#1f77b4ff",
                  "(B, C, H, W) -> (B, H*W, C)", "stride 2 -> 4", "opset 11 -> 17", "3x3 -> 1x1",
                  "Depthwise 7x7 conv -> LayerNorm -> Dense(4x) -> GELU", "the 2 GB protobuf limit",
                  "~100x faster", "an ORT session per run", "round to 2 decimals", "PEP 562", "&#8212;",
                  "https://github.com/onnx/onnx/issues/1234", "seed 20261126", "v2.10.0", "1e-4 -> 1e-5",
                  "``full / (2 s) < n``", "name -> (description, GFLOP)", "a.b.* -> a_b.*", "May 2x faster",
                  "bench/mindspore_isa.py --rounds 1", "--session 2",
                  "onnx/tensorflow-onnx#2448", "TRT#2232"]
    assert [t for t in history if not _history(t)] == []
    assert [(t, _history(t)) for t in legitimate if _history(t)] == []


def test_no_history_in_comments_docstrings_or_messages():
    """Docstrings and comments state a rule and its reason; measurements live in bench/README.md with their
    command, and issue numbers, dates, work rounds and before/after numbers in git's history."""
    hits = []
    for folder in ("graphfeat", "exporters"):
        for path in _sources(folder):
            for line, text in _comments_and_strings(path):
                hits += [f"{path.relative_to(ROOT)}:{line + text[:offset].count(chr(10))}: {kind}: {found!r}"
                         for offset, kind, found in _history(text)]
    assert hits == []


#: functions allowed over :data:`MAX_FUNCTION_LINES`; each must say why in its docstring
LONG_FUNCTIONS = {("graphfeat/graph/region.py", "chain_units")}
MAX_FUNCTION_LINES = 60


def test_functions_are_short_or_say_why_not():
    long = {}
    for folder in ("graphfeat", "exporters"):
        for path in _sources(folder):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                        long[(str(path.relative_to(ROOT)), node.name)] = ast.get_docstring(node) or ""
    assert set(long) <= LONG_FUNCTIONS, sorted(set(long) - LONG_FUNCTIONS)
    assert len(LONG_FUNCTIONS) <= 2
    for key, doc in long.items():
        assert "long" in doc.lower() or "one function" in doc.lower(), f"{key}: its docstring must say why it is long"


#: a Sphinx role (``:func:`x```): the docstrings are Markdown for mkdocstrings, cross-references ``[`x`][pkg.x]``
SPHINX_ROLE = re.compile(r":(func|class|meth|data|attr|mod|exc|obj):`")


def test_docstrings_use_the_sites_markdown_cross_references():
    found = [f"{path.relative_to(ROOT)}:{n}" for folder in ("graphfeat", "exporters") for path in _sources(folder)
             for n, line in enumerate(path.read_text().splitlines(), 1) if SPHINX_ROLE.search(line)]
    assert not found, f"Sphinx roles in docstrings (write `name` or [`name`][graphfeat.name]): {found[:10]}"
