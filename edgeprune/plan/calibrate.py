"""A generic measured fit (the benchmarks fit every method to one budget with it; compile and
`plan --measure` use budget_fit.py): re-plan against a latency limit scaled by how far the
measured latency of the last plan fell from its target.

A LUT predicts each layer alone; inside a whole model, layers run a little faster or
slower (caches, layout conversions between unaligned layers), and a knapsack that seeks
out the configurations the LUT finds cheapest also seeks out its errors. Measuring the
pruned model and scaling the planning limit by target / measured (a few rounds) brings the
measured latency onto the budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Generic, TypeVar

from ..errors import InfeasibleBudget

T = TypeVar("T")


@dataclass
class Fitted(Generic[T]):
    candidate: T
    measured_ms: float
    rounds: list[dict] = field(default_factory=list)   # limit_ms, predicted_ms, measured_ms


def fit_measured(plan_at: Callable[[float], tuple[T, float]], measure: Callable[[T], float],
                 target_ms: float, rounds: int = 3, tol: float = 0.02) -> Fitted[T]:
    """`plan_at(limit_ms) -> (candidate, predicted_ms)`; `measure(candidate) -> ms`.
    Returns the candidate measured closest to `target_ms` from below (within `tol` above
    counts as on target); if every one is above, the fastest."""
    limit = target_ms
    tried: list[tuple[T, float]] = []
    log = []
    for _ in range(rounds):
        try:
            cand, predicted = plan_at(limit)
        except InfeasibleBudget:
            if not tried:
                raise
            break
        ms = measure(cand)
        tried.append((cand, ms))
        log.append({"limit_ms": limit, "predicted_ms": predicted, "measured_ms": ms})
        if abs(ms / target_ms - 1) <= tol:
            break
        limit *= target_ms / ms
    under = [t for t in tried if t[1] <= target_ms * (1 + tol)]
    cand, ms = max(under, key=lambda t: t[1]) if under else min(tried, key=lambda t: t[1])
    return Fitted(cand, ms, log)
