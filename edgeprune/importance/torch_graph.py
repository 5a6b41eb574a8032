"""An ONNX graph run by PyTorch, so that gradients flow to its initializers.

A small interpreter of the ops the channel analysis knows (onnx2torch would do this, but
it requires torchvision, which does not import beside this torch). Float initializers
become tensors the caller may mark `requires_grad`; integer ones (shapes, axes, indices)
stay numpy and are read as attributes. An op it does not know, or one that fails when run,
is a UsageError naming the node — the caller can then give the PyTorch model instead.

Exporters often hard-code batch 1 in Reshape/Expand constants (YOLO exports reshape to
`[1, 4, 16, anchors]`). A graph whose inputs declare batch 1 is therefore checked once on
the first batch of more than one sample, against running its first samples one by one:
run as it is, if that gives the same outputs; else with the leading 1 of constant
Reshape/Expand shapes read as the batch size, if that does; else sample by sample (the same
parameters, so gradients add up as for a batch; many small ops, so much slower).
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

from ..errors import UsageError

_FLOAT_TYPES = (np.float16, np.float32, np.float64)


class TorchGraph:
    def __init__(self, proto: onnx.ModelProto):
        self.graph = proto.graph
        self.consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in self.graph.initializer}
        self.params: dict[str, torch.Tensor] = {
            name: torch.from_numpy(np.array(arr, dtype=np.float32))
            for name, arr in self.consts.items() if arr.dtype.type in _FLOAT_TYPES}
        self.input_names = [i.name for i in self.graph.input if i.name not in self.consts]
        self.output_names = [o.name for o in self.graph.output]
        for node in self.graph.node:
            if node.domain in ("", "ai.onnx") and node.op_type in _REFUSED:
                raise UsageError(f"taylor: cannot run {node.op_type} (node '{node.name}'): "
                                 f"{_REFUSED[node.op_type]}")
            if node.domain not in ("", "ai.onnx") or node.op_type not in OPS:
                raise UsageError(f"taylor: cannot differentiate {node.op_type} (node '{node.name}') "
                                 f"in the ONNX model; give the PyTorch model instead")

        # inputs declaring batch 1: the graph may hard-code it (decided on the first batch)
        self.batch_one = any(_dim0(i) == 1 for i in self.graph.input if i.name in self.input_names)
        self.mode: str | None = None if self.batch_one else BATCH
        self._rebatch = 0     # REBATCH: the batch size written over constant shapes' leading 1

    @property
    def per_sample(self) -> bool | None:
        return None if self.mode is None else self.mode == PER_SAMPLE

    def __call__(self, feeds: Mapping[str, torch.Tensor],
                 taps: dict[str, list[torch.Tensor]] | None = None) -> list[torch.Tensor]:
        """The graph's outputs. `taps` (tensor name -> list) gets each named intermediate
        tensor appended, one piece per run (several when the graph runs sample by sample):
        the pieces themselves, so gradients can be taken with respect to them."""
        n = _batch(feeds)
        if n <= 1:
            return self._run(feeds, taps=taps)
        if self.mode is None:
            self.mode = next((m for m in (BATCH, REBATCH) if self._batch_runs(feeds, m)), PER_SAMPLE)
        if self.mode != PER_SAMPLE:
            return self._run(feeds, n if self.mode == REBATCH else 0, taps)
        runs = [self._run({k: v[i:i + 1] for k, v in feeds.items()}, taps=taps) for i in range(n)]
        return [torch.cat([_t(r[j]) for r in runs], dim=0) for j in range(len(self.output_names))]

    def _batch_runs(self, feeds: Mapping[str, torch.Tensor], mode: str) -> bool:
        """Whether running a batch at once (in `mode`) gives what running its samples one by
        one gives."""
        with torch.no_grad():
            try:
                whole = self._run(feeds, _batch(feeds) if mode == REBATCH else 0)
            except UsageError:
                return False
            for i in range(min(2, _batch(feeds))):
                one = self._run({k: v[i:i + 1] for k, v in feeds.items()})
                for w, o in zip(whole, one):
                    w, o = _t(w), _t(o)
                    if w.dim() == 0 or w.shape[0] != _batch(feeds) or w.shape[1:] != o.shape[1:]:
                        return False
                    if not torch.allclose(w[i:i + 1].double(), o.double(), rtol=1e-3,
                                          atol=1e-4 * max(1.0, float(o.abs().max()) if o.numel() else 1.0)):
                        return False
        return True

    def _run(self, feeds: Mapping[str, torch.Tensor], rebatch: int = 0,
             taps: dict[str, list[torch.Tensor]] | None = None) -> list[torch.Tensor]:
        """The graph's outputs; with `rebatch`, the leading 1 of every constant Reshape/Expand
        shape (a batch hard-coded by the exporter) reads as that batch size."""
        env: dict[str, object] = dict(self.params)
        env.update(feeds)
        for node in self.graph.node:
            args = [None if not n else env[n] if n in env else _t(self.consts[n]) for n in node.input]
            if rebatch and node.op_type in _SHAPED and node.input[1] in self.consts \
                    and args[1].dim() == 1 and args[1].numel() and int(args[1][0]) == 1:
                args[1] = torch.cat([torch.tensor([rebatch], dtype=args[1].dtype), args[1][1:]])
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            try:
                out = OPS[node.op_type](args, attrs)
            except UsageError as e:
                raise UsageError(f"{e} (node '{node.name}')") from None
            except Exception as e:  # noqa: BLE001 - any failure of an op is the model's, named
                detail = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
                raise UsageError(f"taylor: cannot run {node.op_type} (node '{node.name}') in PyTorch: "
                                 f"{detail}; give the PyTorch model instead, or --criterion l1") from None
            outs = out if isinstance(out, (list, tuple)) else [out]
            for name, value in zip(node.output, outs):
                if name:
                    env[name] = value
        for name, pieces in (taps or {}).items():
            pieces.append(env[name])
        return [env[n] for n in self.output_names]


BATCH, REBATCH, PER_SAMPLE = "batch", "rebatch", "per-sample"
_SHAPED = ("Reshape", "Expand")   # ops whose second input is a shape that may hard-code batch 1


def _dim0(value_info) -> int | None:
    dims = value_info.type.tensor_type.shape.dim
    return dims[0].dim_value if dims and dims[0].HasField("dim_value") else None


def _batch(feeds: Mapping[str, torch.Tensor]) -> int:
    first = next(iter(feeds.values()), None)
    return int(first.shape[0]) if first is not None and first.dim() else 1


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _t(x) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    arr = np.array(x)
    return torch.from_numpy(arr.astype(np.float32) if arr.dtype == np.float64 else arr)


def _ints(x) -> list[int]:
    return [int(v) for v in _np(x).reshape(-1)]


def _same_pads(attrs, x, kernel, strides, dilations) -> list[int]:
    """ONNX pads (begin..., end...) with auto_pad resolved."""
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    n = len(kernel)
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for i in range(n):
            size = x.shape[2 + i]
            out = -(-size // strides[i])
            total = max(0, (out - 1) * strides[i] + dilations[i] * (kernel[i] - 1) + 1 - size)
            small, big = total // 2, total - total // 2
            b, e = (small, big) if auto == "SAME_UPPER" else (big, small)
            begin.append(b)
            end.append(e)
        return begin + end
    if auto == "VALID":
        return [0] * (2 * n)
    return list(attrs.get("pads", [0] * (2 * n)))


def _padded(x, pads, value=0.0):
    n = len(pads) // 2
    if not any(pads):
        return x
    torch_pads = []
    for i in reversed(range(n)):
        torch_pads += [pads[i], pads[i + n]]
    return F.pad(x, torch_pads, value=value)


def _conv(args, attrs):
    x, w = args[0], _t(args[1])
    b = _t(args[2]) if len(args) > 2 and args[2] is not None else None
    k = list(attrs.get("kernel_shape", w.shape[2:]))
    strides = list(attrs.get("strides", [1] * len(k)))
    dil = list(attrs.get("dilations", [1] * len(k)))
    x = _padded(x, _same_pads(attrs, x, k, strides, dil))
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[len(k)]
    return conv(x, w, b, stride=strides, dilation=dil, groups=int(attrs.get("group", 1)))


def _conv_transpose(args, attrs):
    x, w = args[0], _t(args[1])
    b = _t(args[2]) if len(args) > 2 and args[2] is not None else None
    k = list(attrs.get("kernel_shape", w.shape[2:]))
    if len(k) != 2 or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or "output_shape" in attrs:
        raise UsageError("taylor: ConvTranspose with auto_pad/output_shape or not 2-D is not supported")
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    if pads[0] != pads[2] or pads[1] != pads[3]:
        raise UsageError("taylor: ConvTranspose with asymmetric pads is not supported")
    return F.conv_transpose2d(x, w, b, stride=list(attrs.get("strides", [1, 1])), padding=pads[:2],
                              output_padding=list(attrs.get("output_padding", [0, 0])),
                              groups=int(attrs.get("group", 1)),
                              dilation=list(attrs.get("dilations", [1, 1])))


def _batchnorm(args, attrs):
    x, scale, bias, mean, var = args[0], *(_t(a) for a in args[1:5])
    return F.batch_norm(x, mean, var, scale, bias, training=False, eps=float(attrs.get("epsilon", 1e-5)))


def _pool(kind):
    def run(args, attrs):
        x = args[0]
        k = list(attrs["kernel_shape"])
        strides = list(attrs.get("strides", [1] * len(k)))
        dil = list(attrs.get("dilations", [1] * len(k)))
        pads = _same_pads(attrs, x, k, strides, dil)
        if attrs.get("ceil_mode", 0):
            raise UsageError("taylor: pooling with ceil_mode is not supported")
        if kind == "max":
            x = _padded(x, pads, value=float("-inf"))
            return F.max_pool2d(x, k, strides, dilation=dil)
        if attrs.get("count_include_pad", 0) or not any(pads):
            return F.avg_pool2d(_padded(x, pads), k, strides)
        ones = _padded(torch.ones_like(x[:1, :1]), pads)
        return F.avg_pool2d(_padded(x, pads), k, strides, divisor_override=1) / \
            F.avg_pool2d(ones, k, strides, divisor_override=1)
    return run


def _gemm(args, attrs):
    a, b = _t(args[0]), _t(args[1])
    if attrs.get("transA", 0):
        a = a.t()
    if attrs.get("transB", 0):
        b = b.t()
    y = float(attrs.get("alpha", 1.0)) * (a @ b)
    if len(args) > 2 and args[2] is not None:
        y = y + float(attrs.get("beta", 1.0)) * _t(args[2])
    return y


def _clip(args, attrs):
    x = args[0]
    lo = args[1] if len(args) > 1 and args[1] is not None else attrs.get("min")
    hi = args[2] if len(args) > 2 and args[2] is not None else attrs.get("max")
    lo = None if lo is None else float(_np(lo))
    hi = None if hi is None else float(_np(hi))
    return torch.clamp(x, lo, hi)


def _flatten(args, attrs):
    x = args[0]
    axis = int(attrs.get("axis", 1)) % (x.dim() + 1)
    return x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), -1)


def _reshape(args, attrs):
    x, shape = args[0], _ints(args[1])
    shape = [x.shape[i] if s == 0 and not attrs.get("allowzero", 0) else s for i, s in enumerate(shape)]
    return x.reshape(shape)


def _transpose(args, attrs):
    x = args[0]
    return x.permute(*attrs.get("perm", list(range(x.dim()))[::-1]))


def _concat(args, attrs):
    return torch.cat([_t(a) for a in args], dim=int(attrs["axis"]))


def _split(args, attrs):
    x = args[0]
    axis = int(attrs.get("axis", 0))
    sizes = _ints(args[1]) if len(args) > 1 and args[1] is not None else attrs.get("split")
    if sizes is None:
        n = int(attrs["num_outputs"])
        size = -(-x.shape[axis] // n)
        sizes = [min(size, x.shape[axis] - i * size) for i in range(n)]
    return list(torch.split(x, list(sizes), dim=axis))


def _slice(args, attrs):
    x = args[0]
    starts, ends = _ints(args[1]), _ints(args[2])
    axes = _ints(args[3]) if len(args) > 3 and args[3] is not None else list(range(len(starts)))
    steps = _ints(args[4]) if len(args) > 4 and args[4] is not None else [1] * len(starts)
    index = [slice(None)] * x.dim()
    for s, e, a, st in zip(starts, ends, axes, steps):
        if st < 0:
            raise UsageError("taylor: Slice with a negative step is not supported")
        index[a % x.dim()] = slice(*slice(s, e, st).indices(x.shape[a % x.dim()]))
    return x[tuple(index)]


def _gather(args, attrs):
    x, idx = args[0], _np(args[1]).astype(np.int64)
    axis = int(attrs.get("axis", 0)) % x.dim()
    idx = np.where(idx < 0, idx + x.shape[axis], idx)
    out = torch.index_select(x, axis, torch.from_numpy(idx.reshape(-1)))
    return out.reshape((*x.shape[:axis], *idx.shape, *x.shape[axis + 1:]))


def _pad(args, attrs):
    x = args[0]
    mode = attrs.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    pads = _ints(args[1]) if len(args) > 1 and args[1] is not None else list(attrs["pads"])
    value = float(_np(args[2])) if len(args) > 2 and args[2] is not None else 0.0
    if len(args) > 3 and args[3] is not None:
        axes = [a % x.dim() for a in _ints(args[3])]
        full = [0] * (2 * x.dim())
        for k, a in enumerate(axes):
            full[a], full[a + x.dim()] = pads[k], pads[k + len(axes)]
        pads = full
    if mode == "constant":
        return _padded(x, pads, value)
    n = x.dim()
    torch_pads = []
    for i in reversed(range(2, n)):
        torch_pads += [pads[i], pads[i + n]]
    if any(pads[:2]) or any(pads[n:n + 2]):
        raise UsageError(f"taylor: Pad mode {mode} on batch or channel axes is not supported")
    return F.pad(x, torch_pads, mode={"reflect": "reflect", "edge": "replicate"}[mode])


def _resize(args, attrs):
    x = args[0]
    mode = attrs.get("mode", b"nearest")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    sizes = _ints(args[3]) if len(args) > 3 and args[3] is not None and _np(args[3]).size else None
    scales = _np(args[2]).reshape(-1) if len(args) > 2 and args[2] is not None and _np(args[2]).size else None
    if sizes is None:
        sizes = [int(np.floor(d * s)) for d, s in zip(x.shape, scales)]
    if mode == "nearest":
        return F.interpolate(x, size=sizes[2:], mode="nearest")
    ct = attrs.get("coordinate_transformation_mode", b"half_pixel")
    ct = ct.decode() if isinstance(ct, bytes) else ct
    return F.interpolate(x, size=sizes[2:], mode="bilinear", align_corners=ct == "align_corners")


def _reduce(fn):
    def run(args, attrs):
        x = args[0]
        axes = attrs.get("axes")
        if axes is None and len(args) > 1 and args[1] is not None:
            axes = _ints(args[1])
        if not axes:
            axes = list(range(x.dim()))
        return fn(x, dim=[a % x.dim() for a in axes], keepdim=bool(attrs.get("keepdims", 1)))
    return run


def _squeeze(args, attrs):
    x = args[0]
    axes = _ints(args[1]) if len(args) > 1 and args[1] is not None else attrs.get("axes")
    if axes is None:
        return x.squeeze()
    for a in sorted((a % x.dim() for a in axes), reverse=True):
        x = x.squeeze(a)
    return x


def _unsqueeze(args, attrs):
    x = args[0]
    axes = _ints(args[1]) if len(args) > 1 and args[1] is not None else attrs.get("axes")
    rank = x.dim() + len(axes)
    for a in sorted(a % rank for a in axes):
        x = x.unsqueeze(a)
    return x


def _layernorm(args, attrs):
    x, scale = args[0], _t(args[1])
    bias = _t(args[2]) if len(args) > 2 and args[2] is not None else None
    axis = int(attrs.get("axis", -1)) % x.dim()
    return F.layer_norm(x, x.shape[axis:], scale, bias, eps=float(attrs.get("epsilon", 1e-5)))


def _binary(fn):
    return lambda args, attrs: fn(_t(args[0]), _t(args[1]))


def _div(args, attrs):
    a, b = _t(args[0]), _t(args[1])
    if not a.is_floating_point() and not b.is_floating_point():
        return torch.div(a, b, rounding_mode="trunc")   # ONNX integer Div truncates
    return a / b


_ONNX_DTYPES = {1: torch.float32, 2: torch.uint8, 3: torch.int8, 5: torch.int16, 6: torch.int32,
                7: torch.int64, 9: torch.bool, 10: torch.float16, 11: torch.float64}


def _dtype(code) -> torch.dtype:
    if int(code) not in _ONNX_DTYPES:
        raise UsageError(f"taylor: data type {code} is not supported")
    return _ONNX_DTYPES[int(code)]


def _cast(args, attrs):
    x = _t(args[0])
    to = _dtype(attrs["to"])
    return x.to(to) if not (x.is_floating_point() and to.is_floating_point) else x.to(torch.float32)


def _constant(args, attrs):
    if "value" in attrs:
        return _t(numpy_helper.to_array(attrs["value"]))
    for key in ("value_float", "value_int"):
        if key in attrs:
            return torch.tensor(attrs[key])
    for key in ("value_floats", "value_ints"):
        if key in attrs:
            return torch.tensor(list(attrs[key]))
    raise UsageError("taylor: a Constant without a numeric value is not supported")


def _constant_of_shape(args, attrs):
    value = _t(numpy_helper.to_array(attrs["value"])) if "value" in attrs else torch.tensor([0.0])
    return torch.full(_ints(args[0]), value.reshape(-1)[0].item(), dtype=value.dtype)


def _expand(args, attrs):
    x = _t(args[0])
    shape = torch.broadcast_shapes(tuple(x.shape), tuple(_ints(args[1])))
    return x.expand(shape)


def _tile(args, attrs):
    return _t(args[0]).repeat(*_ints(args[1]))


def _range(args, attrs):
    start, limit, delta = (_t(a).reshape(()) for a in args[:3])
    return torch.arange(start.item(), limit.item(), delta.item(),
                        dtype=torch.promote_types(start.dtype, delta.dtype))


def _where(args, attrs):
    return torch.where(_t(args[0]).bool(), _t(args[1]), _t(args[2]))


def _prelu(args, attrs):
    x, slope = _t(args[0]), _t(args[1])
    return torch.where(x >= 0, x, x * slope)


def _instance_norm(args, attrs):
    x, scale, bias = args[0], _t(args[1]), _t(args[2])
    return F.instance_norm(x, weight=scale, bias=bias, eps=float(attrs.get("epsilon", 1e-5)))


def _depth_to_space(args, attrs):
    mode = attrs.get("mode", b"DCR")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    x, b = args[0], int(attrs["blocksize"])
    if mode == "CRD":
        return F.pixel_shuffle(x, b)
    n, c, h, w = x.shape
    x = x.reshape(n, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2)
    return x.reshape(n, c // (b * b), h * b, w * b)


def _space_to_depth(args, attrs):
    x, b = args[0], int(attrs["blocksize"])
    n, c, h, w = x.shape
    x = x.reshape(n, c, h // b, b, w // b, b).permute(0, 3, 5, 1, 2, 4)
    return x.reshape(n, c * b * b, h // b, w // b)


def _argmax(fn):
    def run(args, attrs):
        x = _t(args[0])
        axis = int(attrs.get("axis", 0))
        out = fn(x, dim=axis, keepdim=bool(attrs.get("keepdims", 1)))
        return out
    return run


def _topk(args, attrs):
    x, k = _t(args[0]), _ints(args[1])[0]
    values, indices = torch.topk(x, k, dim=int(attrs.get("axis", -1)), largest=bool(attrs.get("largest", 1)),
                                 sorted=bool(attrs.get("sorted", 1)))
    return [values, indices]


def _cumsum(args, attrs):
    if attrs.get("exclusive", 0) or attrs.get("reverse", 0):
        raise UsageError("taylor: CumSum with exclusive or reverse is not supported")
    return torch.cumsum(_t(args[0]), dim=_ints(args[1])[0])


def _einsum(args, attrs):
    eq = attrs["equation"]
    return torch.einsum(eq.decode() if isinstance(eq, bytes) else eq, *map(_t, args))




def _softmax(fn):
    return lambda args, attrs: fn(args[0], dim=int(attrs.get("axis", -1)))


OPS: dict[str, Callable] = {
    "Conv": _conv, "ConvTranspose": _conv_transpose, "BatchNormalization": _batchnorm,
    "Gemm": _gemm, "MatMul": _binary(torch.matmul),
    "Add": _binary(torch.add), "Sub": _binary(torch.sub), "Mul": _binary(torch.mul),
    "Div": _div, "Pow": _binary(torch.pow), "Mod": _binary(torch.fmod),
    "Max": lambda a, k: torch.stack(torch.broadcast_tensors(*map(_t, a))).amax(0),
    "Min": lambda a, k: torch.stack(torch.broadcast_tensors(*map(_t, a))).amin(0),
    "Relu": lambda a, k: F.relu(a[0]), "Sigmoid": lambda a, k: torch.sigmoid(a[0]),
    "Tanh": lambda a, k: torch.tanh(a[0]), "Erf": lambda a, k: torch.erf(a[0]),
    "Sqrt": lambda a, k: torch.sqrt(a[0]), "Exp": lambda a, k: torch.exp(a[0]),
    "Neg": lambda a, k: -a[0], "Abs": lambda a, k: torch.abs(a[0]),
    "Reciprocal": lambda a, k: 1.0 / a[0],
    "Identity": lambda a, k: a[0], "Dropout": lambda a, k: a[0],
    "LeakyRelu": lambda a, k: F.leaky_relu(a[0], float(k.get("alpha", 0.01))),
    "HardSigmoid": lambda a, k: torch.clamp(float(k.get("alpha", 0.2)) * a[0] + float(k.get("beta", 0.5)), 0, 1),
    "HardSwish": lambda a, k: F.hardswish(a[0]),
    "Gelu": lambda a, k: F.gelu(a[0], approximate="tanh" if k.get("approximate", b"none") in (b"tanh", "tanh") else "none"),
    "Clip": _clip,
    "GlobalAveragePool": lambda a, k: a[0].mean(dim=tuple(range(2, a[0].dim())), keepdim=True),
    "GlobalMaxPool": lambda a, k: a[0].amax(dim=tuple(range(2, a[0].dim())), keepdim=True),
    "MaxPool": _pool("max"), "AveragePool": _pool("avg"),
    "Flatten": _flatten, "Reshape": _reshape, "Transpose": _transpose, "Concat": _concat,
    "Split": _split, "Slice": _slice, "Gather": _gather, "Pad": _pad, "Resize": _resize,
    "Squeeze": _squeeze, "Unsqueeze": _unsqueeze,
    "ReduceMean": _reduce(torch.mean), "ReduceSum": _reduce(torch.sum),
    "ReduceMax": _reduce(torch.amax),
    "Softmax": _softmax(torch.softmax), "LogSoftmax": _softmax(torch.log_softmax),
    "LayerNormalization": _layernorm,
    "Shape": lambda a, k: torch.tensor(list(a[0].shape)[k.get("start", 0):k.get("end", None)], dtype=torch.int64),
    "Size": lambda a, k: torch.tensor(_t(a[0]).numel(), dtype=torch.int64),
    "Constant": _constant, "ConstantOfShape": _constant_of_shape, "Cast": _cast,
    "CastLike": lambda a, k: _t(a[0]).to(_t(a[1]).dtype),
    "Expand": _expand, "Tile": _tile, "Range": _range, "Where": _where,
    "Equal": _binary(torch.eq), "Less": _binary(torch.lt), "Greater": _binary(torch.gt),
    "LessOrEqual": _binary(torch.le), "GreaterOrEqual": _binary(torch.ge),
    "And": _binary(torch.logical_and), "Or": _binary(torch.logical_or), "Not": lambda a, k: ~_t(a[0]).bool(),
    "Sum": lambda a, k: torch.stack(torch.broadcast_tensors(*map(_t, a))).sum(0),
    "Mean": lambda a, k: torch.stack(torch.broadcast_tensors(*map(_t, a))).mean(0),
    "Floor": lambda a, k: torch.floor(a[0]), "Ceil": lambda a, k: torch.ceil(a[0]),
    "Round": lambda a, k: torch.round(a[0]), "Sign": lambda a, k: torch.sign(a[0]),
    "Log": lambda a, k: torch.log(a[0]), "Sin": lambda a, k: torch.sin(a[0]),
    "Cos": lambda a, k: torch.cos(a[0]),
    "Softplus": lambda a, k: F.softplus(a[0]), "Softsign": lambda a, k: F.softsign(a[0]),
    "Elu": lambda a, k: F.elu(a[0], float(k.get("alpha", 1.0))),
    "Selu": lambda a, k: F.selu(a[0]), "Mish": lambda a, k: F.mish(a[0]),
    "PRelu": _prelu, "InstanceNormalization": _instance_norm,
    "DepthToSpace": _depth_to_space, "SpaceToDepth": _space_to_depth,
    "ReduceMin": _reduce(torch.amin), "ReduceProd": _reduce(lambda x, dim, keepdim: _prod(x, dim, keepdim)),
    "ReduceL2": _reduce(lambda x, dim, keepdim: torch.sqrt((x * x).sum(dim=dim, keepdim=keepdim))),
    "ReduceSumSquare": _reduce(lambda x, dim, keepdim: (x * x).sum(dim=dim, keepdim=keepdim)),
    "ArgMax": _argmax(torch.argmax), "ArgMin": _argmax(torch.argmin), "TopK": _topk,
    "CumSum": _cumsum, "Einsum": _einsum,
}

# ops refused up front, with the reason and what to do instead
_REFUSED = {
    "NonMaxSuppression": "non-maximum suppression inside the graph has no gradient; export the "
                         "model without NMS, give the PyTorch model, or use --criterion l1",
    "If": "control flow inside the graph is not supported; give the PyTorch model, or use --criterion l1",
    "Loop": "control flow inside the graph is not supported; give the PyTorch model, or use --criterion l1",
    "Scan": "control flow inside the graph is not supported; give the PyTorch model, or use --criterion l1",
}


def _prod(x, dim, keepdim):
    for d in sorted(dim, reverse=True):
        x = torch.prod(x, dim=d, keepdim=keepdim)
    return x
