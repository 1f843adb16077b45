"""Strategy (d): TensorFlow name scopes, as tf2onnx keeps them.

tf2onnx names a node after the TensorFlow op it came from
(``resnet50_1/conv2_block3_out_1/Relu``): the components before the last are
the name scopes, and in a Keras model the scope under the model's is the
layer's. Ops tf2onnx fuses or rewrites lose that name (``Conv__127``), but the
initializers they read keep theirs (``resnet50_1/conv2_block3_3_conv_1/convolution/ReadVariableOp:0``),
so a node also belongs to the scopes of the initializers it reads.

A Keras user names a layer as Keras does (``conv2_block3_out``); the graph holds
it under the model's scope and, with Keras 3, with a call suffix
(``resnet50_1/conv2_block3_out_1``). So a name resolves to the scope whose
path ends with it, compared component by component, either as written or
with one trailing ``_N`` taken off each component; an exact path wins, then
a suffix as written, then a suffix without the call suffixes. Several scopes
at the same rank are ambiguous and refused with the candidates.

A scope's output is found as for PyTorch scopes (`scope`): the single
tensor its nodes write that is read outside them.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from ..errors import GraphfeatError
from ..graph import GraphIndex
from .modules import Resolution
from .scope import ScopeStrategy

_CALL_SUFFIX = re.compile(r"_\d+$")
_TENSOR_SUFFIX = re.compile(r":\d+$")
#: the share of nodes whose names must carry a TensorFlow scope for the strategy to apply
_MIN_SHARE = 0.2


def _paths(name: str) -> list[str]:
    """The scope paths of a node or initializer name (all but its last component), outermost first."""
    parts = _TENSOR_SUFFIX.sub("", name).split("/")[:-1]
    return ["/".join(parts[: k + 1]) for k in range(len(parts)) if parts[k]]


def _stripped(component: str) -> str:
    return _CALL_SUFFIX.sub("", component)


class TFScopeStrategy(ScopeStrategy):
    """Resolve a TensorFlow layer or scope name through the scopes tf2onnx keeps (see the module docstring)."""

    resolved_by = "tf-scope"

    def __init__(self, index: GraphIndex):  # noqa: D107 - the module docstring says what is built
        self._aliases: dict[str, list[list[str]]] | None = None
        super().__init__(index)

    def _scoped_nodes(self, index: GraphIndex) -> Iterator[tuple[int, list[str]]]:
        """Each data node with the scope paths of its name and of the initializers it reads (none at all on a
        graph whose node names mostly carry no TensorFlow scope)."""
        names = index.node_names
        scoped = sum(1 for n in names if "/" in n and not n.startswith("/"))
        if not names or scoped < _MIN_SHARE * len(names):
            return
        for i, name in enumerate(names):
            if not index.data_inputs_of[i]:
                continue
            chains = [] if name.startswith("/") else [_paths(name)]
            chains += [_paths(t) for t in index.inputs_of[i] if t in index.initializers and "/" in t]
            for chain in chains:
                if chain:
                    yield i, chain

    def _alias_ranks(self) -> dict[str, list[list[str]]]:
        """Name -> scope paths it may stand for, by rank: [exact, suffix as written, suffix without _N]."""
        if self._aliases is None:
            aliases: dict[str, list[list[str]]] = {}
            for path in self.members:
                parts = path.split("/")
                for k in range(len(parts)):
                    for rank, tail in ((1, parts[k:]), (2, [_stripped(p) for p in parts[k:]])):
                        key = "/".join(tail)
                        ranks = aliases.setdefault(key, [[], [], []])
                        if path not in ranks[rank]:
                            ranks[rank].append(path)
                aliases.setdefault(path, [[], [], []])[0].append(path)
            self._aliases = aliases
        return self._aliases

    def scope_of(self, name: str) -> str | None:
        """The scope path ``name`` stands for; GraphfeatError when several do equally well."""
        if name in self.members:
            return name
        for paths in self._alias_ranks().get(name, ()):
            if len(paths) == 1:
                return paths[0]
            if paths:
                listed = ", ".join(f"'{p}'" for p in paths[:6])
                raise GraphfeatError(f"layer '{name}' is ambiguous: it names the scopes {listed}; "
                                     "give more of the path (e.g. the model's scope first)")
        return None

    def resolve(self, name: str) -> Resolution | None:
        path = self.scope_of(name)
        if path is None:
            return None
        res = super().resolve(path)
        return None if res is None else Resolution(name, res.tensor, self.resolved_by)

    def layer_names(self) -> list[str]:
        """The layers: the scopes under the model's (under a lone top-level scope, descended while it is
        alone), by their first op, each as its shortest name that resolves to it alone."""
        level = ""
        while len(self.children.get(level, ())) == 1:
            level = next(iter(self.children[level]))
        layers = sorted(self.children.get(level, ()), key=self.first_pos)
        return [self._short(path) for path in layers]

    def _short(self, path: str) -> str:
        parts = path.split("/")
        for k in range(len(parts) - 1, -1, -1):
            for tail in ([_stripped(p) for p in parts[k:]], parts[k:]):
                name = "/".join(tail)
                try:
                    if self.scope_of(name) == path:
                        return name
                except GraphfeatError:
                    continue
        return path

    def known_names(self) -> Iterable[str]:
        return list(self._alias_ranks())
