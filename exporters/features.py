"""The feature wrapper: rebuild a backbone so it returns its feature pyramid.

Three scenarios, as in MindCV:

1. separate sequential cells per layer (``layer1``..``layer4``);
2. one sequential cell holding all layers, marked ``flatten_sequential = True``:
   its children are lifted to the top level and renamed ``a.b`` -> ``a_b``;
3. a rewritten feature class marked ``is_rewritten = True`` whose ``construct``
   returns one tensor per ``feature_info`` entry.

In scenarios 1 and 2 the wrapper keeps the top-level cells in registration
order until every requested layer has been seen, then stops: that stopping is
the truncation, so the head and deeper stages are never computed.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Iterable, Iterator

from mindspore import Tensor, nn

from graphfeat.errors import GraphfeatError
from graphfeat.levels import FeatureInfo

if TYPE_CHECKING:
    import numpy as np


def flat_name(name: str) -> str:
    """The flatten rule, stated once: child ``b`` of sequential ``a`` becomes ``a_b``."""
    return name.replace(".", "_", 1)


def cell_list(net: nn.Cell, flatten_sequential: bool = False) -> Iterator[tuple[str, str, nn.Cell]]:
    """Yield ``(new_name, old_name, cell)`` for the top-level cells of ``net``.

    With ``flatten_sequential`` the children of each ``SequentialCell`` are
    yielded instead, as ``("a_b", "a.b", child)``.
    """
    for name, cell in net.name_cells().items():
        if flatten_sequential and isinstance(cell, nn.SequentialCell):
            for child_name, child in cell.name_cells().items():
                old = f"{name}.{child_name}"
                yield flat_name(old), old, child
        else:
            yield name, name, cell


def _require_feature_info(net: nn.Cell) -> list[dict]:
    info = getattr(net, "feature_info", None)
    if not info:
        raise GraphfeatError(
            f"{type(net).__name__} registers no feature_info, so features_only is not available; "
            "append dict(chs=, reduction=, name=) entries to self.feature_info in its __init__"
        )
    return list(info)


class FeatureExtractWrapper(nn.Cell):
    """Wrap ``net`` so that it returns a tuple of the levels selected by ``out_indices``.

    ``feature_info`` on the wrapper is a [`FeatureInfo`][graphfeat.FeatureInfo] over the selected
    levels. ``renamed`` maps old top-level names to flattened ones (scenario 2).
    """

    def __init__(self, net: nn.Cell, out_indices: Iterable[int] | None = None) -> None:
        super().__init__(auto_prefix=False)
        self.feature_info = FeatureInfo(_require_feature_info(net), out_indices)
        self.source_class = type(net)  # the wrapped network's class (an exported cell's record names it)
        self.is_rewritten = bool(getattr(net, "is_rewritten", False))
        self.flatten_sequential = bool(getattr(net, "flatten_sequential", False))
        self.renamed: dict[str, str] = {}
        if self.is_rewritten:
            self.net = net
            self.return_index = tuple(self.feature_info.out_indices)
        else:
            self.net, self.return_index = self._truncate(net)

    def _truncate(self, net: nn.Cell) -> tuple[nn.SequentialCell, tuple[int, ...]]:
        wanted = {self.feature_info.module_name(i): i for i in range(len(self.feature_info))}
        layers: OrderedDict[str, nn.Cell] = OrderedDict()
        positions: dict[int, int] = {}
        for new_name, old_name, cell in cell_list(net, self.flatten_sequential):
            if new_name != old_name:
                self.renamed[old_name] = new_name
            layers[new_name] = cell
            if old_name in wanted:
                positions[wanted.pop(old_name)] = len(layers) - 1
            if not wanted:
                break
        if wanted:
            available = [old for _, old, _ in cell_list(net, self.flatten_sequential)]
            raise GraphfeatError(
                f"{type(net).__name__}: feature_info names {sorted(wanted)} are not top-level cells "
                f"(flatten_sequential={self.flatten_sequential}); available: {available}. "
                "Name each level after the cell that returns it, or use a rewritten feature class"
            )
        order = [positions[i] for i in range(len(self.feature_info))]
        return nn.SequentialCell(layers), tuple(order)

    def construct(self, x: Tensor) -> tuple:
        out = ()
        if self.is_rewritten:
            xs = self.net(x)
            for i in self.return_index:
                out = out + (xs[i],)
            return out
        i = 0
        for cell in self.net.cell_list:
            x = cell(x)
            if i in self.return_index:
                out = out + (x,)
            i += 1
        return out


class HeadlessFeatures:
    """Mixin for a rewritten feature class that is its classifier without the head (scenario 3), placed
    before the classifier in the bases: no head cells, the levels from the classifier's ``forward_levels``,
    and the classifier's seeded values. The subclass sets ``feature_info`` and, when the classifier's
    ``init_extra_weights`` draws from the shared stream, ``head_weight_size``: the draws the head's dense
    weight took before it in the classifier's first pass, skipped here so that both draw the same values."""

    is_rewritten = True
    head_weight_size = 0

    def _make_head(self, num_classes: int) -> None:
        """No head: the levels stop before it."""

    def init_extra_weights(self, rng: "np.random.Generator") -> None:
        """The classifier's extra seeded values, after skipping its head weight's draws."""
        for start in range(0, self.head_weight_size, 1 << 22):
            rng.normal(0.0, 1.0, size=min(1 << 22, self.head_weight_size - start))
        extra = getattr(super(), "init_extra_weights", None)
        if extra is not None:
            extra(rng)

    def construct(self, x: Tensor) -> tuple:
        return self.forward_levels(x)


class ClassifierLevels(nn.Cell):
    """A rewritten feature class's levels computed by a classifier's own cells (``net.forward_levels``),
    under the classifier's parameter names: one network serves the logits and the levels."""

    def __init__(self, net: nn.Cell, feature_info: list[dict]) -> None:
        super().__init__(auto_prefix=False)  # the classifier's parameter names
        self.net = net
        self.is_rewritten = True
        self.feature_info = feature_info

    def construct(self, x: Tensor) -> tuple:
        return self.net.forward_levels(x)


def levels_view(net: nn.Cell, feature_info: list[dict]) -> "FeatureExtractWrapper":
    """A classifier's feature view: its ``forward_levels`` wrapped like a features-only model, in eval mode.
    The export's reference runs use it instead of building the network a second time."""
    view = FeatureExtractWrapper(ClassifierLevels(net, feature_info))
    view.set_train(False)
    return view
