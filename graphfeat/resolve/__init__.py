"""The names layer: layer names to tensors, by interchangeable strategies tried in order.

Modules: :mod:`.resolver` (``Resolver``: the order, listing, suggestions),
:mod:`.modules` (``Resolution`` and the module-tree base of the structural
strategies), one module per strategy: :mod:`.metadata` (graphfeat's record,
and levels found again by value when a tool renamed their tensors),
:mod:`.fingerprint` (fingerprints, reference values, the one matching run),
:mod:`.scope` (PyTorch module scopes), :mod:`.params` (parameter names plus
structure), and :mod:`.strides` (levels by measured stride, for ``--strides``).
It imports the graph, file and levels layers, nothing above.
"""
from .fingerprint import PROBE_SEED, Targets, file_kind, find_levels, probe_input, producer_op, sketch
from .metadata import MetadataStrategy, ValueFinder
from .modules import Resolution
from .resolver import HEAD_OPS, Resolver
from .strides import Candidate, TensorStride, measure_strides, pick_strides, trunk_candidates

__all__ = ["HEAD_OPS", "PROBE_SEED", "Candidate", "MetadataStrategy", "Resolution", "Resolver", "Targets", "TensorStride",
           "ValueFinder", "file_kind", "find_levels", "measure_strides", "pick_strides", "probe_input", "producer_op",
           "sketch", "trunk_candidates"]
