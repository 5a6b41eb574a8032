"""The latency-saliency knapsack (HALP, Shen et al., NeurIPS 2022) as a pure function of
numbers: no ONNX, no device.

Each group offers options: keep its top 1, 2, ... chunks of channels (a chunk only with
every chunk before it, HALP's "augmented" items), with a value (importance kept) and a
cost (latency, and optionally energy). Choosing exactly one option per group — a
multiple-choice knapsack — is the same problem as HALP's prefix-constrained chunk items.

`solve` runs an exact dynamic programme over a discretised budget. Costs are rounded *up*
to the grid, so the choice never exceeds the budget; what rounding can lose is at most one
grid unit per group of the budget (reported as the discretisation error). A second
constraint (energy) is handled by Lagrangian relaxation: the dual price of energy is raised
by bisection until the energy budget holds. Models too large for the DP use a greedy that
drops the chunk with the least value per unit of cost saved.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Sequence

import numpy as np

DEFAULT_BINS = 2000
# groups x options x bins above which the DP gives way to the greedy
DP_LIMIT = 3e8
_EPS = 1e-9


@dataclass(frozen=True)
class Options:
    """One group's choices, in order of channels kept. `value` should rise with the index."""

    value: np.ndarray
    latency: np.ndarray
    energy: np.ndarray | None = None

    def __post_init__(self):
        for name in ("value", "latency", "energy"):
            arr = getattr(self, name)
            if arr is not None:
                object.__setattr__(self, name, np.asarray(arr, dtype=np.float64))
        if len(self.value) == 0 or len(self.value) != len(self.latency) or (
                self.energy is not None and len(self.energy) != len(self.value)):
            raise ValueError("options need equal, non-zero numbers of values and costs")


@dataclass
class Solution:
    choice: list[int]            # option index per group
    value: float
    latency: float               # sum of the chosen options' latency costs
    energy: float | None
    method: str                  # "dp" or "greedy"
    bins: int = 0
    discretisation_bound: float = 0.0   # budget the grid may leave unused (groups x unit)
    rounding_slack: float = 0.0         # what the rounding actually cost this choice
    energy_price: float = 0.0           # Lagrange multiplier of the energy budget


class Infeasible(ValueError):
    """No choice meets the budget; carries the smallest reachable costs."""

    def __init__(self, min_latency: float, min_energy: float | None):
        self.min_latency = min_latency
        self.min_energy = min_energy
        super().__init__(f"smallest reachable latency {min_latency:g}, energy {min_energy}")


def solve(groups: Sequence[Options], latency_budget: float | None = None,
          energy_budget: float | None = None, bins: int = DEFAULT_BINS,
          method: str = "auto") -> Solution:
    """The most valuable choice whose summed costs meet every budget given (None = free)."""
    if method not in ("auto", "dp", "greedy"):
        raise ValueError(f"unknown knapsack method {method!r}")
    use_energy = energy_budget is not None
    if use_energy and any(g.energy is None for g in groups):
        raise ValueError("an energy budget needs energy costs on every group")
    min_lat = sum(float(g.latency.min()) for g in groups)
    min_en = sum(float(g.energy.min()) for g in groups) if use_energy else None
    if (latency_budget is not None and min_lat > latency_budget + _tol(latency_budget)) or \
            (use_energy and min_en > energy_budget + _tol(energy_budget)):
        raise Infeasible(min_lat, min_en)
    if latency_budget is None and not use_energy:
        return _evaluate(groups, [len(g.value) - 1 for g in groups], "dp", use_energy)
    size = sum(len(g.value) for g in groups) * bins
    if method == "greedy" or (method == "auto" and size > DP_LIMIT):
        return _greedy(groups, latency_budget, energy_budget)
    if latency_budget is None:
        # energy alone: the same DP with energy as the cost
        swapped = [Options(g.value, g.energy, g.latency) for g in groups]
        s = _dp(swapped, energy_budget, bins, None, None)
        return _evaluate(groups, s.choice, "dp", True, s)
    sol = _dp(groups, latency_budget, bins, None, None)
    if not use_energy or _energy(groups, sol.choice) <= energy_budget + _tol(energy_budget):
        return _evaluate(groups, sol.choice, "dp", use_energy, sol)
    return _lagrangian(groups, latency_budget, energy_budget, bins)


TIE = 1e-12   # value differences the DP treats as equal (then more channels win)


def _tol(budget: float) -> float:
    return 1e-9 * max(1.0, abs(budget))


def _energy(groups, choice) -> float:
    return sum(float(g.energy[k]) for g, k in zip(groups, choice))


def _evaluate(groups, choice, method, use_energy, base: Solution | None = None) -> Solution:
    s = Solution(choice=list(choice),
                 value=sum(float(g.value[k]) for g, k in zip(groups, choice)),
                 latency=sum(float(g.latency[k]) for g, k in zip(groups, choice)),
                 energy=_energy(groups, choice) if use_energy else None, method=method)
    if base is not None:
        s.bins, s.discretisation_bound = base.bins, base.discretisation_bound
        s.rounding_slack, s.energy_price = base.rounding_slack, base.energy_price
    return s


def _dp(groups, budget: float, bins: int, penalty: np.ndarray | None, price: float | None) -> Solution:
    """Exact multiple-choice knapsack on `latency` costs over `bins` grid units of the budget
    left after every group's cheapest option. `penalty` (per group arrays) is subtracted
    from values (the priced energy)."""
    base = [float(g.latency.min()) for g in groups]
    room = budget - sum(base)
    if room <= _tol(budget):
        room = 0.0   # only the cheapest options (and any as cheap) fit
    unit = room / bins if room > 0 else 0.0
    dp = np.zeros(bins + 1)
    picks = np.zeros((len(groups), bins + 1), dtype=np.int32)
    weights = []
    for gi, g in enumerate(groups):
        extra = g.latency - base[gi]
        if unit > 0:
            # clipped before the cast: an option far beyond the budget stays out of reach
            w = np.ceil(np.minimum(extra / unit - 1e-9, bins + 1)).astype(np.int64)
        else:
            w = np.where(extra <= _tol(budget), 0, bins + 1)
        w = np.maximum(w, 0)
        weights.append(w)
        value = g.value if penalty is None else g.value - penalty[gi]
        best = np.full(bins + 1, -np.inf)
        arg = np.zeros(bins + 1, dtype=np.int32)
        # options in reverse so that on equal value the one keeping more channels wins
        for k in range(len(value) - 1, -1, -1):
            wk = int(w[k])
            if wk > bins:
                continue
            cand = dp[:bins + 1 - wk] + value[k]
            better = cand > best[wk:] + TIE
            best[wk:] = np.where(better, cand, best[wk:])
            arg[wk:] = np.where(better, k, arg[wk:])
        dp = best
        picks[gi] = arg
    choice = [0] * len(groups)
    b = bins
    for gi in range(len(groups) - 1, -1, -1):
        k = int(picks[gi, b])
        choice[gi] = k
        b -= int(weights[gi][k])
    slack = max(0.0, sum(float(weights[gi][k]) * unit - float(groups[gi].latency[k] - base[gi])
                         for gi, k in enumerate(choice)))
    return Solution(choice=choice, value=0.0, latency=0.0, energy=None, method="dp", bins=bins,
                    discretisation_bound=len(groups) * unit, rounding_slack=slack,
                    energy_price=price or 0.0)


def _lagrangian(groups, latency_budget, energy_budget, bins) -> Solution:
    """Raise the price of energy until the latency-DP's choice meets the energy budget."""
    def at(price):
        penalty = [price * (g.energy - g.energy.min()) for g in groups]
        return _dp(groups, latency_budget, bins, penalty, price)

    span_v = sum(float(np.ptp(g.value)) for g in groups) or 1.0
    span_e = sum(float(np.ptp(g.energy)) for g in groups) or 1.0
    # the DP keeps the option with more channels unless another beats it by over 1e-12
    # (TIE below): a price must be able to outweigh that too, or values spanning less than it
    # (seen: 1e-135) are never traded for energy and a reachable budget reads as infeasible
    lo, hi = 0.0, (span_v + 1e3 * TIE) / span_e
    best = None
    for _ in range(60):
        s = at(hi)
        if _energy(groups, s.choice) <= energy_budget + _tol(energy_budget):
            best = s
            break
        lo, hi = hi, hi * 4
    if best is None:
        # even a near-infinite price cannot meet it within the latency budget
        raise Infeasible(sum(float(g.latency.min()) for g in groups),
                         sum(float(g.energy.min()) for g in groups))
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        s = at(mid)
        if _energy(groups, s.choice) <= energy_budget + _tol(energy_budget):
            hi, best = mid, s
        else:
            lo = mid
        if hi - lo <= 1e-6 * hi:
            break
    return _evaluate(groups, best.choice, "dp", True, best)


def _greedy(groups, latency_budget, energy_budget) -> Solution:
    """Start from every group whole; repeatedly move one group down to the option that loses
    the least value per unit of (budget-normalised) cost saved, until every budget holds."""
    use_energy = energy_budget is not None
    scale_l = 1.0 / max(latency_budget, 1e-12) if latency_budget is not None else 0.0
    scale_e = 1.0 / max(energy_budget, 1e-12) if use_energy else 0.0

    def cost(g, k):
        c = scale_l * float(g.latency[k])
        if use_energy:
            c += scale_e * float(g.energy[k])
        return c

    choice = [len(g.value) - 1 for g in groups]

    def best_move(gi):
        g, k = groups[gi], choice[gi]
        here_c, here_v = cost(g, k), float(g.value[k])
        best = None
        # any cheaper option, not only a smaller index: measured latencies are not monotone
        # in the channel count (staircases), so a smaller count may cost more
        for j in range(len(g.value)):
            saved = here_c - cost(g, j)
            if j == k or saved <= 0:
                continue
            ratio = (here_v - float(g.value[j])) / saved
            if best is None or ratio < best[0] - 1e-15 or (ratio <= best[0] + 1e-15 and saved > best[2]):
                best = (ratio, j, saved)
        return best[:2] if best else None

    heap = []
    version = [0] * len(groups)
    for gi in range(len(groups)):
        m = best_move(gi)
        if m is not None:
            heapq.heappush(heap, (m[0], gi, m[1], 0))

    def over():
        lat = sum(float(g.latency[k]) for g, k in zip(groups, choice))
        if latency_budget is not None and lat > latency_budget + _tol(latency_budget):
            return True
        return use_energy and _energy(groups, choice) > energy_budget + _tol(energy_budget)

    while over():
        if not heap:
            raise Infeasible(sum(float(g.latency.min()) for g in groups),
                             sum(float(g.energy.min()) for g in groups) if use_energy else None)
        _, gi, j, ver = heapq.heappop(heap)
        if ver != version[gi]:
            continue
        choice[gi] = j
        version[gi] += 1
        m = best_move(gi)
        if m is not None:
            heapq.heappush(heap, (m[0], gi, m[1], version[gi]))
    return _evaluate(groups, choice, "greedy", use_energy)


__all__ = ["Options", "Solution", "Infeasible", "solve", "DEFAULT_BINS"]
