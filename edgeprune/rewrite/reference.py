"""The reference a pruned model must equal: the original with the removed channels zeroed
where they are consumed (every input axis of a weight that contracts them)."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import onnx
from onnx import numpy_helper

from ..frontend.load import Model
from ..graph.groups import Analysis
from ..graph.types import IN


def zero_removed(model: Model, analysis: Analysis, keep: Mapping[str, Sequence[int]]) -> onnx.ModelProto:
    mask = analysis.keep_mask(keep)
    proto = onnx.ModelProto()
    proto.CopyFrom(model.proto)
    inits = {t.name: t for t in proto.graph.initializer}
    for s in analysis.slices:
        if s.member.role != IN:
            continue
        removed = np.flatnonzero(~analysis.positions_kept(s.ids, mask))
        if len(removed) == 0:
            continue
        arr = numpy_helper.to_array(inits[s.tensor]).copy()
        index = [slice(None)] * arr.ndim
        index[s.axis] = removed
        arr[tuple(index)] = 0
        inits[s.tensor].CopyFrom(numpy_helper.from_array(arr, s.tensor))
    return proto
