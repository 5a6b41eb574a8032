"""Which channels of a group survive, given their importance and how many to keep: used by
the planner (to price a plan) and by the rewrite (to cut it), so both see the same channels."""

from __future__ import annotations

import numpy as np

from ..errors import UsageError
from .types import Group


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
    """The most important channels, whole atoms at a time (ties: lower index first).

    Where the group is split downstream, each segment keeps its share of the channels
    (at least one atom), so no Split output or Slice range is emptied."""
    atoms = group.atoms or [[i] for i in range(group.channels)]
    unit = len(atoms[0])
    n_atoms = max(1, min(len(atoms), int(round(keep_channels / unit))))
    atom_scores = np.array([scores[a].sum() for a in atoms])
    segment_of = {c: s for s, seg in enumerate(group.segments) for c in seg}
    by_segment: dict[int, list[int]] = {}
    for k, a in enumerate(atoms):
        by_segment.setdefault(segment_of.get(a[0], 0), []).append(k)
    quota = _apportion([len(v) for v in by_segment.values()], n_atoms)
    kept = []
    for members, q in zip(by_segment.values(), quota):
        members = np.asarray(members)
        order = members[np.lexsort((members, -atom_scores[members]))][:q]
        kept.extend(i for k in order for i in atoms[k])
    return sorted(kept)


def _apportion(sizes: list[int], total: int) -> list[int]:
    """Split `total` across parts proportionally to size (largest remainder), each part
    getting at least one and at most its size."""
    if len(sizes) == 1:
        return [total]
    total = max(total, len(sizes))
    exact = np.array(sizes, dtype=float) * total / sum(sizes)
    quota = np.clip(np.floor(exact).astype(int), 1, sizes)
    for k in np.argsort(-(exact - np.floor(exact)), kind="stable"):
        if quota.sum() >= total:
            break
        if quota[k] < sizes[k]:
            quota[k] += 1
    while quota.sum() > total and (quota > 1).any():
        quota[int(np.argmax(quota))] -= 1
    return quota.tolist()
