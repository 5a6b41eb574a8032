"""Bias correction for int8 weights (Nagel et al., "Data-Free Quantization", 2019, in its
empirical form).

Rounding a layer's weights to int8 changes its output by ΔW * x. Averaged over the
calibration data that is ΔW * E[x], a per-output-channel shift that depthwise layers in
particular (few weights per channel, wide ranges after BN folding) pass on to every layer
after them. The shift is computed from the mean input map of each layer in the float model
(a convolution of that map, so zero padding at the borders is accounted for) and subtracted
through the layer's int32 bias, in units of the bias's own scale.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import onnx
from onnx import numpy_helper

from ..frontend.links import Links
from ..recover.probe import Calib, Probe


def layer_inputs(fp32: onnx.ModelProto) -> list[str]:
    """The inputs whose means bias correction reads: the first input of every Conv and Gemm
    with a constant weight (the int8 calibration pass sums them on its way)."""
    inits = {t.name for t in fp32.graph.initializer}
    return sorted({n.input[0] for n in fp32.graph.node
                   if n.op_type in ("Conv", "Gemm") and len(n.input) > 1 and n.input[1] in inits})


def correct_bias(qdq: onnx.ModelProto, fp32: onnx.ModelProto, calib: Calib | None,
                 sums: Mapping[str, np.ndarray] | None = None, count: int = 0) -> onnx.ModelProto:
    """`qdq` (quantized from `fp32`, same node names) with the int32 biases of its Conv and
    Gemm layers corrected for the mean error of their rounded weights. `sums` (with the
    sample `count`) are the layer inputs summed over the calibration data when a pass over
    it has already computed them; otherwise `calib` is run through `fp32` here."""
    out = onnx.ModelProto()
    out.CopyFrom(qdq)
    g = out.graph
    inits = {t.name: t for t in g.initializer}
    links = Links(g)
    float_nodes = {n.name: n for n in fp32.graph.node}
    float_inits = {t.name: t for t in fp32.graph.initializer}
    layers = []
    for node in g.node:
        if node.op_type not in ("Conv", "Gemm") or node.name not in float_nodes or len(node.input) < 3:
            continue
        w_dq, b_dq = links.producer(node.input[1]), links.producer(node.input[2])
        if not (_is_const_dq(w_dq, inits) and _is_const_dq(b_dq, inits)):
            continue
        f = float_nodes[node.name]
        if f.input[1] not in float_inits:
            continue
        layers.append((node, f, w_dq, b_dq))
    if not layers:
        return out
    names = sorted({f.input[0] for _, f, _, _ in layers})
    if sums is None or not all(n in sums for n in names):
        sums, count = _input_sums(fp32, names, calib)
    for node, f, w_dq, b_dq in layers:
        mean_x = sums[f.input[0]] / count
        w = numpy_helper.to_array(float_inits[f.input[1]]).astype(np.float64)
        dw = w - _dequantize(w_dq, inits)
        shift = _mean_output(node, mean_x, dw)
        b_name, b_scale = b_dq.input[0], _array(inits, b_dq.input[1])
        b = numpy_helper.to_array(inits[b_name]).astype(np.int64)
        b = b + np.round(shift / np.broadcast_to(b_scale, shift.shape)).astype(np.int64)
        info = np.iinfo(np.int32)
        inits[b_name].CopyFrom(numpy_helper.from_array(np.clip(b, info.min, info.max).astype(np.int32), b_name))
    return out


def _input_sums(fp32: onnx.ModelProto, names: list[str], calib: Calib) -> tuple[dict[str, np.ndarray], int]:
    sums: dict[str, np.ndarray] = {}
    count = 0
    for chunk in Probe(fp32, names).chunks(calib):
        for name, x in zip(names, chunk):
            s = x.astype(np.float64).sum(0)
            sums[name] = s if name not in sums else sums[name] + s
        count += len(chunk[0])
    return sums, count


def _is_const_dq(node, inits) -> bool:
    return (node is not None and node.op_type == "DequantizeLinear"
            and all(i in inits for i in node.input if i))


def _array(inits, name) -> np.ndarray:
    return numpy_helper.to_array(inits[name]).astype(np.float64)


def _dequantize(dq: onnx.NodeProto, inits) -> np.ndarray:
    q = _array(inits, dq.input[0])
    scale = _array(inits, dq.input[1])
    zp = _array(inits, dq.input[2]) if len(dq.input) > 2 and dq.input[2] else np.zeros_like(scale)
    axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
    if scale.ndim == 1 and scale.size > 1:
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return (q - zp) * scale


def _attr(node, name, default):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _mean_output(node: onnx.NodeProto, mean_x: np.ndarray, dw: np.ndarray) -> np.ndarray:
    """Per output channel mean of layer(mean input) with weights `dw` and no bias.

    A convolution's output averaged over its positions is, per kernel tap, the weight times
    the mean of the input window that tap sees (zero padding included), so the mean is a
    contraction of `dw` with those C x kh x kw window means instead of a full convolution
    (float64 convolutions of a 112x112 map cost 0.4 s each in PyTorch here)."""
    if node.op_type == "Gemm":
        x = mean_x.reshape(-1)
        return (dw @ x) if _attr(node, "transB", 0) else (x @ dw)
    if dw.ndim != 4 or mean_x.ndim != 3:
        return np.zeros(dw.shape[0])
    pads = list(_attr(node, "pads", [0, 0, 0, 0]))
    auto = _attr(node, "auto_pad", b"NOTSET")
    if auto not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
        return np.zeros(dw.shape[0])
    sh, sw = _attr(node, "strides", [1, 1])
    dh, dwid = _attr(node, "dilations", [1, 1])
    groups = int(_attr(node, "group", 1))
    cout, cin_g, kh, kw = dw.shape
    x = np.pad(mean_x, ((0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    oh = (x.shape[1] - dh * (kh - 1) - 1) // sh + 1
    ow = (x.shape[2] - dwid * (kw - 1) - 1) // sw + 1
    if oh <= 0 or ow <= 0:
        return np.zeros(cout)
    taps = np.empty((x.shape[0], kh, kw))
    for i in range(kh):
        for j in range(kw):
            window = x[:, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dwid:j * dwid + sw * (ow - 1) + 1:sw]
            taps[:, i, j] = window.mean((1, 2))
    w = dw.reshape(groups, cout // groups, cin_g, kh, kw)
    return np.einsum("gocij,gcij->go", w, taps.reshape(groups, cin_g, kh, kw)).reshape(cout)
