"""Regenerate the real-converter test fixtures in ``tests/data/converters/``.

    python3 scripts/make_converter_fixtures.py                     # every framework
    python3 scripts/make_converter_fixtures.py tensorflow paddle   # some
    python3 scripts/make_converter_fixtures.py --keep-venvs        # keep the venvs for a second run

Each framework's script (``scripts/converter_fixtures/from_<framework>.py``) runs in a virtual environment of its
own under ``--venvs`` (TensorFlow and MindSpore disagree on numpy; torch from the registry pulls several GB
of CUDA packages), created and filled from the script's ``REQUIREMENTS`` list, and removed afterwards
unless ``--keep-venvs``. The default suite needs none of them: it reads the committed files.
"""
from __future__ import annotations

import argparse
import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts" / "converter_fixtures"
OUT = ROOT / "tests" / "data" / "converters"


def frameworks() -> list[str]:
    """The framework scripts, by name (``from_tensorflow.py`` -> ``tensorflow``; the prefix keeps a script
    from shadowing the framework's own package)."""
    return sorted(p.stem[len("from_"):] for p in SCRIPTS.glob("from_*.py"))


def requirements(name: str) -> list[str]:
    """The script's ``REQUIREMENTS`` list, read without importing it (its imports exist only in its venv)."""
    tree = ast.parse((SCRIPTS / f"from_{name}.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "REQUIREMENTS" for t in node.targets):
            return [r.replace("{root}", str(ROOT)) for r in ast.literal_eval(node.value)]
    raise SystemExit(f"from_{name}.py has no REQUIREMENTS list")


def run(name: str, venvs: Path, keep: bool) -> None:
    venv = venvs / name
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *requirements(name)], check=True)
    try:
        subprocess.run([str(python), str(SCRIPTS / f"from_{name}.py"), "--out", str(OUT)], check=True, cwd=ROOT)
    finally:
        if not keep:
            shutil.rmtree(venv, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", choices=frameworks() + [[]], metavar="FRAMEWORK",
                        help=f"any of {', '.join(frameworks())} (default: all)")
    parser.add_argument("--venvs", type=Path, default=Path("/tmp/graphfeat-fixture-venvs"))
    parser.add_argument("--keep-venvs", action="store_true")
    args = parser.parse_args()
    for name in args.names or frameworks():
        print(f"== {name}", flush=True)
        run(name, args.venvs, args.keep_venvs)


if __name__ == "__main__":
    main()
