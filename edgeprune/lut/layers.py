"""Fused layers as ONNX Runtime executes them, read straight from any ONNX graph.

A *fused layer* is a Conv (with the BatchNormalization that follows it folded in, and the
activation that follows it fused), a depthwise Conv, or a linear layer (Gemm, or MatMul by a
2-D constant). Its `Signature` is everything that decides its cost except the channel counts:
the LUT stores latency over (c_in, c_out) per signature.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import onnx
from onnx import numpy_helper

from ..errors import UsageError
from ..frontend.links import Links
from ..frontend.shapes import declared_dims

# Activations ONNX Runtime fuses into Conv/Gemm (FusedConv, FusedGemm, NCHWc conv).
FUSABLE_ACTIVATIONS = ("Relu", "Clip", "LeakyRelu", "Sigmoid", "HardSigmoid", "Tanh")


@dataclass(frozen=True)
class Signature:
    kind: str                   # "conv" | "dwconv" | "linear"
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)   # top, left, bottom, right
    groups: int = 1             # for "conv"; "dwconv" has groups == channels
    in_hw: tuple[int, int] = (1, 1)  # input H x W (for "linear": rows x 1)
    act: str = "none"           # "none", "relu", "relu6", "clip(a,b)", "sigmoid", ...
    bias: bool = True
    dtype: str = "fp32"         # "fp32" | "int8"

    @property
    def key(self) -> str:
        if self.kind == "linear":
            return f"linear|m{self.in_hw[0]}|{self.act}|{'b' if self.bias else 'nb'}|{self.dtype}"
        k, s, d, p = self.kernel, self.stride, self.dilation, self.pads
        return (f"{self.kind}|k{k[0]}x{k[1]}|s{s[0]}x{s[1]}|d{d[0]}x{d[1]}|p{','.join(map(str, p))}"
                f"|g{self.groups}|{self.in_hw[0]}x{self.in_hw[1]}|{self.act}"
                f"|{'b' if self.bias else 'nb'}|{self.dtype}")

    def to_json(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @staticmethod
    def from_json(d: dict) -> "Signature":
        return Signature(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def out_hw(self) -> tuple[int, int]:
        if self.kind == "linear":
            return self.in_hw
        h = (self.in_hw[0] + self.pads[0] + self.pads[2] - self.dilation[0] * (self.kernel[0] - 1) - 1) \
            // self.stride[0] + 1
        w = (self.in_hw[1] + self.pads[1] + self.pads[3] - self.dilation[1] * (self.kernel[1] - 1) - 1) \
            // self.stride[1] + 1
        return h, w

    def macs(self, c_in: int, c_out: int) -> int:
        oh, ow = self.out_hw()
        if self.kind == "linear":
            return self.in_hw[0] * c_in * c_out
        if self.kind == "dwconv":
            return oh * ow * c_out * self.kernel[0] * self.kernel[1]
        return oh * ow * c_out * (c_in // self.groups) * self.kernel[0] * self.kernel[1]

    def bytes_moved(self, c_in: int, c_out: int) -> int:
        """Activations in and out plus weights, at the signature's dtype."""
        size = 1 if self.dtype == "int8" else 4
        oh, ow = self.out_hw()
        if self.kind == "linear":
            m = self.in_hw[0]
            return size * (m * c_in + m * c_out + c_in * c_out)
        per_group_in = 1 if self.kind == "dwconv" else c_in // self.groups
        weights = c_out * per_group_in * self.kernel[0] * self.kernel[1]
        return size * (c_in * self.in_hw[0] * self.in_hw[1] + c_out * oh * ow + weights)


@dataclass(frozen=True)
class Layer:
    node: str            # name of the Conv / Gemm / MatMul node (what layer_channels() keys by)
    signature: Signature
    c_in: int
    c_out: int
    fused: tuple[str, ...] = ()   # names of the nodes folded into it (BN, activation, bias Add)


def model_layers(model) -> list[Layer]:
    """Every fused layer of an ONNX model (a `Model` from frontend.load or a ModelProto), in
    graph order. The model must have static shapes (load_model gives them)."""
    proto = getattr(model, "proto", model)
    if not proto.graph.value_info:
        proto = onnx.shape_inference.infer_shapes(proto)
    g = proto.graph
    inits = {t.name: t for t in g.initializer}
    shapes = _shapes(proto)
    links = Links(g)
    consumers, producers, graph_outputs = links.consumers, links.producers, links.graph_outputs
    layers = []
    for node in g.node:
        if node.op_type == "Conv":
            layers.append(_conv_layer(node, inits, shapes, consumers, graph_outputs, producers))
        elif node.op_type in ("Gemm", "MatMul"):
            layer = _linear_layer(node, inits, shapes, consumers, graph_outputs, producers)
            if layer is not None:
                layers.append(layer)
    return layers


def _shapes(proto) -> dict[str, tuple[int, ...]]:
    out = {}
    for vi in list(proto.graph.value_info) + list(proto.graph.input) + list(proto.graph.output):
        t = vi.type.tensor_type
        if t.HasField("shape"):
            out[vi.name] = tuple(-1 if d is None else d for d in declared_dims(vi))  # -1: dynamic
    for t in proto.graph.initializer:
        out[t.name] = tuple(t.dims)
    return out


def _attrs(node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _only_consumer(name, consumers, graph_outputs):
    users = consumers.get(name, [])
    if len(users) == 1 and name not in graph_outputs:
        return users[0]
    return None


def _follow_epilogue(node, consumers, graph_outputs, inits, allow_bn: bool):
    """(activation, names of the nodes run inside this layer, whether a BN is folded in)."""
    fused, act, bn = [], "none", False
    cur = node
    nxt = _only_consumer(cur.output[0], consumers, graph_outputs)
    if allow_bn and nxt is not None and nxt.op_type == "BatchNormalization" and len(nxt.output) == 1:
        fused.append(nxt.name)
        bn = True
        cur = nxt
        nxt = _only_consumer(cur.output[0], consumers, graph_outputs)
    if nxt is not None and nxt.op_type in FUSABLE_ACTIVATIONS:
        act = _act_name(nxt, inits)
        if act is not None:
            fused.append(nxt.name)
        else:
            act = "none"
    return act, tuple(fused), bn


def _act_name(node, inits) -> str | None:
    if node.op_type == "Clip":
        lo, hi = _clip_bounds(node, inits)
        if lo is None or hi is None:
            return None  # ORT fuses only a Clip with constant bounds
        if lo == 0.0 and hi == 6.0:
            return "relu6"
        return f"clip({lo:g},{hi:g})"
    if node.op_type == "LeakyRelu":
        return f"leakyrelu({_attrs(node).get('alpha', 0.01):g})"
    if node.op_type == "HardSigmoid":
        a = _attrs(node)
        return f"hardsigmoid({a.get('alpha', 0.2):g},{a.get('beta', 0.5):g})"
    return node.op_type.lower()


def _clip_bounds(node, inits):
    a = _attrs(node)
    if "min" in a or "max" in a:
        return float(a.get("min", -3.4e38)), float(a.get("max", 3.4e38))
    vals = []
    for k in (1, 2):
        if len(node.input) > k and node.input[k]:
            t = inits.get(node.input[k])
            if t is None:
                return None, None
            vals.append(float(numpy_helper.to_array(t)))
        else:
            vals.append(-3.4e38 if k == 1 else 3.4e38)
    return vals[0], vals[1]


def _dtype(node, producers, inits) -> str:
    """int8 when the layer's data and weight come through DequantizeLinear (QDQ)."""
    src = producers.get(node.input[0])
    w = producers.get(node.input[1]) if len(node.input) > 1 else None
    if src is not None and src.op_type == "DequantizeLinear" and \
            (node.input[1] not in inits and w is not None and w.op_type == "DequantizeLinear"):
        return "int8"
    return "fp32"


def _weight_shape(name, inits, shapes, producers):
    if name in inits:
        return tuple(inits[name].dims)
    p = producers.get(name)
    if p is not None and p.op_type == "DequantizeLinear" and p.input[0] in inits:
        return tuple(inits[p.input[0]].dims)
    return shapes.get(name)


def _conv_layer(node, inits, shapes, consumers, graph_outputs, producers) -> Layer:
    x_shape = shapes.get(node.input[0])
    w_shape = _weight_shape(node.input[1], inits, shapes, producers)
    if not x_shape or len(x_shape) != 4 or any(d <= 0 for d in x_shape) or not w_shape or len(w_shape) != 4:
        raise UsageError(f"node '{node.name}': Conv needs a static 4-D input and weight to be profiled")
    a = _attrs(node)
    groups = int(a.get("group", 1))
    kernel = tuple(a.get("kernel_shape", w_shape[2:]))
    stride = tuple(a.get("strides", (1, 1)))
    dilation = tuple(a.get("dilations", (1, 1)))
    in_hw = (int(x_shape[2]), int(x_shape[3]))
    pads = _pads(a, in_hw, kernel, stride, dilation)
    c_in, c_out = int(x_shape[1]), int(w_shape[0])
    act, fused, bn_folded = _follow_epilogue(node, consumers, graph_outputs, inits, allow_bn=True)
    has_bias = (len(node.input) > 2 and bool(node.input[2])) or bn_folded  # a folded BN leaves a bias
    depthwise = groups > 1 and groups == c_in == c_out
    sig = Signature(kind="dwconv" if depthwise else "conv", kernel=kernel, stride=stride,
                    dilation=dilation, pads=pads, groups=1 if depthwise else groups, in_hw=in_hw,
                    act=act, bias=bool(has_bias), dtype=_dtype(node, producers, inits))
    return Layer(node=node.name, signature=sig, c_in=c_in, c_out=c_out, fused=fused)


def _pads(a, in_hw, kernel, stride, dilation) -> tuple[int, int, int, int]:
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pads = []
        for i in range(2):
            out = -(-in_hw[i] // stride[i])
            total = max(0, (out - 1) * stride[i] + dilation[i] * (kernel[i] - 1) + 1 - in_hw[i])
            small, big = total // 2, total - total // 2
            pads.append((small, big) if auto == "SAME_UPPER" else (big, small))
        return (pads[0][0], pads[1][0], pads[0][1], pads[1][1])
    if auto == "VALID":
        return (0, 0, 0, 0)
    p = tuple(a.get("pads", (0, 0, 0, 0)))
    return (p[0], p[1], p[2], p[3])


def _linear_layer(node, inits, shapes, consumers, graph_outputs, producers) -> Layer | None:
    w_shape = _weight_shape(node.input[1], inits, shapes, producers)
    x_shape = shapes.get(node.input[0])
    if not w_shape or len(w_shape) != 2 or (node.input[1] not in inits and
                                            producers.get(node.input[1]) is None):
        return None  # activation x activation (attention): not a prunable linear layer
    if node.input[1] not in inits and producers[node.input[1]].op_type != "DequantizeLinear":
        return None
    if not x_shape or any(d <= 0 for d in x_shape):
        raise UsageError(f"node '{node.name}': {node.op_type} needs a static input shape to be profiled")
    a = _attrs(node)
    if node.op_type == "Gemm":
        if a.get("transA", 0):
            return None
        k, n = (w_shape[1], w_shape[0]) if a.get("transB", 0) else (w_shape[0], w_shape[1])
        rows = int(x_shape[0])
        has_bias = len(node.input) > 2 and bool(node.input[2])
    else:
        k, n = w_shape
        rows = 1
        for d in x_shape[:-1]:
            rows *= int(d)
        has_bias = False
    act, fused, _ = _follow_epilogue(node, consumers, graph_outputs, inits, allow_bn=False)
    sig = Signature(kind="linear", in_hw=(rows, 1), act=act, bias=bool(has_bias),
                    dtype=_dtype(node, producers, inits))
    return Layer(node=node.name, signature=sig, c_in=int(k), c_out=int(n), fused=fused)
