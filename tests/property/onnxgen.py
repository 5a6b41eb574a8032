"""Random ONNX graphs written directly with onnx.helper: the op forms torch's exporter never
emits (Split with a `split` attribute or `num_outputs`, Slice with negative bounds and axes,
Gemm with transB=0, MatMul on channels-last tensors, Resize by `sizes`, Pad, PRelu, Sum/Mean
of three inputs, Concat on axis -3, Squeeze before Gemm), across opsets 11 to 18 — and the
shapes real exporters write: dynamic dims as a dim_param, `dim_value: -1` (Paddle2ONNX), 0 or
unset on the input, the output and value_info; Reshape targets with -1 and 0 (copy); Resize
sizes computed from Shape; a flatten of the dynamic batch through Shape/Gather/Concat.

`graphs()` draws (opset, ModelProto); the model has one input `x` (1, C, S, S) whose batch, and
sometimes its spatial dims, may be declared dynamic: `input_shapes(model)` gives the static
shape to load it with (--input-shape).
"""

from __future__ import annotations

import numpy as np
import onnx
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

OPSETS = (11, 13, 17, 18)
INT64_MAX = np.iinfo(np.int64).max


class Builder:
    def __init__(self, opset: int, rng: np.random.Generator):
        self.opset = opset
        self.rng = rng
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def fresh(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def const(self, arr, prefix="c") -> str:
        name = self.fresh(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def weight(self, *shape, scale=0.5) -> str:
        return self.const((self.rng.standard_normal(shape) * scale).astype(np.float32), "w")

    def ints(self, values) -> str:
        return self.const(np.asarray(values, dtype=np.int64), "i")

    def node(self, op: str, inputs, n_out: int = 1, **attrs) -> list[str]:
        outs = [self.fresh(op.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op, list(inputs), outs, name=self.fresh(f"n_{op}_"), **attrs))
        return outs

    def one(self, op, inputs, **attrs) -> str:
        return self.node(op, inputs, **attrs)[0]


# ---- ops: each takes (draw, builder, x, c, s) and returns (x, c, s) -----------------------
def conv(draw, b: Builder, x, c, s, cout=None, kernel=None, keep_size=False):
    """Conv (kernel 1/3/5, sometimes dilated, strided or padded unevenly) → BN? → activation."""
    cout = cout or draw(st.integers(2, 12))
    k = kernel or draw(st.sampled_from([1, 3, 3, 5]))
    dilation = 2 if k == 3 and draw(st.integers(0, 3)) == 0 else 1
    stride = 2 if not keep_size and s >= 4 and draw(st.integers(0, 3)) == 0 else 1
    pad = dilation * (k // 2)
    extra = 1 if not keep_size and draw(st.integers(0, 5)) == 0 else 0
    inputs = [x, b.weight(cout, c, k, k)]
    if draw(st.booleans()):
        inputs.append(b.weight(cout))
    y = b.one("Conv", inputs, pads=[pad, pad, pad + extra, pad + extra], kernel_shape=[k, k],
              strides=[stride, stride], dilations=[dilation, dilation])
    s = (s + 2 * pad + extra - dilation * (k - 1) - 1) // stride + 1
    if draw(st.booleans()):
        r = b.rng
        y = b.one("BatchNormalization", [y, b.const((r.random(cout) + 0.5).astype(np.float32)),
                                         b.weight(cout), b.weight(cout, scale=0.2),
                                         b.const((r.random(cout) + 0.5).astype(np.float32))])
    return activation(draw, b, y, cout, s)


def activation(draw, b: Builder, x, c, s):
    kinds = ["Relu", "LeakyRelu", "HardSigmoid", "Clip", "Sigmoid", "Tanh", "PRelu", "Elu", "none"]
    if b.opset >= 14:
        kinds.append("HardSwish")
    kind = draw(st.sampled_from(kinds))
    if kind == "none":
        return x, c, s
    if kind == "LeakyRelu":
        return b.one(kind, [x], alpha=0.1), c, s
    if kind == "Clip":
        return b.one(kind, [x, b.const(np.float32(0.0)), b.const(np.float32(6.0))]), c, s
    if kind == "PRelu":   # a per-channel slope: a THROUGH constant of shape (C, 1, 1)
        return b.one(kind, [x, b.weight(c, 1, 1)]), c, s
    return b.one(kind, [x]), c, s


def residual(draw, b: Builder, x, c, s):
    how = draw(st.sampled_from(["Add", "Sub", "Mul", "Max", "Sum", "Mean"]))
    y1, _, _ = conv(draw, b, x, c, s, cout=c, keep_size=True)
    inputs = [x, y1]
    if how in ("Sum", "Mean", "Max") and draw(st.booleans()):
        y2, _, _ = conv(draw, b, x, c, s, cout=c, keep_size=True)
        inputs.append(y2)
    return b.one(how, inputs), c, s


def affine(draw, b: Builder, x, c, s):
    shape = draw(st.sampled_from([(c, 1, 1), (1, c, 1, 1)]))
    y = b.one("Mul", [x, b.weight(*shape)])
    return b.one("Add", [b.weight(*shape), y]), c, s


def split_concat(draw, b: Builder, x, c, s):
    if c < 4:
        return conv(draw, b, x, c, s)
    equal = c % 2 == 0 and draw(st.booleans())
    first = c // 2 if equal else draw(st.integers(1, c - 1))
    sizes = [first, c - first]
    axis = draw(st.sampled_from([1, -3]))
    if b.opset < 13:
        parts = b.node("Split", [x], 2, axis=axis, split=sizes)
    elif b.opset >= 18 and equal and draw(st.booleans()):
        parts = b.node("Split", [x], 2, axis=axis, num_outputs=2)
    else:
        parts = b.node("Split", [x, b.ints(sizes)], 2, axis=axis)
    which = draw(st.integers(0, 1))
    cout = draw(st.integers(1, 10))
    parts[which], _, _ = conv(draw, b, parts[which], sizes[which], s, cout=cout, keep_size=True)
    sizes[which] = cout
    if draw(st.booleans()):
        parts = parts[::-1]
        sizes = sizes[::-1]
    return b.one("Concat", parts, axis=draw(st.sampled_from([1, -3]))), sum(sizes), s


def slice_channels(draw, b: Builder, x, c, s):
    if c < 3:
        return conv(draw, b, x, c, s)
    begin = draw(st.integers(0, c - 2))
    end = draw(st.integers(begin + 2, c))
    starts = begin - c if draw(st.booleans()) else begin
    ends = INT64_MAX if end == c and draw(st.booleans()) else (end - c if end < c and draw(st.booleans()) else end)
    inputs = [x, b.ints([starts]), b.ints([ends]), b.ints([draw(st.sampled_from([1, -3]))])]
    if draw(st.booleans()):
        inputs.append(b.ints([1]))
    return b.one("Slice", inputs), end - begin, s


def pad_conv(draw, b: Builder, x, c, s):
    pads = b.ints([0, 0, 1, 1, 0, 0, 1, 1])
    y = b.one("Pad", [x, pads], mode="constant")
    cout = draw(st.integers(2, 12))
    return b.one("Conv", [y, b.weight(cout, c, 3, 3)], kernel_shape=[3, 3]), cout, s


def resize(draw, b: Builder, x, c, s):
    if s > 4:
        return pool(draw, b, x, c, s)
    roi = b.const(np.zeros(0, dtype=np.float32)) if b.opset < 13 else ""
    # opset 18 may name the resized axes: scales/sizes then hold one entry per named axis
    axes = draw(st.sampled_from([[2, 3], [-2, -1], None])) if b.opset >= 18 else None
    extra = {} if axes is None else {"axes": axes}
    if draw(st.booleans()):
        scales = b.const(np.array([2, 2] if axes else [1, 1, 2, 2], dtype=np.float32))
        y = b.one("Resize", [x, roi, scales], mode="nearest", **extra)
    else:
        empty = b.const(np.zeros(0, dtype=np.float32))
        sizes = b.ints([2 * s, 2 * s] if axes else [1, c, 2 * s, 2 * s])
        y = b.one("Resize", [x, roi if roi else empty, empty, sizes], mode="nearest", **extra)
    return y, c, 2 * s


def conv_transpose(draw, b: Builder, x, c, s):
    if s > 4:
        return pool(draw, b, x, c, s)
    cout = draw(st.integers(2, 10))
    inputs = [x, b.weight(c, cout, 2, 2)] + ([b.weight(cout)] if draw(st.booleans()) else [])
    return b.one("ConvTranspose", inputs, kernel_shape=[2, 2], strides=[2, 2]), cout, 2 * s


def pool(draw, b: Builder, x, c, s):
    if s < 4:
        return activation(draw, b, x, c, s)
    op = draw(st.sampled_from(["MaxPool", "AveragePool"]))
    return b.one(op, [x], kernel_shape=[2, 2], strides=[2, 2]), c, s // 2


def channels_last_linear(draw, b: Builder, x, c, s):
    """NCHW → NHWC → MatMul over channels (+ bias) → NCHW."""
    cout = draw(st.integers(2, 10))
    t = b.one("Transpose", [x], perm=[0, 2, 3, 1])
    y = b.one("Add", [b.one("MatMul", [t, b.weight(c, cout)]), b.weight(cout)])
    return b.one("Transpose", [y], perm=[0, 3, 1, 2]), cout, s


def squeeze_excite(draw, b: Builder, x, c, s):
    mid = draw(st.integers(2, max(2, c)))
    g = b.one("GlobalAveragePool", [x])
    h = b.one("Relu", [b.one("Conv", [g, b.weight(mid, c, 1, 1), b.weight(mid)])])
    gate = b.one(draw(st.sampled_from(["Sigmoid", "HardSigmoid"])),
                 [b.one("Conv", [h, b.weight(c, mid, 1, 1), b.weight(c)])])
    return b.one("Mul", [x, gate]), c, s


def reshape_roundtrip(draw, b: Builder, x, c, s):
    """[N, C, S, S] → [N, C, S*S] (→ a softmax over positions) → [N, C, S, S], with targets as
    exporters write them: 0 copies a dim, -1 infers one, or every count spelled out."""
    there = draw(st.sampled_from([[0, c, -1], [0, 0, -1], [-1, c, s * s], [1, -1, s * s], [0, c, s * s]]))
    y = b.one("Reshape", [x, b.ints(there)])
    if draw(st.booleans()):
        y = b.one("Softmax", [y], axis=-1)
    back = draw(st.sampled_from([[0, 0, s, s], [-1, c, s, s], [1, -1, s, s], [0, c, -1, s]]))
    return b.one("Reshape", [y, b.ints(back)]), c, s


def resize_shape_sizes(draw, b: Builder, x, c, s):
    """F.interpolate(size=...) as torch exports it for a dynamic batch: sizes = Concat(Shape(x)[:2],
    [2S, 2S]); the frontend folds it to a constant once shapes are static."""
    if s > 4:
        return pool(draw, b, x, c, s)
    head_dims = b.one("Slice", [b.one("Shape", [x]), b.ints([0]), b.ints([2])])
    sizes = b.one("Concat", [head_dims, b.ints([2 * s, 2 * s])], axis=0)
    empty = b.const(np.zeros(0, dtype=np.float32))
    roi = b.const(np.zeros(0, dtype=np.float32)) if b.opset < 13 else ""
    return b.one("Resize", [x, roi if roi else empty, empty, sizes], mode="nearest"), c, 2 * s


OPS = [conv, conv, activation, residual, affine, split_concat, split_concat, slice_channels,
       pad_conv, resize, conv_transpose, pool, channels_last_linear, squeeze_excite,
       reshape_roundtrip, resize_shape_sizes]


# ---- heads ----------------------------------------------------------------------------------
def _squeeze(b: Builder, x, axes):
    if b.opset < 13:
        return b.one("Squeeze", [x], axes=axes)
    return b.one("Squeeze", [x, b.ints(axes)])


def head(draw, b: Builder, x, c, s) -> str:
    kind = draw(st.sampled_from(["conv", "gap_gemm", "flatten_mlp", "reshape_matmul", "squeeze_gemm",
                                 "shape_flatten_gemm"]))
    n_out = draw(st.integers(1, 4))
    if kind == "conv":
        return b.one("Conv", [x, b.weight(n_out, c, 1, 1)])
    if kind == "gap_gemm":
        f = b.one("Flatten", [b.one("GlobalAveragePool", [x])])
        return _gemm(draw, b, f, c, n_out)
    if kind == "squeeze_gemm":
        return _gemm(draw, b, _squeeze(b, b.one("GlobalAveragePool", [x]), [2, 3]), c, n_out)
    if kind == "reshape_matmul":   # a flatten of the batch as exporters spell it
        target = draw(st.sampled_from([[1, -1], [0, -1], [-1, c * s * s]]))
        f = b.one("Reshape", [x, b.ints(target)])
        return b.one("Add", [b.one("MatMul", [f, b.weight(c * s * s, n_out)]), b.weight(n_out)])
    if kind == "shape_flatten_gemm":   # x.view(x.size(0), -1) as torch exports it
        batch = b.one("Gather", [b.one("Shape", [x]), b.const(np.int64(0))], axis=0)
        n = b.one("Unsqueeze", [batch], axes=[0]) if b.opset < 13 else b.one("Unsqueeze", [batch, b.ints([0])])
        f = b.one("Reshape", [x, b.one("Concat", [n, b.ints([-1])], axis=0)])
        return _gemm(draw, b, f, c * s * s, n_out)
    hidden = draw(st.integers(2, 12))
    f = b.one("Flatten", [x], axis=1)
    h = b.one("Relu", [_gemm(draw, b, f, c * s * s, hidden)])
    return _gemm(draw, b, h, hidden, n_out)


def _gemm(draw, b: Builder, x, k, n) -> str:
    trans = draw(st.booleans())
    w = b.weight(n, k) if trans else b.weight(k, n)
    bias = draw(st.sampled_from(["none", "vector", "row"]))
    inputs = [x, w] + ([] if bias == "none" else [b.weight(n) if bias == "vector" else b.weight(1, n)])
    return b.one("Gemm", inputs, transB=int(trans))


@st.composite
def graphs(draw, max_ops: int = 6) -> tuple[int, onnx.ModelProto]:
    opset = draw(st.sampled_from(OPSETS))
    b = Builder(opset, np.random.default_rng(draw(st.integers(0, 2**16))))
    c0, size = draw(st.integers(1, 4)), draw(st.sampled_from([4, 8]))
    x, c, s = "x", c0, size
    x, c, s = conv(draw, b, x, c, s)
    for _ in range(draw(st.integers(1, max_ops))):
        x, c, s = draw(st.sampled_from(OPS))(draw, b, x, c, s)
        if c > 40:   # keep graphs tiny
            x, c, s = conv(draw, b, x, c, s)
    y = head(draw, b, x, c, s)
    graph = helper.make_graph(b.nodes, "random",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c0, size, size])],
                              [helper.make_tensor_value_info(y, TensorProto.FLOAT, None)], b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    # the checker wants the output's shape: take it from shape inference, or from a run when
    # inference cannot follow the shape arithmetic (a Reshape target built from Shape)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    model.graph.output[0].CopyFrom(inferred.graph.output[0])
    if not model.graph.output[0].type.tensor_type.HasField("shape"):
        model.graph.output[0].CopyFrom(helper.make_tensor_value_info(y, TensorProto.FLOAT, _run_shape(model, c0, size)))
    _declare_dynamic(draw, model, inferred, (1, c0, size, size))
    return opset, model


def _run_shape(model: onnx.ModelProto, c0: int, size: int) -> list[int]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return list(sess.run(None, {"x": np.zeros((1, c0, size, size), np.float32)})[0].shape)


DYNAMIC = ("static", "param", "-1", "0", "unset")


def _set_dynamic(dim, style: str, name: str) -> None:
    if style == "static":
        return
    dim.Clear()
    if style == "param":
        dim.dim_param = name
    elif style in ("-1", "0"):
        dim.dim_value = int(style)


def _declare_dynamic(draw, model: onnx.ModelProto, inferred: onnx.ModelProto, shape) -> None:
    """Declare the batch dim (and sometimes the spatial ones) dynamic the way exporters do, on the
    input, the output and some value_info; record the static shape to load with."""
    batch = draw(st.sampled_from(DYNAMIC))
    spatial = draw(st.sampled_from(DYNAMIC)) if draw(st.booleans()) else "static"
    x = model.graph.input[0].type.tensor_type.shape.dim
    _set_dynamic(x[0], batch, "batch")
    _set_dynamic(x[2], spatial, "height")
    _set_dynamic(x[3], spatial, "width")
    declared = [model.graph.output[0]]
    if draw(st.booleans()):   # exporters also write intermediate shapes, with the same dynamic batch
        declared += [vi for vi in inferred.graph.value_info if vi.type.tensor_type.shape.dim][::2]
        model.graph.value_info.extend(declared[1:])
        declared = [model.graph.output[0], *model.graph.value_info]
    for vi in declared:
        dims = vi.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value") and dims[0].dim_value == 1:
            _set_dynamic(dims[0], batch, "batch")
    entry = model.metadata_props.add()
    entry.key, entry.value = "input_shape", "x".join(map(str, shape))


def input_shape(model: onnx.ModelProto) -> str:
    """The static input shape to load a generated model with, as --input-shape takes it."""
    return next(p.value for p in model.metadata_props if p.key == "input_shape")


def input_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    return {"x": tuple(int(d) for d in input_shape(model).split("x"))}
