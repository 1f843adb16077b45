"""The file layer: ONNX files in and out, safely, without holding the weights.

Modules: `load` (parse, sanity checks, skeleton load), `external`
(external-data guards), `wire` (embedded weights by byte range),
`save` (atomic save, external data, streamed weights), `tensors`
(tensor walks and byte sizes), `fileio` (descriptors, byte ranges,
staging). It imports only `graphfeat.errors`; every layer above reads and
writes files through the names listed here.
"""
from .external import materialize_external_data, validate_external_data
from .load import (as_path, check_sane, load_model, load_skeleton, load_with_weights, materialize_deferred,
                   weights_loader)
from .save import atomic_write, check_destination, save_model
from .tensors import TensorSizes, holds_data, is_external, tensor_nbytes, tensor_sizes
from .wire import DEFER_MIN_BYTES

__all__ = [
    "DEFER_MIN_BYTES",
    "TensorSizes",
    "as_path",
    "atomic_write",
    "check_destination",
    "check_sane",
    "holds_data",
    "is_external",
    "load_model",
    "load_skeleton",
    "load_with_weights",
    "materialize_deferred",
    "materialize_external_data",
    "save_model",
    "tensor_nbytes",
    "tensor_sizes",
    "validate_external_data",
    "weights_loader",
]
