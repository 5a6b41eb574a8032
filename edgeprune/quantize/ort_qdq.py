"""Static int8 QDQ quantization with onnxruntime.quantization.

BatchNorm is folded into the convolution before it first, so each conv quantizes once
with its final weights (per output channel, int8 symmetric) and its int32 bias. ReLU and
ReLU6 (Clip) after a conv are left for ORT's quantizer to remove: the conv's output
range then starts at 0 (or ends at 6) and the activation lives in the quantization, so
ORT fuses DequantizeLinear → Conv → QuantizeLinear into one integer QLinearConv.
Activations are uint8 with a zero point (ORT's fast x86 path is u8 × s8).
"""

from __future__ import annotations

import contextlib
import io
import logging
import platform
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import UsageError, first_line
from ..frontend.links import Links
from ..frontend.load import Model
from ..recover.probe import Calib, split_batches

METHODS = ("minmax", "entropy", "percentile")


def fold_bn(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A copy with every inference BatchNormalization that directly follows a Conv (its only
    consumer) folded into that Conv's weight and bias."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    g = out.graph
    inits = {t.name: t for t in g.initializer}
    links = Links(g)   # as the graph was: a folded BN's Conv takes over its output name below
    folded = set()
    for bn in g.node:
        if bn.op_type != "BatchNormalization" or len(bn.output) != 1:
            continue
        conv = links.producer(bn.input[0])
        if (conv is None or conv.op_type != "Conv" or links.uses(bn.input[0]) != 1
                or bn.input[0] in links.graph_outputs or conv.input[1] not in inits
                or not all(n in inits for n in bn.input[1:5])):
            continue
        scale, bias, mean, var = (numpy_helper.to_array(inits[n]).astype(np.float64) for n in bn.input[1:5])
        eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
        k = scale / np.sqrt(var + eps)
        w_name = conv.input[1]
        w = numpy_helper.to_array(inits[w_name])
        b_old = (numpy_helper.to_array(inits[conv.input[2]]).astype(np.float64)
                 if len(conv.input) > 2 and conv.input[2] else np.zeros(w.shape[0]))
        inits[w_name].CopyFrom(numpy_helper.from_array(
            (w.astype(np.float64) * k.reshape(-1, *([1] * (w.ndim - 1)))).astype(w.dtype), w_name))
        b_name = f"{conv.name}/folded_bias"
        while b_name in inits:
            b_name += "_"
        b = ((b_old - mean) * k + bias).astype(w.dtype)
        inits[b_name] = g.initializer.add()
        inits[b_name].CopyFrom(numpy_helper.from_array(b, b_name))
        while len(conv.input) < 3:
            conv.input.append("")
        conv.input[2] = b_name
        conv.output[0] = bn.output[0]
        folded.add(bn.name)
    keep = [n for n in g.node if n.name not in folded]
    del g.node[:]
    g.node.extend(keep)
    used = Links(g).read()
    alive = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(alive)
    return out


@contextlib.contextmanager
def _quiet():
    """ORT's quantizer prints progress and warns through the root logger."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


class _Reader:
    """onnxruntime.quantization's CalibrationDataReader over stacked calibration samples."""

    def __init__(self, calib: Calib, batch: int):
        self._it = iter(list(split_batches(calib, batch)))

    def get_next(self):
        return next(self._it, None)

    def rewind(self):  # some ORT versions call it between passes; the entropy pass reads once
        pass


def saturating_int8(arch: str | None, cpu_flags: set[str] | None = None) -> bool:
    """Whether ONNX Runtime's u8s8 kernels on this CPU add pairs of products in int16 with
    saturation (x86 without VNNI, where MLAS uses vpmaddubsw): weights must then keep to 7
    bits (`reduce_range`). Measured on an AVX2 host: top-1 agreement 0.92 with 8-bit weights
    vs 0.98 with 7-bit, the QDQ model simulated in float giving 0.98. ARM's dot products do
    not saturate. An x86 CPU whose flags are unknown is taken to saturate."""
    if arch is None or arch in ("live", "host"):
        arch = platform.machine()
        if cpu_flags is None:
            cpu_flags = _host_cpu_flags()
    if arch.lower() not in ("x86_64", "amd64", "x86", "i686"):
        return False
    return cpu_flags is None or not cpu_flags & {"avx512_vnni", "avx_vnni", "avx512vnni", "avxvnni"}


def _host_cpu_flags() -> set[str] | None:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return None


def _at_least_opset_13(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Per-channel QDQ needs DequantizeLinear's `axis` (opset 13): older exports (Paddle2ONNX
    writes opset 11) are converted first."""
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 13)
    if opset >= 13:
        return proto
    from onnx import version_converter

    try:
        return version_converter.convert_version(proto, 13)
    except Exception as e:  # the converter raises its own C++ errors
        raise UsageError(f"--quantize int8 needs opset 13 or later; converting this opset {opset} model "
                         f"failed: {first_line(e)}") from None


def quantize_int8(model: Model, calib: Calib, method: str = "minmax", per_channel: bool = True,
                  percentile: float = 99.999, correct_bias: bool = True,
                  reduce_range: bool | None = None) -> Model:
    """The model with BN folded and static QDQ int8 quantization (uint8 activations, int8
    per-channel weights), calibrated on `calib` with `method` (minmax, entropy, percentile).
    With `correct_bias`, each layer's int32 bias absorbs the mean output shift that rounding
    its weights causes on the calibration data (`bias_correction`). `reduce_range` keeps
    weights to 7 bits; None decides for this host (`saturating_int8`)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if method not in METHODS:
        raise UsageError(f"unknown calibration method '{method}' (choose from {', '.join(METHODS)})")
    calibrate = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                 "percentile": CalibrationMethod.Percentile}[method]
    extra = {"CalibPercentile": float(percentile)} if method == "percentile" else {}
    if reduce_range is None:
        reduce_range = saturating_int8(None)
    batch = next(iter(model.input_shapes.values()))[0] if model.input_shapes else 1
    folded = _at_least_opset_13(fold_bn(model.proto))
    from .bias_correction import correct_bias as _correct, layer_inputs
    from .calibrate import collect, streamed

    # one streamed pass gives ORT's ranges and bias correction's input sums (calibrate.py)
    seen = collect(folded, calib, method, percentile, layer_inputs(folded) if correct_bias else ()) \
        if streamed(method) else None
    with tempfile.TemporaryDirectory(prefix="edgeprune-qdq-") as tmp, _quiet():
        out = Path(tmp) / "int8.onnx"
        src = Path(tmp) / "folded.onnx"
        # a path, not the proto: quantize_static moves a proto's weights to external data
        onnx.save(folded, str(src))
        reader, cached = _Reader(calib, batch), {}
        if seen is not None:
            reader, cached = None, {"calibration_cache_path": str(Path(tmp) / "ranges.json")}
            seen.save_cache(method, Path(cached["calibration_cache_path"]))
        quantize_static(str(src), str(out), reader, quant_format=QuantFormat.QDQ,
                        per_channel=per_channel, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=calibrate, reduce_range=reduce_range,
                        extra_options=extra, **cached)
        proto = onnx.load(str(out))
    if correct_bias:
        proto = _correct(proto, folded, calib, *((seen.sums, seen.count) if seen is not None else ()))
    return model.replace(proto)
