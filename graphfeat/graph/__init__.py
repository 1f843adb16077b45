"""The graph layer: lookups over an ONNX graph, and the edits and checks made on it.

Modules: :mod:`.index` (``GraphIndex``: producers, consumers, constants,
order, dominators), :mod:`.shapes` (dims as Python, the real input),
:mod:`.check` (the one entry to onnx shape inference, and the checker, on a
weight-free skeleton), :mod:`.edit` (the one way to set outputs),
:mod:`.prune` (remove what no output needs), :mod:`.region` (the tensor a set
of nodes returns). It imports :mod:`graphfeat.errors` and
:mod:`graphfeat.onnxfile`, nothing above.
"""
from .check import check_model, infer_types, skeleton
from .edit import expose, set_outputs
from .index import SINK, SOURCE, GraphIndex, node_inputs, subgraphs
from .prune import cleanup
from .shapes import Shape, input_spec, real_inputs, shape_of

__all__ = [
    "SINK",
    "SOURCE",
    "GraphIndex",
    "Shape",
    "check_model",
    "cleanup",
    "expose",
    "infer_types",
    "input_spec",
    "node_inputs",
    "real_inputs",
    "set_outputs",
    "shape_of",
    "skeleton",
    "subgraphs",
]
