"""Which channels to keep when every prunable group keeps the same ratio."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..errors import UsageError
from ..graph.groups import Analysis
from ..graph.types import Group


def round_keep(n: int, ratio: float, step: int) -> int:
    """Channels to keep of n: ratio*n rounded to a multiple of `step`, at least one step,
    at most n (runtimes run fastest on channel counts that fill their vector width)."""
    if not 0 < ratio <= 1:
        raise UsageError(f"--ratio must be in (0, 1], got {ratio}")
    if step < 1:
        raise UsageError(f"--round-to must be >= 1, got {step}")
    k = int(round(ratio * n / step)) * step
    return min(n, max(step, k))


def top_channels(group: Group, scores: np.ndarray, keep_channels: int) -> list[int]:
    """The most important channels, whole atoms at a time (ties: lower index first)."""
    atoms = group.atoms or [[i] for i in range(group.channels)]
    unit = len(atoms[0])
    n_atoms = max(1, min(len(atoms), int(round(keep_channels / unit))))
    atom_scores = np.array([scores[a].sum() for a in atoms])
    order = np.lexsort((np.arange(len(atoms)), -atom_scores))[:n_atoms]
    return sorted(i for k in order for i in atoms[k])


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
