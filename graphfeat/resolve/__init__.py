"""The names layer: layer names to tensors, by interchangeable strategies tried in order.

Modules: `resolver` (``Resolver``: the order, listing, suggestions),
`modules` (``Resolution`` and the module-tree base of the structural
strategies), one module per strategy: `metadata` (graphfeat's record,
and levels found again by value when a tool renamed their tensors),
`fingerprint` (fingerprints, reference values, the one matching run),
`scope` (PyTorch module scopes), `tfscope` (TensorFlow name
scopes, as tf2onnx keeps them), `params` (parameter names plus
structure), and `strides` (levels by measured stride, for ``--strides``)
with its parts: `downsampling` (the stride the ops on the way apply),
`neck` (a detector's backbone end and neck outputs) and
`dominance` (the independent check of every level it returns).
It imports the graph, file and levels layers, nothing above.
"""
from .fingerprint import PROBE_SEED, Targets, probe_input, producer_op, sketch
from .metadata import ValueFinder
from .modules import Resolution
from .resolver import Resolver
from .strides import Candidate, measure_strides, pick_strides, trunk_candidates

__all__ = ["PROBE_SEED", "Candidate", "Resolution", "Resolver", "Targets", "ValueFinder", "measure_strides",
           "pick_strides", "probe_input", "producer_op", "sketch", "trunk_candidates"]
