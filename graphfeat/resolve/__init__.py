"""The names layer: layer names to tensors, by interchangeable strategies tried in order.

Modules: :mod:`.resolver` (``Resolver``: the order, listing, suggestions),
:mod:`.modules` (``Resolution`` and the module-tree base of the structural
strategies), one module per strategy: :mod:`.metadata` (graphfeat's record,
and levels found again by value when a tool renamed their tensors),
:mod:`.fingerprint` (fingerprints, reference values, the one matching run),
:mod:`.scope` (PyTorch module scopes), :mod:`.tfscope` (TensorFlow name
scopes, as tf2onnx keeps them), :mod:`.params` (parameter names plus
structure), and :mod:`.strides` (levels by measured stride, for ``--strides``)
with its parts: :mod:`.downsampling` (the stride the ops on the way apply),
:mod:`.neck` (a detector's backbone end and neck outputs) and
:mod:`.dominance` (the independent check of every level it returns).
It imports the graph, file and levels layers, nothing above.
"""
from .fingerprint import PROBE_SEED, Targets, probe_input, producer_op, sketch
from .metadata import ValueFinder
from .modules import Resolution
from .resolver import Resolver
from .strides import Candidate, measure_strides, pick_strides, trunk_candidates

__all__ = ["PROBE_SEED", "Candidate", "Resolution", "Resolver", "Targets", "ValueFinder", "measure_strides",
           "pick_strides", "probe_input", "producer_op", "sketch", "trunk_candidates"]
