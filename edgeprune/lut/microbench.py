"""Micro-models: one fused layer in isolation, at a given (c_in, c_out), as an ONNX file.

The micro-model holds exactly what the runtime runs for that layer: the Conv/Gemm with a bias
(a folded BatchNorm leaves one) and the fused activation, on an input of the layer's size.
Weights are seeded random: latency does not depend on their values.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .layers import Signature

OPSET = 17


def micro_model(sig: Signature, c_in: int, c_out: int) -> onnx.ModelProto:
    if sig.dtype != "fp32":
        return _qdq(micro_model(sig.__class__(**{**sig.__dict__, "dtype": "fp32"}), c_in, c_out))
    rng = np.random.default_rng(c_in * 100003 + c_out)
    inits, nodes = [], []
    if sig.kind == "linear":
        rows = sig.in_hw[0]
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, c_in])
        w = rng.standard_normal((c_in, c_out), dtype=np.float32) / np.float32(np.sqrt(c_in))
        inits.append(numpy_helper.from_array(w, "w"))
        ins = ["x", "w"]
        if sig.bias:
            inits.append(numpy_helper.from_array(rng.standard_normal(c_out).astype(np.float32), "b"))
            ins.append("b")
        nodes.append(helper.make_node("Gemm", ins, ["y0"], name="layer"))
    else:
        if sig.kind == "dwconv":
            if c_in != c_out:
                raise ValueError(f"depthwise layer needs c_in == c_out, got {c_in}, {c_out}")
            groups, per_group = c_in, 1
        else:
            groups, per_group = sig.groups, c_in // sig.groups
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c_in, *sig.in_hw])
        fan_in = per_group * sig.kernel[0] * sig.kernel[1]
        # drawn in float32: a 512x512 3x3 layer's weights in float64 took 75 ms, as long as timing it
        w = rng.standard_normal((c_out, per_group, *sig.kernel), dtype=np.float32) / np.float32(np.sqrt(fan_in))
        inits.append(numpy_helper.from_array(w, "w"))
        ins = ["x", "w"]
        if sig.bias:
            inits.append(numpy_helper.from_array(rng.standard_normal(c_out).astype(np.float32), "b"))
            ins.append("b")
        nodes.append(helper.make_node(
            "Conv", ins, ["y0"], name="layer", kernel_shape=list(sig.kernel), strides=list(sig.stride),
            dilations=list(sig.dilation), pads=list(sig.pads), group=groups))
    out = "y0"
    if sig.act != "none":
        nodes.append(_activation(sig.act, "y0", "y", inits))
        out = "y"
    y_shape = [sig.in_hw[0], c_out] if sig.kind == "linear" else [1, c_out, *sig.out_hw()]
    y = helper.make_tensor_value_info(out, TensorProto.FLOAT, y_shape)
    graph = helper.make_graph(nodes, "micro", [x], [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="edgeprune-microbench")
    model.ir_version = 8
    return model


def _activation(act: str, x: str, y: str, inits: list) -> onnx.NodeProto:
    name, _, rest = act.partition("(")
    args = [float(v) for v in rest.rstrip(")").split(",")] if rest else []
    if name == "relu6":
        name, args = "clip", [0.0, 6.0]
    if name == "clip":
        inits.append(numpy_helper.from_array(np.float32(args[0]), "clip_lo"))
        inits.append(numpy_helper.from_array(np.float32(args[1]), "clip_hi"))
        return helper.make_node("Clip", [x, "clip_lo", "clip_hi"], [y], name="act")
    if name == "leakyrelu":
        return helper.make_node("LeakyRelu", [x], [y], name="act", alpha=args[0])
    if name == "hardsigmoid":
        return helper.make_node("HardSigmoid", [x], [y], name="act", alpha=args[0], beta=args[1])
    op = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}.get(name)
    if op is None:
        raise ValueError(f"unknown activation '{act}'")
    return helper.make_node(op, [x], [y], name="act")


def _qdq(model: onnx.ModelProto) -> onnx.ModelProto:
    """The int8 form ORT runs for a QDQ layer: quantized input and weight, dequantized output."""
    g = model.graph
    layer = next(n for n in g.node if n.name == "layer")
    w = next(t for t in g.initializer if t.name == "w")
    warr = numpy_helper.to_array(w)
    scale = float(np.abs(warr).max() / 127.0) or 1.0
    q = np.clip(np.round(warr / scale), -127, 127).astype(np.int8)
    g.initializer.remove(w)
    g.initializer.extend([
        numpy_helper.from_array(q, "w_q"), numpy_helper.from_array(np.float32(scale), "w_s"),
        numpy_helper.from_array(np.int8(0), "w_z"), numpy_helper.from_array(np.float32(0.05), "x_s"),
        numpy_helper.from_array(np.uint8(128), "x_z"), numpy_helper.from_array(np.float32(0.05), "y_s"),
        numpy_helper.from_array(np.uint8(128), "y_z")])
    last = g.output[0].name
    nodes = [helper.make_node("QuantizeLinear", ["x", "x_s", "x_z"], ["xq"], name="qx"),
             helper.make_node("DequantizeLinear", ["xq", "x_s", "x_z"], ["xd"], name="dqx"),
             helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["wd"], name="dqw")]
    layer.input[0], layer.input[1] = "xd", "wd"
    for n in g.node:
        for k, o in enumerate(n.output):
            if o == last:
                n.output[k] = "yf"
    tail = [helper.make_node("QuantizeLinear", ["yf", "y_s", "y_z"], ["yq"], name="qy"),
            helper.make_node("DequantizeLinear", ["yq", "y_s", "y_z"], [last], name="dqy")]
    body = list(g.node)
    del g.node[:]
    g.node.extend(nodes + body + tail)
    return model


def micro_model_file(sig: Signature, c_in: int, c_out: int, folder: Path) -> Path:
    """Write the micro-model once per (signature, c_in, c_out); returns its path."""
    digest = hashlib.sha1(f"{sig.key}|{c_in}|{c_out}".encode()).hexdigest()[:16]
    path = Path(folder) / f"{digest}.onnx"
    if not path.exists():
        from ..atomic import write_bytes

        # concurrent profilers may write the same file: each through its own temporary
        write_bytes(path, micro_model(sig, c_in, c_out).SerializeToString())
    return path
