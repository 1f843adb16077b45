"""Which operators quantise: the one definition that the matching (resolve) and verify (runtime) share."""
from __future__ import annotations

import onnx

#: ops that quantise, dequantise or compute on quantised integers (any domain; ``QLinear*`` by prefix)
QUANT_OPS = frozenset({
    "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "ConvInteger", "MatMulInteger",
    "QGemm", "QAttention", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "MatMulNBits", "DynamicQuantizeLSTM",
    "QOrderedMatMul", "QuantizeBFP", "DequantizeBFP",
})


def is_quant_op(node: onnx.NodeProto) -> bool:
    """Whether ``node`` is a quantisation op (any domain): QDQ, ``QLinear*``, integer convolutions/matmuls."""
    return node.op_type in QUANT_OPS or node.op_type.startswith("QLinear")


def is_quantized(model: onnx.ModelProto) -> bool:
    """Whether the model's main graph holds any quantisation op (a QDQ or QOperator file)."""
    return any(is_quant_op(n) for n in model.graph.node)
