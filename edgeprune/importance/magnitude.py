"""Data-free criteria: L1 / L2 filter norms and BN |gamma|, summed over coupled members."""

from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from ..errors import UsageError
from ..frontend.load import Model
from ..graph.groups import Analysis
from ..graph.types import OUT, THROUGH

CRITERIA = ("l1", "l2", "bn", "taylor", "refit")
NEEDS_DATA = ("taylor", "refit")


def _per_position(arr: np.ndarray, axis: int, power: int) -> np.ndarray:
    moved = np.moveaxis(np.abs(arr.astype(np.float64)), axis, 0).reshape(arr.shape[axis], -1)
    return (moved ** power).sum(axis=1)


def scores(model: Model, analysis: Analysis, criterion: str = "l1") -> dict[str, np.ndarray]:
    """Per group, per channel importance. Groups without BN fall back to L1 under "bn"."""
    if criterion not in ("l1", "l2", "bn"):
        if criterion in NEEDS_DATA:
            raise UsageError(f"--criterion {criterion} needs calibration data (--data)")
        raise UsageError(f"unknown --criterion '{criterion}' (choose from {', '.join(CRITERIA)})")
    inits = {t.name: t for t in model.proto.graph.initializer}
    size = sum(g.channels for g in analysis.groups)
    norms = {"l1": np.zeros(size), "l2": np.zeros(size), "bn": np.zeros(size)}
    has_bn = np.zeros(size, dtype=bool)
    cache: dict[str, np.ndarray] = {}
    for s in analysis.slices:
        m = s.member
        if m.role not in (OUT, THROUGH) or m.param not in ("weight", "bn_scale"):
            continue
        arr = cache.get(s.tensor)
        if arr is None:
            arr = cache[s.tensor] = numpy_helper.to_array(inits[s.tensor])
        flat = analysis.flat_of[s.ids]
        if m.param == "bn_scale":
            np.add.at(norms["bn"], flat, np.abs(arr.astype(np.float64)))
            has_bn[flat] = True
        else:
            np.add.at(norms["l1"], flat, _per_position(arr, s.axis, 1))
            np.add.at(norms["l2"], flat, _per_position(arr, s.axis, 2))
    norms["l2"] = np.sqrt(norms["l2"])
    out = {}
    for g in analysis.groups:
        off = analysis.offsets[g.id]
        sl = slice(off, off + g.channels)
        use = criterion
        if criterion == "bn" and not has_bn[sl].any():
            use = "l1"
        out[g.id] = norms[use][sl].copy()
    return out
