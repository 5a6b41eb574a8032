"""How closely a candidate (pruned, recovered, int8) model follows the dense model.

Top-1 agreement is the fraction of samples (and, for dense outputs such as segmentation
maps, positions) where the argmax over the class axis (axis 1) of the first output is the
same; max abs error is the largest difference over every output value. Both are measured
on the same inputs with ONNX Runtime on the host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import onnx

from .frontend.load import Model
from .recover.probe import Calib, Probe


@dataclass(frozen=True)
class Fidelity:
    top1_agreement: float   # in [0, 1]
    max_abs_error: float
    samples: int

    def to_json(self) -> dict:
        return {"top1_agreement": self.top1_agreement, "max_abs_error": self.max_abs_error,
                "samples": self.samples}


def outputs(model: Model | onnx.ModelProto, data: Calib) -> list[np.ndarray]:
    """Every graph output of `model` over `data` (samples stacked on axis 0)."""
    proto = model.proto if isinstance(model, Model) else model
    probe = Probe(proto, [o.name for o in proto.graph.output])
    chunks = list(probe.chunks(data, samples_per_chunk=64))
    return [np.concatenate(parts, axis=0) for parts in zip(*chunks)]


def compare(reference: list[np.ndarray], candidate: list[np.ndarray]) -> Fidelity:
    if len(reference) != len(candidate):
        raise ValueError(f"{len(reference)} reference outputs, {len(candidate)} candidate outputs")
    for r, c in zip(reference, candidate):
        if r.shape != c.shape:
            raise ValueError(f"output shapes differ: {r.shape} vs {c.shape}")
    ref, cand = reference[0], candidate[0]
    axis = 1 if ref.ndim > 1 else 0
    agree = float(np.mean(ref.argmax(axis) == cand.argmax(axis)))
    err = max(float(np.max(np.abs(r.astype(np.float64) - c.astype(np.float64)))) for r, c in zip(reference, candidate))
    return Fidelity(agree, err, len(ref))


def fidelity(dense: Model | onnx.ModelProto, candidate: Model | onnx.ModelProto, data: Calib) -> Fidelity:
    """Top-1 agreement and max abs error of `candidate` against `dense` on `data`."""
    return compare(outputs(dense, data), outputs(candidate, data))


def accuracy(model: Model | onnx.ModelProto, data: Mapping[str, np.ndarray], labels: np.ndarray) -> float:
    """Top-1 accuracy of the first output against integer labels."""
    logits = outputs(model, data)[0]
    return float(np.mean(logits.argmax(1) == np.asarray(labels)))
