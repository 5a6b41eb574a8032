"""The reference every artifact is checked against: ONNX Runtime fp32, no graph
optimisations, on the same inputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import onnx


def random_inputs(specs: Mapping[str, Mapping[str, Any]], seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs in a plausible range for image models (normalised pixels)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, spec in specs.items():
        dtype = np.dtype(spec["dtype"])
        shape = tuple(spec["shape"])
        if np.issubdtype(dtype, np.floating):
            out[name] = rng.standard_normal(shape).astype(dtype)
        else:
            out[name] = rng.integers(0, 10, size=shape).astype(dtype)
    return out


def reference_outputs(proto: onnx.ModelProto, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, dict(inputs))))


@dataclass(frozen=True)
class Comparison:
    max_abs_err: dict[str, float]
    atol: float

    @property
    def ok(self) -> bool:
        return all(e <= self.atol for e in self.max_abs_err.values())

    @property
    def worst(self) -> float:
        return max(self.max_abs_err.values(), default=0.0)

    def to_json(self) -> dict[str, Any]:
        return {"max_abs_err": self.max_abs_err, "atol": self.atol, "ok": self.ok}


def compare(outputs: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray],
            atol: float = 1e-4) -> Comparison:
    """Max abs error per reference output; a missing or mis-shaped output counts as inf."""
    errs = {}
    for name, ref in reference.items():
        got = outputs.get(name)
        if got is None or np.shape(got) != np.shape(ref):
            errs[name] = float("inf")
        else:
            errs[name] = float(np.max(np.abs(np.asarray(got, np.float64) - np.asarray(ref, np.float64)), initial=0.0))
    return Comparison(errs, atol)
