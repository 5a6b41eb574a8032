"""int8: BN folding and static QDQ quantization for ONNX Runtime (`ort_qdq`), and the QDQ
patterns lowered to integer convolution/matmul in TVM Relax (`tvm_int8`)."""

from .ort_qdq import METHODS, fold_bn, quantize_int8

__all__ = ["METHODS", "fold_bn", "quantize_int8"]
