"""Which channels to keep when every prunable group keeps the same ratio."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..graph.groups import Analysis
from ..graph.keep import round_keep, top_channels


def ratio_keep(analysis: Analysis, scores: Mapping[str, np.ndarray], ratio: float,
               round_to: int = 8) -> dict[str, list[int]]:
    keep = {}
    for g in analysis.prunable():
        k = round_keep(g.channels, ratio, round_to)
        if k >= g.channels:
            continue
        kept = top_channels(g, scores[g.id], k)
        if len(kept) < g.channels:
            keep[g.id] = kept
    return keep
