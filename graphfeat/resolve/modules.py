"""The module tree a strategy recovers from a graph, and what it lists as layers.

Both structural strategies (scopes, parameters) map dotted module paths
(``layer1``, ``layer1.0.conv1``, ``features.3``) to the nodes that belong to
them. This base class holds that tree, answers ``resolve(name)`` through
``_output`` (implemented by each strategy), and proposes the feature layers
a file without metadata offers: the top-level modules, with a numbered
container (``features``) replaced by its children when its first and last
child produce different spatial sizes (a flattened backbone; the blocks of a
ResNet stage share one size, so the stage stays whole), together with the
indices missing between its children (parameter-free cells such as a ReLU or
a max-pool, which the strategy may still place).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from ..errors import GraphfeatError
from ..graph import GraphIndex
from ..levels import LevelRecord


@dataclass(frozen=True)
class Resolution:
    """A layer name resolved to a tensor, and how (``metadata``, ``scope``, ``parameters``, ``tensor``).

    ``level`` is the metadata level it came from, if any; ``source_index`` its
    position in the listing it was selected from (``--indices``), if any;
    ``placement`` its measured stride and layout (a ``TensorStride``) and
    ``layer`` the named layer it stands for, if any (``follows``: the layer whose activation it is, when that
    activation has no name of its own), and ``source`` (``backbone`` or ``neck``), for a level selected by stride.
    """

    name: str
    tensor: str
    resolved_by: str
    level: LevelRecord | None = field(default=None, compare=False)
    source_index: int | None = field(default=None, compare=False)
    placement: Any = field(default=None, compare=False)
    layer: str | None = field(default=None, compare=False)
    source: str | None = field(default=None, compare=False)  # by stride: "backbone" or "neck"
    follows: str | None = field(default=None, compare=False)  # by stride: the activation after this layer


def full_paths(parts: Iterable[str]) -> list[str]:
    """Cumulative module paths from scope components (``layer1``, ``0`` -> ``layer1``, ``layer1.0``).

    Components may already be full paths (``layer1``, ``layer1.0``) or be
    relative to their parent (``layer1``, ``0``); both give the same result.
    """
    out: list[str] = []
    prefix = ""
    for part in parts:
        part = part.strip()
        if not part:
            continue
        full = part if not prefix or part.startswith(prefix + ".") else f"{prefix}.{part}"
        if full != prefix:
            out.append(full)
            prefix = full
    return out


class ModuleTree(Mapping[str, list[int]]):
    """The module tree of a strategy: module path -> its nodes (those of every module below it included,
    each node once per scope chain that puts it there, in the order they were added), and
    `children` (module -> its child modules; ``""``: the top level).

    A node comes with its *chain*, the modules enclosing it outermost first (``layer1``, ``layer1.0``,
    ``layer1.0.conv1``). Chains are only recorded as they come; the tree is built when first needed,
    and whether a module exists, or which exist, is answered from the chains alone (a strategy that
    does not know a name never builds it). A module's node list is gathered when first asked for."""

    def __init__(self, rank: Callable[[int], int] | None = None):
        """``rank``: the order nodes are added in (None: increasing node index)."""
        self._rank = rank
        self._added: list[tuple[int, Sequence[str]]] = []  # (node, chain), until the tree is built
        self._paths: dict[str, None] | None = None  # every module, in order of first use
        self._built = False
        self._through: dict[str, list[list[int]]] = {}  # path -> the node lists of the chains through it
        self._chain_nodes: dict[tuple[str, ...], list[int]] = {}
        self._children: dict[str, set[str]] = {}
        self._gathered: dict[str, list[int]] = {}

    def add(self, node: int, paths: Sequence[str]) -> None:
        """Record ``node`` as a member of each module in ``paths`` (outermost first)."""
        if self._built:
            self._add(node, paths)
            self._gathered.clear()
        else:
            self._added.append((node, paths))
        if self._paths is not None:
            self._paths.update(dict.fromkeys(paths))

    @property
    def children(self) -> dict[str, set[str]]:
        """Module -> its child modules (``""``: the top level)."""
        self._build()
        return self._children

    def _build(self) -> None:
        if not self._built:
            self._built = True
            for node, paths in self._added:
                self._add(node, paths)
            self._added = []

    def _add(self, node: int, paths: Sequence[str]) -> None:
        key = tuple(paths)
        nodes = self._chain_nodes.get(key)
        if nodes is None:  # the first node of this chain: link its modules into the tree
            nodes = self._chain_nodes[key] = []
            parent = ""
            for path in key:
                self._children.setdefault(parent, set()).add(path)
                self._through.setdefault(path, []).append(nodes)
                parent = path
        nodes.append(node)

    def _known(self) -> dict[str, None]:
        if self._paths is None:
            self._paths = dict.fromkeys(self._through) if self._built else dict.fromkeys(
                path for _, paths in self._added for path in paths)
        return self._paths

    def __getitem__(self, name: str) -> list[int]:
        gathered = self._gathered.get(name)
        if gathered is None:
            self._build()
            lists = self._through[name]
            gathered = list(lists[0]) if len(lists) == 1 else sorted(chain.from_iterable(lists), key=self._rank)
            self._gathered[name] = gathered
        return gathered

    def __contains__(self, name: object) -> bool:
        return name in self._known()

    def __iter__(self) -> Iterator[str]:
        return iter(self._known())

    def __len__(self) -> int:
        return len(self._known())


class ModuleStrategy:
    """Base for strategies that know which nodes belong to which module."""

    resolved_by = ""

    def __init__(self, index: GraphIndex, rank: Callable[[int], int] | None = None):
        """``rank``: the order the strategy adds nodes in (None: increasing node index)."""
        self.index = index
        self.members = ModuleTree(rank)
        self._cache: dict[str, Resolution | GraphfeatError | None] = {}

    @property
    def children(self) -> dict[str, set[str]]:
        """Module -> its child modules (``""``: the top level)."""
        return self.members.children

    @property
    def available(self) -> bool:
        """Whether this strategy found any module in the graph."""
        return bool(self.members)

    def known_names(self) -> list[str]:
        """Every module path the strategy knows (for suggestions)."""
        return list(self.members)

    def resolve(self, name: str) -> Resolution | None:
        """The tensor module ``name`` returns; None if unknown; GraphfeatError if ambiguous."""
        if name not in self._cache:
            try:
                tensor = self._output(name)
                self._cache[name] = None if tensor is None else Resolution(name, tensor, self.resolved_by)
            except GraphfeatError as exc:
                self._cache[name] = exc
        hit = self._cache[name]
        if isinstance(hit, GraphfeatError):
            raise hit
        return hit

    def _output(self, name: str) -> str | None:
        raise NotImplementedError

    def first_pos(self, name: str) -> int:
        """Topological position of the module's first node."""
        pos = self.index.pos
        return min((pos[i] for i in self.members.get(name, ())), default=len(pos))

    def layer_names(self) -> list[str]:
        """Candidate feature layers, shallow to deep (see the module docstring)."""
        names: list[str] = []

        def visit(module: str, depth: int) -> None:
            kids = sorted(self.children.get(module, ()), key=self.first_pos)
            if depth < 4 and len(kids) > 1 and all(k.rsplit(".", 1)[-1].isdigit() for k in kids):
                first, last = self._spatial(kids[0]), self._spatial(kids[-1])
                if first is not None and last is not None and first != last:
                    for k in kids:
                        visit(k, depth + 1)
                    # indices are contiguous: the ones between known children exist, owning no nodes of their own
                    known = {int(k.rsplit(".", 1)[-1]) for k in kids}
                    names.extend(f"{module}.{j}" for j in range(min(known), max(known)) if j not in known)
                    return
            names.append(module)

        for top in sorted(self.children.get("", ()), key=self.first_pos):
            visit(top, 1)
        return names

    def _spatial(self, name: str) -> tuple[int, int] | None:
        try:
            res = self.resolve(name)
        except GraphfeatError:
            return None
        if res is None:
            return None
        shape = self.index.shape(res.tensor)
        if shape is None or len(shape) != 4 or not all(isinstance(d, int) for d in shape[2:]):
            return None
        return shape[2], shape[3]
