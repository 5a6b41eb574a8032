"""BatchNorm recovery from unlabelled calibration data.

Two ways, both changing only a BN node's parameters:

- `reestimate_bn`: the classic re-estimation ("adaptive BN"): every BN's running mean and
  variance become the statistics its input has in the *pruned* model on the calibration
  data, BN by BN in graph order so each one sees the ones before it already re-estimated.
- `match_moments` (used by `recover`): per channel, an affine correction so that the pruned
  BN input, mapped to the dense BN input's calibration mean and standard deviation, goes
  through the original BN. It corrects the shift the removed channels leave behind (their
  mean did not vanish with them) and the variance they took along, without replacing the
  dense model's own statistics by those of a small calibration set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from ..frontend.load import Model
from .probe import Calib, Probe

# A channel whose pruned input is (nearly) constant gets no rescale, only a shift.
_MIN_STD = 1e-6


@dataclass
class Moments:
    """Per-channel running sums over calibration rows."""

    n: float = 0.0
    s1: np.ndarray | None = None
    s2: np.ndarray | None = None

    def add(self, x: np.ndarray, axis: int = 1) -> None:
        """Add a batch of activations whose channel axis is `axis`."""
        moved = np.moveaxis(x, axis, -1).reshape(-1, x.shape[axis]).astype(np.float64)
        s1, s2 = moved.sum(0), (moved * moved).sum(0)
        self.s1 = s1 if self.s1 is None else self.s1 + s1
        self.s2 = s2 if self.s2 is None else self.s2 + s2
        self.n += moved.shape[0]

    @property
    def mean(self) -> np.ndarray:
        return self.s1 / self.n

    @property
    def var(self) -> np.ndarray:
        return np.maximum(self.s2 / self.n - self.mean ** 2, 0.0)


@dataclass
class BnParams:
    scale: np.ndarray
    bias: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float


def read_bn(node: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> BnParams:
    eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
    arrays = [numpy_helper.to_array(inits[n]).astype(np.float64) for n in node.input[1:5]]
    return BnParams(*arrays, eps=float(eps))


def write_bn(node: onnx.NodeProto, inits: dict[str, onnx.TensorProto], p: BnParams) -> None:
    for name, arr in zip(node.input[1:5], (p.scale, p.bias, p.mean, p.var)):
        dtype = numpy_helper.to_array(inits[name]).dtype
        inits[name].CopyFrom(numpy_helper.from_array(np.asarray(arr, dtype=dtype), name))


def match_moments(p: BnParams, mean_p: np.ndarray, var_p: np.ndarray,
                  mean_d: np.ndarray, var_d: np.ndarray) -> BnParams:
    """BN parameters computing BN((x - mean_p) * std_d / std_p + mean_d) for pruned input x.

    With s = sqrt(var + eps) and r = std_d / std_p that is scale' = scale * r and
    bias' = bias + scale * ((mean_d - mean) - r * (mean_p - mean)) / s; mean and var stay.
    """
    std_p, std_d = np.sqrt(var_p), np.sqrt(var_d)
    r = np.where(std_p > _MIN_STD, std_d / np.maximum(std_p, _MIN_STD), 1.0)
    s = np.sqrt(p.var + p.eps)
    scale = p.scale * r
    bias = p.bias + p.scale * ((mean_d - p.mean) - r * (mean_p - p.mean)) / s
    return BnParams(scale, bias, p.mean, p.var, p.eps)


def reestimate_bn(pruned: Model, calib: Calib, samples_per_chunk: int = 16) -> Model:
    """Adaptive BN: running statistics of every inference BatchNormalization replaced by its
    input's statistics in the pruned model on `calib`."""
    proto = onnx.ModelProto()
    proto.CopyFrom(pruned.proto)
    inits = {t.name: t for t in proto.graph.initializer}
    for node in proto.graph.node:
        if not is_inference_bn(node, inits):
            continue
        m = Moments()
        for (x,) in Probe(proto, [node.input[0]]).chunks(calib, samples_per_chunk):
            m.add(x)
        p = read_bn(node, inits)
        write_bn(node, inits, BnParams(p.scale, p.bias, m.mean, m.var, p.eps))
    return pruned.replace(proto)


def is_inference_bn(node: onnx.NodeProto, inits) -> bool:
    return (node.op_type == "BatchNormalization" and node.domain in ("", "ai.onnx")
            and len(node.output) == 1 and all(n in inits for n in node.input[1:5]))
