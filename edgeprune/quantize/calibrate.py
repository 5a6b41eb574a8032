"""Activation ranges for static int8, computed in one streamed pass over the calibration data.

ONNX Runtime's own calibrators run the model sample by sample with every tensor as a fresh
output array, keep all of them (gigabytes for EfficientNet-Lite0 on 256 samples) and build
each histogram from the concatenation: on Lite0 that was 210 of the 255 s the int8 stage
took. Here the model runs at its static batch into reused buffers (I/O binding), and each
tensor is reduced as it comes to what its range needs: min and max for `minmax`; for
`percentile`, also the smallest magnitude and the few largest magnitudes, which is all
ORT's percentile rule reads — it takes the left edge of the histogram bin (2048 equal bins of
|x| between its smallest and largest value) in which the cumulative share reaches the
percentile, and with m = floor((1 - p) * count) values allowed above it that bin is the one
holding the (m+1)-th largest |x|. The ranges are then ORT's, handed to `quantize_static`
through its calibration cache, so what follows (QDQ placement, scales) is ORT's own.

The same pass sums the inputs of the Conv and Gemm layers for bias correction, which
otherwise ran the model over the data a second time.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx

from ..recover.probe import Calib
from ..recover.stream import segment_session

PERCENTILE_BINS = 2048   # ORT's default num_bins for the percentile calibrator
CHUNK = 16               # samples reduced at a time (the buffers hold this many)
STREAMED = ("minmax", "percentile")   # entropy's histogram search stays with ORT


def streamed(method: str) -> bool:
    """Whether `method` is computed here; needs `quantize_static`'s calibration cache (ORT 1.23+)."""
    from onnxruntime.quantization import quantize_static

    return method in STREAMED and "calibration_cache_path" in inspect.signature(quantize_static).parameters


@dataclass
class _Tensor:
    size: int                        # values per sample
    keep: int = 1                    # how many of the largest |x| the percentile needs
    lo: float = math.inf
    hi: float = -math.inf
    amin: float = math.inf
    top: np.ndarray | None = None    # the `keep` largest |x| seen so far (unsorted)

    def add(self, x: np.ndarray, scratch: np.ndarray, tail: bool) -> None:
        lo, hi = float(np.nanmin(x)), float(np.nanmax(x))
        self.lo, self.hi = min(self.lo, lo), max(self.hi, hi)
        if not tail:
            return
        a = np.abs(x.reshape(-1), out=scratch[:x.size])
        # the smallest magnitude, with no pass over |x| when x keeps one sign
        self.amin = min(self.amin, abs(lo) if lo >= 0 else abs(hi) if hi <= 0 else float(np.nanmin(a)))
        if self.top is not None and len(self.top) == self.keep:
            a = a[a >= self.top.min()]
        elif len(a) > 64 * self.keep:
            a = _above(a, self.keep)
        pool = a if self.top is None else np.concatenate([self.top, a])
        if len(pool) > self.keep:
            pool = np.partition(pool, len(pool) - self.keep)[len(pool) - self.keep:]
        self.top = pool.copy()


def _above(a: np.ndarray, keep: int) -> np.ndarray:
    """The values of `a` at or above a threshold with at least `keep` of them above it:
    guessed from every 16th value, checked, and all of `a` when the guess was too high."""
    sub = a[::16]
    k = min(len(sub), keep // 16 + 8)
    guess = np.partition(sub, len(sub) - k)[len(sub) - k]
    picked = a[a >= guess]
    return picked if len(picked) >= keep else a


@dataclass
class Activations:
    """What one pass over the calibration data found: per tensor its range, and per
    bias-corrected layer input its sum over the samples."""

    ranges: dict[str, tuple[np.ndarray, np.ndarray]]
    sums: dict[str, np.ndarray] = field(default_factory=dict)
    count: int = 0

    def tensors_data(self, method: str):
        from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData

        kind = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile}[method]
        return TensorsData(kind, {k: TensorData(lowest=lo, highest=hi) for k, (lo, hi) in self.ranges.items()})

    def save_cache(self, method: str, path: Path) -> None:
        from onnxruntime.quantization.calibrate import save_tensors_data

        save_tensors_data(self.tensors_data(method), path)


def calibrated_tensors(proto: onnx.ModelProto) -> list[str]:
    """The tensors `quantize_static` calibrates (every float input and output of an op it can
    quantize, initializers aside), chosen as ORT's calibrator chooses them: on the model
    with shapes inferred, only tensors with a known float type."""
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    ops = set(QLinearOpsRegistry) | set(QDQRegistry)
    inferred = onnx.shape_inference.infer_shapes(proto)
    g = inferred.graph
    infos = {vi.name: vi for vi in list(g.value_info) + list(g.output) + list(g.input)}
    inits = {t.name for t in g.initializer}
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
    out = []
    for node in g.node:
        if node.op_type not in ops:
            continue
        for name in list(node.input) + list(node.output):
            vi = infos.get(name)
            if (vi is not None and name not in inits and vi.type.HasField("tensor_type")
                    and vi.type.tensor_type.elem_type in floats):
                out.append(name)
    return list(dict.fromkeys(out))


def collect(proto: onnx.ModelProto, calib: Calib, method: str, percentile: float = 99.999,
            sums: Sequence[str] = (), threads: int = 1) -> Activations:
    """Ranges of every tensor `quantize_static` calibrates in `proto` (static batch) over
    `calib`, as ORT's `method` calibrator computes them, and the sum over samples of the
    tensors `sums`. The graph runs unoptimised, as in ORT's calibrator: fused kernels round
    some activations differently in the last bit, and an optimised run was no faster here."""
    tensors = calibrated_tensors(proto)
    names = list(dict.fromkeys(tensors + list(sums)))
    g = proto.graph
    feeds = [i.name for i in g.input if i.name not in {t.name for t in g.initializer}]
    arrays = {k: np.ascontiguousarray(calib[k], dtype=np.float32) for k in feeds}
    shape = next(iter(arrays.values())).shape
    batch = _static_batch(g)
    n = shape[0]
    # the graph's inputs are read from the data: a session does not write an input it outputs
    computed = [t for t in names if t not in arrays]
    sess = segment_session(proto, list(g.node), feeds, computed, {t.name: t for t in g.initializer},
                           batch, threads, arrays, optimize=False)
    shapes = {**sess.shapes, **{k: a.shape[1:] for k, a in arrays.items()}}
    computed = [t for t in computed if t in sess.float32 or t not in tensors]
    names = computed + [t for t in names if t in arrays]
    chunk = max(batch, CHUNK // batch * batch)
    bufs = {t: np.empty((chunk,) + shapes[t], dtype=np.float32) for t in computed}
    tail = method == "percentile"
    stats = {t: _Tensor(int(np.prod(shapes[t], dtype=np.int64))) for t in tensors if t in names}
    for s in stats.values():
        # the values that may lie above the percentile's bin, plus the one whose bin it is
        s.keep = int(math.floor((1.0 - percentile / 100.0) * s.size * n)) + 1 if tail else 1
    scratch = np.empty(max([chunk * s.size for s in stats.values()] or [0]), dtype=np.float32)
    out = Activations({}, {t: np.zeros(shapes[t], dtype=np.float64) for t in sums if t in names}, n)
    for lo in range(0, n, chunk):
        hi = min(lo + chunk, n)
        views = {t: bufs[t][:hi - lo] for t in computed}
        sess.run_into(computed, arrays, views, lo, hi)
        views.update({k: a[lo:hi] for k, a in arrays.items()})
        for t, s in stats.items():
            s.add(views[t], scratch, tail)
        for t in out.sums:
            out.sums[t] += views[t].sum(0, dtype=np.float64)
    for t, s in stats.items():
        out.ranges[t] = _percentile_range(s, n, percentile) if tail else \
            (np.array(s.lo, dtype=np.float32), np.array(s.hi, dtype=np.float32))
    return out


def _static_batch(g: onnx.GraphProto) -> int:
    dims = g.input[0].type.tensor_type.shape.dim if g.input else []
    return int(dims[0].dim_value) if dims and dims[0].dim_value > 0 else 1


def _percentile_range(s: _Tensor, n: int, percentile: float) -> tuple[np.ndarray, np.ndarray]:
    """ORT's symmetric percentile range: ±(left edge of the bin holding the percentile of
    |x|), clipped to the tensor's own min and max."""
    f32 = np.float32
    ordered = np.sort(s.top)[::-1]
    m = int(math.floor((1.0 - percentile / 100.0) * s.size * n))
    v = ordered[min(m, len(ordered) - 1)]
    amax = ordered[0]
    counts, edges = np.histogram(np.array([v], dtype=f32), bins=PERCENTILE_BINS,
                                 range=(f32(s.amin), f32(amax)))
    edge = edges.astype(f32)[int(np.argmax(counts))]
    lo, hi = np.array(-edge, dtype=f32), np.array(edge, dtype=f32)
    if lo < f32(s.lo):
        lo = np.array(s.lo, dtype=f32)
    if hi > f32(s.hi):
        hi = np.array(s.hi, dtype=f32)
    return lo, hi
