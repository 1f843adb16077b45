"""The graph layer: lookups over an ONNX graph, and the edits and checks made on it.

Modules: `index` (``GraphIndex``: producers, consumers, constants,
order, the trunk), `shapes` (dims as Python, the real input),
`check` (the one entry to onnx shape inference, and the checker, on a
weight-free skeleton), `edit` (the one way to set outputs),
`layout` (a tensor delivered as NCHW), `prune` (remove what no output needs), `quant` (which ops quantise), `region` (the tensor a set
of nodes returns). It imports `graphfeat.errors` and
`graphfeat.onnxfile`, nothing above.
"""
from .check import ONNX_DOMAINS, check_model, infer_types, skeleton, skeleton_file, with_input_shapes
from .edit import set_outputs
from .layout import LAYOUTS, to_nchw
from .index import SINK, SOURCE, GraphIndex, node_inputs, nodes_inputs, subgraphs
from .probe import POLICIES, SessionPolicy, ort_runner
from .prune import cleanup
from .quant import is_quant_op, is_quantized
from .shapes import ImageInput, Shape, image_input, input_dtype, input_spec, real_inputs, shape_of

__all__ = [
    "ONNX_DOMAINS",
    "LAYOUTS",
    "POLICIES",
    "SINK",
    "SOURCE",
    "GraphIndex",
    "ImageInput",
    "SessionPolicy",
    "Shape",
    "check_model",
    "cleanup",
    "image_input",
    "infer_types",
    "input_dtype",
    "input_spec",
    "is_quant_op",
    "is_quantized",
    "node_inputs",
    "nodes_inputs",
    "ort_runner",
    "real_inputs",
    "set_outputs",
    "shape_of",
    "skeleton",
    "skeleton_file",
    "subgraphs",
    "to_nchw",
    "with_input_shapes",
]
