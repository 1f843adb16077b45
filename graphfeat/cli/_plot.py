"""``graphfeat info --plot``: the pyramid drawn to scale (needs the ``plot`` extra, matplotlib)."""
from __future__ import annotations

import os
from collections.abc import Sequence

from ..errors import GraphfeatError
from ..info import Level


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise GraphfeatError(
            "--plot needs matplotlib; install graphfeat[plot] (pip install 'graphfeat[plot]')"
        ) from None
    return plt


def _side(level: Level, input_hw: tuple[int, int] | None) -> tuple[float, float]:
    """Height/width of the level's square: its spatial size, else input size / reduction, else 1."""
    shape = level.shape or []
    if len(shape) == 4 and isinstance(shape[2], int) and isinstance(shape[3], int):
        return float(shape[2]), float(shape[3])
    if input_hw and level.reduction:
        return input_hw[0] / level.reduction, input_hw[1] / level.reduction
    return 1.0, 1.0


def plot_pyramid(levels: Sequence[Level], path: str | os.PathLike, input_hw: tuple[int, int] | None = None) -> None:
    """Draw each level as a rectangle to scale of its spatial size, labelled name/channels/stride.

    Levels are laid out left to right, shallow to deep; a dashed line under
    each marks the cut point (the tensor that becomes an output).
    """
    if not levels:
        raise GraphfeatError("there are no feature layers to plot")
    plt = _pyplot()
    sides = [_side(lv, input_hw) for lv in levels]
    biggest = max(max(h, w) for h, w in sides)
    fig, ax = plt.subplots(figsize=(2.2 * len(levels) + 1, 4))
    x = 0.0
    for lv, (h, w) in zip(levels, sides):
        sh, sw = h / biggest, w / biggest
        ax.add_patch(plt.Rectangle((x, 0.5 - sh / 2), sw, sh, facecolor="#9ecae1", edgecolor="#08519c"))
        label = f"{lv.name}\nC={lv.chs if lv.chs is not None else '?'}  /{lv.reduction if lv.reduction is not None else '?'}"
        ax.text(x + sw / 2, 0.5 + sh / 2 + 0.04, label, ha="center", va="bottom", fontsize=8)
        ax.plot([x + sw / 2, x + sw / 2], [0.5 - sh / 2 - 0.02, -0.12], ls="--", color="#cb181d", lw=1)
        ax.text(x + sw / 2, -0.15, f"cut: {lv.tensor}", ha="center", va="top", fontsize=6, color="#cb181d")
        x += max(sw, 0.6) + 0.4
    ax.set_xlim(-0.2, x)
    ax.set_ylim(-0.35, 1.35)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("feature pyramid (to scale of spatial size)")
    fig.savefig(os.fspath(path), dpi=120, bbox_inches="tight")
    plt.close(fig)
