"""MACs and parameter counts from a shape-inferred ONNX graph."""

from __future__ import annotations

import numpy as np
import onnx

from .context import _static_shape


def _shapes(proto: onnx.ModelProto) -> dict[str, tuple[int, ...] | None]:
    g = proto.graph
    shapes = {vi.name: _static_shape(vi) for vi in list(g.input) + list(g.value_info) + list(g.output)}
    shapes.update({t.name: tuple(t.dims) for t in g.initializer})
    return shapes


def node_macs(node: onnx.NodeProto, shapes) -> int:
    """Multiply-accumulates of one node (0 for ops that do no weighted sums)."""
    op = node.op_type
    if op in ("Conv", "ConvTranspose"):
        x, w, y = shapes.get(node.input[0]), shapes.get(node.input[1]), shapes.get(node.output[0])
        if x is None or w is None or y is None:
            return 0
        kernel = int(np.prod(w[2:], dtype=np.int64))
        if op == "Conv":
            return int(np.prod(y, dtype=np.int64)) * int(w[1]) * kernel
        return int(np.prod(x, dtype=np.int64)) * int(w[1]) * kernel
    if op == "Gemm":
        a, y = shapes.get(node.input[0]), shapes.get(node.output[0])
        if a is None or y is None:
            return 0
        k = a[0] if any(at.name == "transA" and at.i for at in node.attribute) else a[1]
        return int(np.prod(y, dtype=np.int64)) * int(k)
    if op == "MatMul":
        a, y = shapes.get(node.input[0]), shapes.get(node.output[0])
        if a is None or y is None:
            return 0
        return int(np.prod(y, dtype=np.int64)) * int(a[-1])
    return 0


def count_macs(proto: onnx.ModelProto) -> int:
    shapes = _shapes(proto)
    return sum(node_macs(n, shapes) for n in proto.graph.node)


def count_params(proto: onnx.ModelProto) -> int:
    """Elements of floating-point initializers that some node uses (weights, not shapes)."""
    used = {name for n in proto.graph.node for name in n.input}
    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
              onnx.TensorProto.BFLOAT16, onnx.TensorProto.INT8, onnx.TensorProto.UINT8}
    return sum(int(np.prod(t.dims, dtype=np.int64)) for t in proto.graph.initializer
               if t.name in used and t.data_type in floats)
