"""Setting a graph's outputs for good: the one way graphfeat does it (the cut, the export); a run that only
reads tensors exposes them on a serialized copy instead (`graphfeat.graph.ort_runner`).

Edits only rewrite ``graph.output`` (renaming tensors, or adding an
``Identity`` where a tensor cannot be renamed); `prune.cleanup`
removes what becomes dead.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import onnx

from ..errors import GraphfeatError
from .index import GraphIndex, subgraphs


def set_outputs(
    model: onnx.ModelProto,
    index: GraphIndex,
    outputs: Sequence[tuple[str, str]],
    types: Mapping[str, onnx.TypeProto] | None = None,
    keep_existing: bool = False,
) -> dict[str, str]:
    """Make ``outputs`` (``(output_name, tensor)`` pairs) the graph outputs, in order; return the
    tensors renamed (old name -> new name, for `prune.cleanup`).

    The tensor itself is renamed to the output name when it is an internal
    value; when it cannot be (a kept original output, or a tensor already
    serving another output), an ``Identity`` writes the output name. A name
    already used by another internal tensor moves that tensor aside
    (``name__1``); a name held by a graph input, initializer or kept output is
    refused. With ``types``, each output gets its tensor's type; without,
    outputs are left untyped for `check.check_model` to type.
    """
    graph = model.graph
    original = list(graph.output)
    naming = _Naming(model, index, {o.name for o in original} if keep_existing else set())
    new_outputs: list[onnx.ValueInfoProto] = []
    for out_name, tensor in outputs:
        if any(vi.name == out_name for vi in new_outputs):
            raise GraphfeatError(f"output '{out_name}' is requested twice")
        tp = types.get(tensor) if types is not None else None
        if types is not None and (tp is None or not tp.HasField("tensor_type") or not tp.tensor_type.elem_type):
            raise GraphfeatError(
                f"onnx shape inference could not determine the type of tensor '{tensor}' (for output "
                f"'{out_name}'); the model may use operators without shape inference"
            )
        naming.claim(out_name, tensor)
        vi = onnx.ValueInfoProto()
        vi.name = out_name
        if tp is not None:
            vi.type.CopyFrom(tp)
        new_outputs.append(vi)
    if keep_existing:
        names = {vi.name for vi in new_outputs}
        new_outputs.extend(o for o in original if o.name not in names)
    del graph.output[:]
    graph.output.extend(new_outputs)
    return {old: new for old, new in naming.alias.items() if old != new}


class _Naming:
    """The names of a graph while outputs are named: what each tensor is called now, which names are taken,
    which tensors already serve an output, and which original outputs are kept."""

    def __init__(self, model: onnx.ModelProto, index: GraphIndex, kept: set[str]):
        self.graph, self.index, self.kept = model.graph, index, kept
        self.taken = set(index.tensor_names)
        self.alias: dict[str, str] = {}  # old tensor name -> current name
        self.serving: set[str] = set()  # names already serving an output

    def claim(self, out_name: str, tensor: str) -> None:
        """Make the name ``out_name`` hold ``tensor``'s value: rename the tensor, or add an ``Identity``."""
        index, alias = self.index, self.alias
        current = alias.get(tensor, tensor)
        if out_name != current:
            if out_name in self.taken:
                if out_name in self.kept or out_name not in index.producer or out_name in self.serving:
                    raise GraphfeatError(
                        f"cannot name an output '{out_name}': a graph input, initializer or kept output already "
                        f"has that name; use --tensors {tensor} instead"
                    )
                fresh = _fresh(out_name, self.taken)  # the tensor that holds the name moves aside
                _rename(index, alias.get(out_name, out_name), fresh, out_name)
                alias[out_name] = fresh
                if current == out_name:
                    current = fresh
            internal = current in index.producer or current in alias.values()
            if internal and current not in self.kept and current not in self.serving:
                _rename(index, current, out_name, tensor)
                alias[tensor] = out_name
            else:
                node = self.graph.node.add()
                node.op_type = "Identity"
                node.name = f"graphfeat/output/{out_name}"
                node.input.append(current)
                node.output.append(out_name)
            self.taken.add(out_name)
        self.serving.add(out_name)


def _fresh(name: str, taken: set[str]) -> str:
    k = 1
    while f"{name}__{k}" in taken:
        k += 1
    taken.add(f"{name}__{k}")
    return f"{name}__{k}"


def _rename(index: GraphIndex, old: str, new: str, original: str) -> None:
    """Rename tensor ``old`` (originally ``original``) in its producer and readers.

    Stale value_info entries are left to `prune.cleanup`.
    """
    touched = list(index.consumers.get(original, ()))
    if original in index.producer:
        touched.append(index.producer[original])
    for i in touched:
        _rename_in_node(index.nodes[i], old, new)


def _rename_in_node(node: onnx.NodeProto, old: str, new: str) -> None:
    for k, name in enumerate(node.input):
        if name == old:
            node.input[k] = new
    for k, name in enumerate(node.output):
        if name == old:
            node.output[k] = new
    for sub in subgraphs(node):
        _rename_refs(sub, old, new)


def _rename_refs(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Rename outer-scope references to ``old`` inside a subgraph."""
    for node in graph.node:
        for k, name in enumerate(node.input):
            if name == old:
                node.input[k] = new
        for sub in subgraphs(node):
            _rename_refs(sub, old, new)
    for vi in graph.output:
        if vi.name == old:
            vi.name = new
