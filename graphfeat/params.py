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
  :func:`graphfeat.region.extend_tail` (residual ``Add``/``Concat``, then an
  elementwise activation group); pooling/reshape/the next module stop it.
* A module without parameters (``relu``, ``max_pool``): the op must lie in its
  parent's region but in no sibling's region, its op type must match the name
  (``relu`` -> ``Relu``, ``max_pool`` -> ``MaxPool``, ``act1`` -> any
  activation, ``pool`` -> any pooling), and it must be unique; a top-level
  one must also be a bottleneck (it dominates the graph outputs). Anything
  else is refused with the candidates.

Known limits: a composite module followed by a parameter-free *sibling*
activation would absorb it; modules whose parameters are shared or renamed
by the exporter (``onnx::Conv_12``) are invisible to this strategy.
"""
from __future__ import annotations

import re

from .errors import GraphfeatError
from .graph import GraphIndex
from .modules import ModuleStrategy
from .region import ambiguous, canonical, exits, extend_tail, hull

_PARAM = re.compile(r"^[A-Za-z_][\w\-]*(\.[\w\-]+)+$")
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


class ParameterStrategy(ModuleStrategy):
    """Resolve a module by the initializers its nodes read (see the module docstring)."""

    resolved_by = "parameters"

    def __init__(self, index: GraphIndex):
        super().__init__(index)
        self.owners: dict[int, set[str]] = {}
        self._regions: dict[str, set[int]] = {}
        tensor_owner: dict[str, set[str]] = {}
        for name in index.initializers:
            if _PARAM.match(name):
                tensor_owner[name] = {name.rsplit(".", 1)[0]}
        if not tensor_owner:
            return
        for i in index.order:
            own: set[str] = set()
            for name in index.inputs_of[i]:
                if name in tensor_owner:
                    own |= tensor_owner[name]
            if not own:
                continue
            if not index.is_data_node(i):
                for out in index.nodes[i].output:
                    tensor_owner[out] = own
                continue
            self.owners[i] = own
            for module in own:
                parts = module.split(".")
                self._add(i, [".".join(parts[: k + 1]) for k in range(len(parts))])

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

        The parameter-free ops between the nearest parameter-owning siblings
        ``lo < k < hi`` must form a simple chain of exactly ``hi - lo - 1`` ops
        (one per missing index); child ``k`` is the ``k - lo``-th of them.
        """
        index = self.index
        sibs = {int(c.rsplit(".", 1)[-1]): c for c in self.children.get(parent, ()) if c.rsplit(".", 1)[-1].isdigit()}
        if not sibs:
            return None
        lo = max((j for j in sibs if j < k), default=-1)
        hi = min((j for j in sibs if j > k), default=None)
        scope = self.full_region(parent) if parent else [i for i in index.order if index.is_data_node(i)]
        covered: set[int] = set()
        for sibling in self.children.get(parent, ()):
            covered |= self.full_region(sibling)
        start = max((index.pos[i] for i in self.full_region(sibs[lo])), default=-1) if lo >= 0 else -1
        end = min((index.pos[i] for i in self.full_region(sibs[hi])), default=len(index.pos)) if hi is not None else len(index.pos)
        gap = sorted(
            (i for i in scope if i not in covered and i not in self.owners and start < index.pos[i] < end),
            key=index.pos.__getitem__,
        )
        if not gap:
            return None
        tensors = [index.nodes[i].output[0] for i in gap]
        chain = all(tensors[m] in index.data_inputs(gap[m + 1]) for m in range(len(gap) - 1))
        expected = (hi - lo - 1) if hi is not None else (1 if k == lo + 1 else None)
        if chain and expected is not None and len(gap) == expected:
            return canonical(index, tensors[k - lo - 1])
        raise ambiguous(
            name, index, tensors,
            f"it owns no parameters and the {len(gap)} parameter-free ops between its numbered siblings "
            "cannot be matched one-to-one with the missing indices",
        )  # fmt: skip
