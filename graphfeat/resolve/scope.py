"""Strategy (b): module scopes recorded by PyTorch exporters.

* TorchScript exporter: node names such as ``/layer1/layer1.0/conv1/Conv``;
  the components between the first and last ``/`` are the module scopes.
* Dynamo exporter: bare node names, but ``metadata_props`` with
  ``pkg.torch.onnx.name_scopes`` (``['', 'layer1', 'layer1.0', ..., 'conv2d']``)
  or ``namespace`` (``: Net/layer1: Sequential/.../conv2d: aten.conv...``);
  the first entry is the root and the last the node itself.

A module's nodes are those whose scope path contains it; its output is the
single tensor they write that is read outside (see `graphfeat.region`).
Limit: a module called twice (TorchScript names the second call ``relu_1``)
is two scopes; ``relu`` names the first call only.
"""
from __future__ import annotations

import ast
from collections.abc import Iterator

import onnx

from ..errors import GraphfeatError
from ..graph import GraphIndex
from .modules import ModuleStrategy, full_paths
from ..graph.region import ambiguous, canonical, exits, hull

NAME_SCOPES = "pkg.torch.onnx.name_scopes"
NAMESPACE = "namespace"


def node_scopes(node: onnx.NodeProto, cache: dict[str, list[str]] | None = None) -> list[str]:
    """Full module paths enclosing ``node`` (outermost first); empty if it carries no scope.
    ``cache``: the paths of the node-name scopes parsed so far (the nodes of one module share one list,
    which the caller must not modify)."""
    if node.metadata_props:
        props = {p.key: p.value for p in node.metadata_props}
        if NAME_SCOPES in props:
            try:
                parts = ast.literal_eval(props[NAME_SCOPES])
            except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
                parts = None
            if isinstance(parts, (list, tuple)) and all(isinstance(p, str) for p in parts):
                return full_paths(parts[1:-1])
        if NAMESPACE in props:
            entries = props[NAMESPACE].split("/")
            return full_paths(e.split(":", 1)[0] for e in entries[1:-1])
    return _name_scopes(node.name, {} if cache is None else cache)


def _name_scopes(name: str, cache: dict[str, list[str]]) -> list[str]:
    """The module paths a TorchScript node name records (``/layer1/layer1.0/conv1/Conv``: all but the last
    component), parsed once per scope (``cache``)."""
    scope = name.rpartition("/")[0]
    paths = cache.get(scope)
    if paths is None:
        paths = cache[scope] = full_paths(scope.split("/")[1:]) if scope.startswith("/") else []
    return paths


class ScopeStrategy(ModuleStrategy):
    """Resolve a module by the scopes its nodes carry."""

    resolved_by = "scope"

    def __init__(self, index: GraphIndex):
        super().__init__(index)
        add = self.members.add
        for i, paths in self._scoped_nodes(index):
            add(i, paths)

    def _scoped_nodes(self, index: GraphIndex) -> Iterator[tuple[int, list[str]]]:
        """Each node that carries scopes, with their module paths (outermost first)."""
        cache: dict[str, list[str]] = {}
        for i, (node, name) in enumerate(zip(index.nodes, index.node_names)):
            paths = node_scopes(node, cache) if node.metadata_props else _name_scopes(name, cache)
            if paths:
                yield i, paths

    def _output(self, name: str) -> str | None:
        if name not in self.members:
            return None
        region = hull(self.index, self.members[name])
        if not region:
            raise GraphfeatError(f"module '{name}' computes only constants; it has no feature output")
        outs = exits(self.index, region)
        if len(outs) != 1:
            if not outs:
                raise GraphfeatError(f"module '{name}' has no output that the rest of the graph reads")
            raise ambiguous(name, self.index, outs, f"its nodes write {len(outs)} tensors that are read elsewhere")
        return canonical(self.index, outs[0])
