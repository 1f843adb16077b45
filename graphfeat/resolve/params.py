"""Strategy (c): parameter ownership plus graph structure.

For exports whose node names carry no scope (MindSpore: ``1Conv``, ``2Relu``)
but whose initializers keep parameter names (``layer1.0.conv1.weight``,
``bn1.gamma``): a node reading parameter ``a.b.weight`` (directly or through
constant-only ops such as ``Cast``/``Transpose``) belongs to module ``a.b``
and to every prefix (``a``).

* A module with parameters: its region is the hull of its nodes. A *leaf*
  (it owns parameters directly, like ``bn1``) returns its region's single
  exit. A *composite* (``layer1``, ``features.3``) also takes the
  parameter-free ops that close its last block, by the rules of
  `graphfeat.region.extend_tail` (residual ``Add``/``Concat``, then an
  elementwise activation group); pooling/reshape/the next module stop it.
* A module without parameters (``relu``, ``max_pool``): the op must lie in its
  parent's region but in no sibling's region, its op type must match the name
  (``relu`` -> ``Relu``, ``max_pool`` -> ``MaxPool``, ``act1`` -> any
  activation, ``pool`` -> any pooling), and it must be unique; a top-level
  one must also be a bottleneck (it dominates the graph outputs). Anything
  else is refused with the candidates.
* A numbered child without parameters (``features.2`` = an activation,
  ``features.20`` = a max-pool): by its index between its parameter-owning
  siblings, see `ParameterStrategy._numbered`.

Known limits: a composite module followed by a parameter-free *sibling*
activation would absorb it; modules whose parameters are shared or renamed
by the exporter (``onnx::Conv_12``) are invisible to this strategy.
"""
from __future__ import annotations

import re

from ..errors import GraphfeatError
from ..graph import GraphIndex
from .modules import ModuleStrategy
from ..graph.region import ambiguous, canonical, chain_units, entries, exits, extend_tail, hull

_PARAM = re.compile(r"^[A-Za-z_][\w\-]*(\.[\w\-]+)+$")
#: PaddlePaddle's generated parameter names (``conv2d_0.w_0``, ``batch_norm2d_5.w_1``: a counter per layer
#: type, not a module path) and paddle2onnx's own constants (``helper.constant.0``): they name no layer
_UNIQUE = re.compile(r"^([a-z][a-z0-9_]*_\d+\.[wb]_\d+|helper\.constant\.\d+)$")
_ACTIVATIONS = {
    "relu", "leakyrelu", "prelu", "sigmoid", "hardsigmoid", "hardswish", "tanh", "elu", "selu", "celu",
    "gelu", "mish", "softplus", "softsign", "clip", "thresholdedrelu", "mul",
}  # fmt: skip
#: local resampling ops that may end a module (unlike global pooling, which starts a head)
_RESAMPLE = {"MaxPool", "AveragePool", "LpPool", "Resize", "Upsample", "SpaceToDepth", "DepthToSpace"}
_GLOBAL_POOLS = {"globalaveragepool", "globalmaxpool", "reducemean", "reducemax"}
_POOLS = {"maxpool", "averagepool", "lppool", "globallppool"} | _GLOBAL_POOLS
_ALIASES: dict[str, set[str]] = {
    "act": _ACTIVATIONS, "activation": _ACTIVATIONS, "nonlinearity": _ACTIVATIONS,
    "relu6": {"clip", "relu"}, "hswish": {"hardswish"}, "hsigmoid": {"hardsigmoid"}, "silu": {"mul"},
    "swish": {"mul"}, "gelu": {"gelu", "mul"},
    "pool": _POOLS, "avgpool": {"averagepool", "globalaveragepool", "reducemean"},
    "maxpool": {"maxpool", "globalmaxpool", "reducemax"}, "globalpool": _GLOBAL_POOLS, "gap": _GLOBAL_POOLS,
    "flatten": {"flatten", "reshape"}, "dropout": {"dropout", "identity"}, "drop": {"dropout", "identity"},
    "upsample": {"resize", "upsample"}, "add": {"add", "sum"},
}  # fmt: skip


def op_types_for(leaf: str) -> set[str]:
    """Lower-case ONNX op types a parameter-free module called ``leaf`` may be."""
    token = leaf.lower().replace("_", "")
    if token in _ALIASES:
        return _ALIASES[token]
    stem = re.sub(r"\d+$", "", token)
    return _ALIASES.get(stem, {stem} if stem else set())


def _chain(module: str, chains: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """``a.b.c`` -> ``(a, a.b, a.b.c)``, from the parent's chain when ``chains`` has it (and recorded there)."""
    parent = module.rpartition(".")[0]
    chain = ((chains.get(parent) or _chain(parent, chains)) if parent else ()) + (module,)
    chains[module] = chain
    return chain


class ParameterStrategy(ModuleStrategy):
    """Resolve a module by the initializers its nodes read (see the module docstring)."""

    resolved_by = "parameters"

    def __init__(self, index: GraphIndex):
        super().__init__(index, index.pos.__getitem__)  # nodes are added in topological order
        #: node -> the module owning it (a set when several do)
        self.owners: dict[int, str | set[str]] = {}
        self._regions: dict[str, set[int]] = {}
        self._covers: dict[str, tuple[list[int] | set[int], set[int]]] = {}
        # tensor -> its owning module, or the set of them when several own it (a Constant-only op's output)
        tensor_owner: dict[str, str | set[str]] = {
            name: name.rsplit(".", 1)[0] for name in index.initializers if _PARAM.match(name) and not _UNIQUE.match(name)}
        if not tensor_owner:
            return
        chains: dict[str, tuple[str, ...]] = {}  # module -> its path from the top (``a``, ``a.b``)
        inputs_of, data_inputs_of, outputs_of = index.inputs_of, index.data_inputs_of, index.outputs_of
        for i in index.order:
            owning = [tensor_owner[name] for name in inputs_of[i] if name in tensor_owner]
            if not owning:
                continue
            own = owning[0]
            if len(owning) > 1 or type(own) is not str:
                if type(own) is not str or any(o != own for o in owning):
                    own = set()  # (in reading order, as iterating it adds the modules to the tree)
                    for o in owning:
                        if type(o) is str:
                            own.add(o)
                        else:
                            own |= o
            if not data_inputs_of[i]:
                for out in outputs_of[i]:
                    tensor_owner[out] = own
                continue
            self.owners[i] = own
            for module in (own,) if type(own) is str else own:
                self.members.add(i, chains.get(module) or _chain(module, chains))

    def _region(self, name: str) -> tuple[set[int], list[str]]:
        region = hull(self.index, self.members[name])
        outs = exits(self.index, region)
        if self.children.get(name) and outs:
            region, outs = extend_tail(self.index, region, outs, self.owners.__contains__)
        self._regions[name] = region
        return region, outs

    def full_region(self, name: str) -> set[int]:
        """Nodes of module ``name`` including its closing parameter-free ops."""
        if name not in self._regions:
            self._region(name)
        return self._regions[name]

    def _output(self, name: str) -> str | None:
        if name not in self.members:
            return self._parameter_free(name)
        region, outs = self._region(name)
        if not region:
            raise GraphfeatError(f"module '{name}' computes only constants; it has no feature output")
        if len(outs) != 1:
            if not outs:
                raise GraphfeatError(f"module '{name}' has no output that the rest of the graph reads")
            raise ambiguous(
                name, self.index, outs, f"its nodes write {len(outs)} tensors that are read elsewhere and do not merge"
            )
        if self.children.get(name):
            self._refuse_resampling_tail(name, region, outs[0])
        return canonical(self.index, outs[0])

    def _refuse_resampling_tail(self, name: str, region: set[int], out: str) -> None:
        """A composite's output read only by a parameter-free local pool/resize: it may be the module's own."""
        readers = {c for c in self.index.consumers.get(out, ()) if c not in region}
        if len(readers) != 1:
            return
        (r,) = readers
        node = self.index.nodes[r]
        if r not in self.owners and node.op_type in _RESAMPLE and node.output and out not in self.index.outputs:
            raise ambiguous(
                name, self.index, [out, node.output[0]],
                f"the parameter-free {node.op_type} after its last parameterised op may belong to it or to its parent",
            )  # fmt: skip

    def _parameter_free(self, name: str) -> str | None:
        parent, _, leaf = name.rpartition(".")
        if parent and parent not in self.members:
            return None
        if leaf.isdigit():
            return self._numbered(name, parent, int(leaf))
        ops = op_types_for(leaf)
        if not ops:
            return None
        index = self.index
        scope = self.full_region(parent) if parent else [i for i in index.order if index.is_data_node(i)]
        covered: set[int] = set()
        for sibling in self.children.get(parent, ()):
            if sibling != name:
                covered |= self.full_region(sibling)
        cands = sorted(
            (i for i in scope if i not in covered and i not in self.owners and index.nodes[i].op_type.lower() in ops),
            key=index.pos.__getitem__,
        )
        if not cands:
            return None
        tensors = [index.nodes[i].output[0] for i in cands]
        where = f"'{parent}'" if parent else "the top level"
        if len(cands) > 1:
            raise ambiguous(
                name, self.index, tensors,
                f"it owns no parameters and {len(cands)} matching ops lie between the parameter-owning modules of {where}",
            )  # fmt: skip
        if not parent and cands[0] not in index.bottlenecks:
            raise ambiguous(
                name, self.index, tensors,
                "it owns no parameters and the only matching op is not on every input-to-output path",
            )  # fmt: skip
        return canonical(index, tensors[0])

    def _numbered(self, name: str, parent: str, k: int) -> str | None:
        """Child ``k`` of a numbered container with no parameters: by position between its siblings.

        A numbered container runs its children in index order and its indices
        are contiguous, so the parameter-free ops between the nearest
        parameter-owning siblings ``lo < k < hi`` are the children
        ``lo+1 .. hi-1``. With one missing index they are all child ``k``
        (its output is their single exit); with several, they must split
        into exactly ``hi - lo - 1`` chained units (`chain_units`: an
        activation group or one op each), matched in order. After the last
        parameter-owning sibling, the units of the parent's closing tail come
        first; a child beyond them can only be a parameter-free local
        resampling op (``MaxPool``) that alone reads the previous child's
        output, the op `_refuse_resampling_tail` leaves undecided for
        the parent — the child's index places it inside.
        """
        index = self.index
        sibs = {int(c.rsplit(".", 1)[-1]): c for c in self.children.get(parent, ()) if c.rsplit(".", 1)[-1].isdigit()}
        if not sibs:
            return None
        lo = max((j for j in sibs if j < k), default=-1)
        hi = min((j for j in sibs if j > k), default=None)
        scope, covered = self._children_cover(parent)
        start = max((index.pos[i] for i in self.full_region(sibs[lo])), default=-1) if lo >= 0 else -1
        end = min((index.pos[i] for i in self.full_region(sibs[hi])), default=len(index.pos)) if hi is not None else len(index.pos)
        gap = sorted(
            (i for i in scope if i not in covered and i not in self.owners and start < index.pos[i] < end),
            key=index.pos.__getitem__,
        )
        if hi is not None and hi - lo == 2 and gap:
            outs = exits(index, set(gap))
            if len(outs) == 1:
                return canonical(index, outs[0])
        into = entries(index, set(gap))
        units = chain_units(index, gap, next(iter(into))) if len(into) == 1 else ([] if not gap else None)
        if hi is None and units is not None and k - lo > len(units):
            units = self._resampling_children(units, sibs[lo] if lo >= 0 else None, k - lo)
        if units is not None and (len(units) == hi - lo - 1 if hi is not None else len(units) >= k - lo):
            return canonical(index, units[k - lo - 1][1])
        if not gap:
            return None
        tensors = [index.nodes[i].output[0] for i in gap]
        if hi is None and units is not None:
            why = (f"it owns no parameters and only {len(units)} parameter-free children can be placed after "
                   f"'{sibs[lo]}'; what follows may belong to the parent")
        else:
            why = (f"it owns no parameters and the {len(gap)} parameter-free ops between its numbered siblings "
                   "cannot be matched one-to-one with the missing indices")
        raise ambiguous(name, index, tensors, why)

    def _children_cover(self, parent: str) -> tuple[list[int] | set[int], set[int]]:
        """The parent's nodes and those of its parameter-owning children (once per parent)."""
        if parent not in self._covers:
            index = self.index
            scope = self.full_region(parent) if parent else [i for i in index.order if index.is_data_node(i)]
            covered: set[int] = set()
            for sibling in self.children.get(parent, ()):
                covered |= self.full_region(sibling)
            self._covers[parent] = (scope, covered)
        return self._covers[parent]

    def _resampling_children(
        self, units: list[tuple[set[int], str]], last: str | None, wanted: int
    ) -> list[tuple[set[int], str]]:
        """``units`` continued by lone parameter-free local resampling ops, up to ``wanted`` units."""
        index = self.index
        if units:
            tensor = units[-1][1]
        else:
            if last is None:
                return units
            _, outs = self._region(last)
            if len(outs) != 1:
                return units
            tensor = outs[0]
        units = list(units)
        while len(units) < wanted:
            readers = index.consumers.get(tensor, ())
            if len(readers) != 1 or tensor in index.outputs:
                break
            (r,) = readers
            node = index.nodes[r]
            if r in self.owners or node.op_type not in _RESAMPLE or index.data_inputs(r) != [tensor] or not node.output[0]:
                break
            tensor = node.output[0]
            units.append(({r}, tensor))
        return units
