"""Names to tensors: interchangeable strategies tried in order.

Each strategy has the same interface: ``available``, ``resolve(name)`` (a
`Resolution`, ``None`` if it does not know the name, or a
GraphfeatError if it knows the name but cannot pick one tensor — then no
weaker strategy is asked, so nothing is guessed), ``layer_names()`` and
``known_names()``. Order: graphfeat metadata, PyTorch module scopes,
TensorFlow name scopes, parameters.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence

from ..errors import GraphfeatError
from ..graph import GraphIndex, image_input
from ..graph.region import GLOBAL_POOLS
from .dominance import check_claims
from .metadata import MetadataStrategy, ValueFinder
from .modules import Resolution
from .params import ParameterStrategy
from .scope import ScopeStrategy
from .tfscope import TFScopeStrategy
from .strides import TensorStride, analyse, check_strides, measure_strides, pick_named, pick_strides

#: ops whose output starts a classifier head rather than ending a feature level
HEAD_OPS = GLOBAL_POOLS | {"ReduceMean", "ReduceMax", "Flatten"}
#: appended to structural refusals of a file without metadata
NO_METADATA = (
    "This file has no graphfeat metadata, so names are resolved from its structure alone; a level that a "
    "model's feature wrapper defines (not one module's return value) needs the metadata `graphfeat export` records."
)


class Resolver:
    """Try the strategies in order; list layers; explain unknown names."""

    def __init__(self, index: GraphIndex, finder: ValueFinder | None = None):
        """``finder`` finds levels whose recorded tensor is gone by value (fingerprints by default;
        a reference npz or the original file when it was given one); without it, such a level is refused."""
        self.index = index
        self.metadata = MetadataStrategy(index, finder)
        self._levels: list[Resolution] | None = None
        self._built: dict[type, ScopeStrategy | TFScopeStrategy | ParameterStrategy | None] = {}

    def structural(self) -> Iterator[ScopeStrategy | TFScopeStrategy | ParameterStrategy]:
        """The structural strategies that apply to this graph, in order, each built when first reached: a
        name the scopes resolve never builds the parameter strategy (an owner map of every initializer)."""
        for kind in (ScopeStrategy, TFScopeStrategy, ParameterStrategy):
            if kind not in self._built:
                strategy = kind(self.index)
                self._built[kind] = strategy if strategy.available else None
            if self._built[kind] is not None:
                yield self._built[kind]

    def _strategies(self):
        if self.metadata.available:
            yield self.metadata
        yield from self.structural()

    def resolve(self, name: str) -> Resolution:
        """Resolve a layer name; GraphfeatError if unknown, ambiguous or not a feature."""
        if not isinstance(name, str) or not name:
            raise GraphfeatError(f"layer names must be non-empty strings, got {name!r}")
        for strategy in self._strategies():
            try:
                res = strategy.resolve(name)
            except GraphfeatError as exc:
                if strategy is self.metadata or self.metadata.available:
                    raise
                raise GraphfeatError(f"{exc}\n{NO_METADATA}") from None
            if res is not None:
                self.check_feature(name, res.tensor)
                return res
        raise self.unknown(name)

    def resolve_tensor(self, tensor: str) -> Resolution:
        """A tensor named directly (``--tensors``); the metadata level if one records it."""
        if tensor not in self.index.tensor_names:
            close = difflib.get_close_matches(tensor, sorted(self.index.tensor_names), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise GraphfeatError(f"tensor '{tensor}' is not in the graph{hint}")
        self.check_feature(tensor, tensor)
        level = next((lv for lv in self.metadata.levels if lv.tensor == tensor), None)
        return Resolution(tensor, tensor, "tensor", level)

    def resolve_strides(self, strides: Sequence[int], neck: bool = False) -> list[Resolution]:
        """One level per requested stride (``--strides``), in the order requested, named ``stride<S>``.

        A file with graphfeat's record gives its deepest recorded level at each
        stride (by its measured stride, or its recorded reduction where the tensor
        cannot be measured): the export defines the levels. A file with layer
        names from its structure gives the deepest named level *on the trunk*
        (`graphfeat.resolve.strides.pick_named`: on a detector the
        backbone's trunk, so a neck output is never taken for a backbone level).
        Where no named level is there, or with ``neck``, the rule picks
        (`graphfeat.resolve.strides.pick_strides`); where the rule finds no
        trunk tensor at a stride of a file without a neck, the deepest named
        level at that stride is taken (a multi-branch network's branch).
        """
        wanted = check_strides(strides)
        if self.metadata.available and not neck:
            return self._recorded_strides(wanted)
        analysis = analyse(self.index)
        named = [] if neck else [(r.name, r.tensor) for r in self._structural_levels()]
        picked = []
        for s in wanted:
            hit = pick_named(self.index, analysis, named, s)
            if hit is not None:
                tensor, name, carried = hit
                picked.append(Resolution(f"stride{s}", tensor, "strides", placement=analysis.measured[tensor],
                                         layer=None if carried else name, follows=name if carried else None,
                                         source="backbone"))
                continue
            try:
                (c,) = pick_strides(self.index, [s], neck=neck, analysis=analysis)
            except GraphfeatError:
                fallback = None if neck or analysis.end is not None else self._deepest_named(s, analysis.measured)
                if fallback is None:
                    raise
                picked.append(fallback)
                continue
            placement = TensorStride(c.tensor, c.stride, c.layout, c.shape, c.channels, c.grid, c.class_token)
            picked.append(Resolution(f"stride{s}", c.tensor, "strides", placement=placement, source=c.source))
        ruled = [(r.tensor, r.placement.stride, r.source) for r in picked if r.source is not None]
        check_claims(self.index.model, image_input(self.index.model).name, analysis.claims(self.index, ruled),
                     fields=(self.index.inputs_of, self.index.outputs_of))
        return picked

    def _structural_levels(self) -> list[Resolution]:
        return [] if self.metadata.available else self.levels()

    def _deepest_named(self, s: int, measured) -> Resolution | None:
        found = None
        for res in self._structural_levels():  # shallow to deep: the deepest at the stride wins
            m = measured.get(res.tensor)
            if m is not None and m.stride == s:  # a branch, off the trunk: no source, no claim on paths
                found = Resolution(f"stride{s}", res.tensor, "strides", placement=m, layer=res.name)
        return found

    def _recorded_strides(self, wanted: list[int]) -> list[Resolution]:
        measured = measure_strides(self.index)
        by_stride: dict[int, tuple[Resolution, TensorStride]] = {}
        for res in self.levels():  # shallow to deep: the deepest at each stride wins
            m = measured.get(res.tensor)
            if m is None or m.stride is None:
                declared = res.level.reduction if res.level is not None else None
                if declared is None:
                    continue
                m = TensorStride(res.tensor, declared, None, (), res.level.chs,
                                 note="not measured: the recorded reduction")
            by_stride[m.stride] = (res, m)
        picked = []
        for s in wanted:
            if s not in by_stride:
                have = ", ".join(f"{r.name}/{st}" for st, (r, _) in sorted(by_stride.items())) or "none"
                raise GraphfeatError(f"no named level of this model has stride {s}; its levels by stride: {have}. "
                                     "Request one of those strides, or pick a tensor with --tensors")
            res, m = by_stride[s]
            picked.append(Resolution(f"stride{s}", res.tensor, "strides", res.level, placement=m, layer=res.name))
        return picked

    def check_feature(self, name: str, tensor: str) -> None:
        """Refuse graph inputs and constants as features."""
        if tensor in self.index.inputs:
            raise GraphfeatError(f"'{name}' resolves to the graph input '{tensor}'; a model input is not a feature layer")
        if tensor in self.index.constants:
            raise GraphfeatError(f"'{name}' resolves to '{tensor}', a constant; it is not a feature layer")

    def levels(self) -> list[Resolution]:
        """The feature layers, shallow to deep: metadata levels, else what the structure resolves.

        Structurally, each candidate of the first structural strategy that
        resolves unambiguously to a non-vector tensor is listed once, in
        topological order of the tensors.
        """
        if self._levels is not None:
            return self._levels
        if self.metadata.available:
            self._levels = [self.resolve(n) for n in self.metadata.layer_names()]
            return self._levels
        found: list[Resolution] = []
        for strategy in self.structural():
            seen: set[str] = set()
            for name in strategy.layer_names():
                try:
                    res = strategy.resolve(name)
                    if res is None:
                        continue
                    self.check_feature(name, res.tensor)
                except GraphfeatError:
                    continue
                shape = self.index.shape(res.tensor)
                producer = self.index.nodes[self.index.producer[res.tensor]]
                if res.tensor in seen or (shape is not None and len(shape) < 3) or producer.op_type in HEAD_OPS:
                    continue
                seen.add(res.tensor)
                found.append(res)
            if found:
                break
        producer = self.index.producer
        found.sort(key=lambda r: self.index.pos[producer[r.tensor]])
        self._levels = found
        return found

    def unknown(self, name: str) -> GraphfeatError:
        """The error for a name no strategy knows: the available layers and the closest names."""
        try:
            available = [r.name for r in self.levels()]
        except GraphfeatError:
            available = []
        known = set(available)
        for strategy in self._strategies():
            known.update(strategy.known_names())
        if not known and not self.metadata.available:
            return GraphfeatError(
                f"unknown layer '{name}': this file carries no layer names (no graphfeat record, module scopes or "
                "parameter names; paddle2onnx, for one, keeps none). Select levels by stride with --strides "
                "(e.g. --strides 4 8 16 32); `graphfeat info` lists the candidates")
        close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.5)
        listing = ", ".join(available) if available else "none resolvable (see `graphfeat info`)"
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        if not self.metadata.available:
            hint += f"\n{NO_METADATA}"
        return GraphfeatError(f"unknown layer '{name}'. Available layers: {listing}.{hint}")
