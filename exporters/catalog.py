"""The tables of supported families, generated from the registry.

``python -m exporters.catalog`` prints the full table; ``--write`` puts the
compact one into README.md and the full one into docs/zoo.md, each between the
``families`` markers; ``--check`` exits 1 when either page is out of date.
Models are built with ``init=False`` (no seeded weights, no BatchNorm
calibration) and deferred parameters (no initial values drawn): only their
structure and ``feature_info`` are read.
"""
from __future__ import annotations

import argparse
import sys
from functools import lru_cache
from pathlib import Path

from .factory import create_model
from .init import deferred_parameters
from .registry import _model_family, list_families

README = Path(__file__).resolve().parents[1] / "README.md"
ZOO = README.parent / "docs" / "zoo.md"
START, END = "<!-- families:start -->", "<!-- families:end -->"
SCENARIOS = {1: "1 (sequential stages)", 2: "2 (one flattened sequential)", 3: "3 (rewritten feature class)"}
#: ``export --dynamic-size`` per family where it is not simply "yes" (tests/integration/test_dynamic_size.py
#: proves each): VGG frees its features-only export only, ViT refuses (its model says why).
DYNAMIC_SIZE_LIMITS = {
    "vgg": "features only (the head's `AdaptiveAvgPool7` slices at constant ends)",
    "vit": "no (a learned position embedding fixes the image size)",
    "swin": "no (the attention windows and shifted-window masks are built for the image size)",
    "mobilevit": "no (the patch grid and the resize to it are fixed by the input size)",
}


def dynamic_size(family: str) -> str:
    """The "dynamic size" cell of ``family``'s row."""
    return DYNAMIC_SIZE_LIMITS.get(family, "yes")


def family_models(family: str) -> list[str]:
    """The models of ``family`` in registration order (the first is its representative)."""
    return [name for name, fam in _model_family.items() if fam == family]


def scenario_of(model) -> int:
    """1, 2 or 3, from the attributes a features-only model carries."""
    if getattr(model, "is_rewritten", False):
        return 3
    return 2 if getattr(model, "flatten_sequential", False) else 1


def family_rows() -> list[dict]:
    """One dict per family: family, scenario, models, representative and its levels."""
    return [dict(row) for row in _rows(tuple(_model_family.items()))]


@lru_cache(maxsize=4)
def _rows(registry: tuple) -> tuple:  # keyed on the registry's contents, built once per state
    rows = []
    for family in sorted(list_families()):
        models = family_models(family)
        with deferred_parameters():  # the structure only: no parameter is read
            rep = create_model(models[0], features_only=True, init=False)
        info = rep.feature_info.from_other(None)  # every level, past a family's default selection
        rows.append({
            "family": family,
            "scenario": scenario_of(rep),
            "models": models,
            "representative": models[0],
            "levels": [(info.module_name(i), info.channels(i), info.reduction(i)) for i in range(len(info))],
        })
    return tuple(rows)


def family_table(compact: bool = False) -> str:
    """The markdown table of every registered family: with every level of the first model, or ``compact``
    (the README's: the models, the strides and the dynamic size)."""
    if compact:
        lines = ["| Family | Models | Strides | Dynamic size |", "|---|---|---|---|"]
    else:
        lines = ["| Family | Scenario | Models | Dynamic size | Feature levels of the first model (name chs/stride) |",
                 "|---|---|---|---|---|"]
    for row in family_rows():
        models = ", ".join(f"`{m}`" for m in row["models"])
        if compact:
            strides = ", ".join(str(r) for r in sorted({r for _, _, r in row["levels"]}))
            lines.append(f"| {row['family']} | {models} | {strides} | {dynamic_size(row['family'])} |")
            continue
        levels = ", ".join(f"`{n}` {c}/{r}" for n, c, r in row["levels"])
        lines.append(f"| {row['family']} | {SCENARIOS[row['scenario']]} | {models} | {dynamic_size(row['family'])} | "
                     f"`{row['representative']}`: {levels} |")
    return "\n".join(lines) + "\n"


#: the pages that carry a table, and whether theirs is the compact one
PAGES = {README: True, ZOO: False}


def readme_section(text: str) -> str:
    """The text between the family markers of a README."""
    if START not in text or END not in text:
        raise ValueError(f"README.md lacks the markers {START} and {END}")
    return text.split(START, 1)[1].split(END, 1)[0].strip("\n") + "\n"


def write_page(path: Path, compact: bool) -> bool:
    """Replace a page's section with the current table; True if the file changed."""
    text = path.read_text(encoding="utf-8")
    readme_section(text)  # check the markers
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    new = f"{head}{START}\n{family_table(compact)}{END}{tail}"
    if new == text:
        return False
    path.write_text(new, encoding="utf-8")
    return True


def write_readme(path: Path | None = None) -> bool:
    """Replace the README's section with the current compact table; True if the file changed."""
    return write_page(path or README, compact=True)


def stale_pages() -> list[Path]:
    """The pages whose table is out of date."""
    return [p for p, compact in PAGES.items()
            if readme_section(p.read_text(encoding="utf-8")) != family_table(compact)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m exporters.catalog", description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", "--write-readme", action="store_true",
                       help="update the tables in README.md and docs/zoo.md")
    group.add_argument("--check", action="store_true", help="exit 1 if a page's table is out of date")
    args = parser.parse_args(argv)
    if args.write:
        for page, compact in PAGES.items():
            print(f"{'updated' if write_page(page, compact) else 'unchanged'}: {page}")
        return 0
    if args.check:
        stale = stale_pages()
        for page in stale:
            print(f"{page.name}'s family table is out of date: run python -m exporters.catalog --write",
                  file=sys.stderr)
        return 1 if stale else 0
    print(family_table(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
