"""The closed loop of `compile`: plan, build what ships, time it on the target next to the
dense model, correct the plan from the measurement, and refuse to ship a miss.

The planner stays a function of numbers (plan/); this module owns the loop around it. A LUT
predicts each layer alone, and a knapsack that seeks out the configurations the LUT finds
cheapest also seeks out its errors, so the shipped artifact is measured, and the planning
limit scaled by target / measured for a few rounds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import InfeasibleBudget

ROUNDS = 3
SHIP_TOL = 0.05       # the most an artifact may measure above its target and still ship
ACCEPT_TOL = SHIP_TOL / 2   # the loop stops at a plan this close; the rest is room for timing noise


@dataclass
class Fit:
    plan_result: Any
    target_ms: float | None                 # the latency limit in ms (None: energy-only budget)
    dense_ms: float | None                  # dense model, as it ships, measured (None: not measurable)
    measured_ms: float | None               # the chosen plan's artifact, measured
    rounds: list[dict] = field(default_factory=list)
    not_measured: str | None = None         # why the budget is a prediction only
    limit_ms: float | None = None           # the planning limit of the plan that ships
    ships_dense: bool = False               # the plan keeps every channel and ships untransformed

    def to_json(self) -> dict[str, Any]:
        return {"target_ms": self.target_ms, "dense_measured_ms": self.dense_ms,
                "measured_ms": self.measured_ms, "rounds": self.rounds, "not_measured": self.not_measured}


def fit_plan(plan_at: Callable[[float | None], Any], budget, timer, dense_model, candidate_of: Callable[[Any], Any],
             dense_ms: float | None, device: str, note: Callable[[str], None] = lambda s: None,
             not_measured: str | None = None, start_ms: float | None = None,
             dense_predicted_ms: float | None = None) -> Fit:
    """`plan_at(limit_ms) -> PlanResult` (InfeasibleBudget when none fits); `candidate_of(result)`
    is the pruned model a plan ships; `timer` a ShippedTimer, or None when the target cannot be
    measured (`not_measured` says why; `dense_ms` is then the dense model's prediction).
    `dense_ms` is the dense model as it ships on the device (measured once and kept in the LUT,
    so the first plan, and the artifact when it lands in the band, are the same every run).

    Round 1 plans at the target; a plan measured within -SHIP_TOL..+ACCEPT_TOL of it ships as
    planned. Only a miss is corrected: the planning limit is scaled by target / measured (a few rounds), and
    the plan measured closest to the target from below is kept.

    `start_ms` is the limit an earlier compile of this model for this target shipped at (kept in
    the LUT): round 1 plans there, and its plan ships whenever it still meets the budget, so
    the same command gives the same artifact.

    A pruned plan that measures no faster than the dense model (within SHIP_TOL) where the
    dense model meets the budget ships dense: its pruning buys no speed and costs fidelity."""
    limit, _ = budget.limits(dense_ms)
    if timer is None:
        return Fit(plan_at(limit), limit, None, None, not_measured=not_measured)
    note(f"dense model as it ships: {dense_ms:.3f} ms on {device}")
    dense_seen: list[float] = []

    def measure(result) -> float:
        ms = timer.time({"dense": dense_model, "candidate": candidate_of(result)}, prepared={"dense": True})
        dense_seen.append(ms["dense"])
        # the machine's load drifts between rounds: judge the candidate by its ratio to the dense
        # model timed beside it, on the scale of the dense reference
        return ms["candidate"] / ms["dense"] * dense_ms

    target = limit
    if start_ms is not None and target is not None:
        limit = start_ms
    tried, rounds = [], []
    for k in range(ROUNDS if target is not None else 1):
        try:
            result = plan_at(limit)
        except InfeasibleBudget as e:
            if not tried and target is None:
                raise
            if not tried and k == 0 and dense_predicted_ms and limit < target * dense_predicted_ms / dense_ms:
                # the LUT prices this model above what it measures (its layers alone sum to more
                # than the whole): ask the planner in the LUT's units, the measurement judges
                limit = target * dense_predicted_ms / dense_ms
                try:
                    result = plan_at(limit)
                except InfeasibleBudget:
                    result = None
                if result is None:
                    raise InfeasibleBudget(f"budget {budget.text} = {target:.3f} ms on {device} (dense "
                                           f"{dense_ms:.3f} ms measured) is not reachable: "
                                           f"{str(e).split(': ', 1)[-1]}") from None
            elif not tried:
                raise InfeasibleBudget(f"budget {budget.text} = {target:.3f} ms on {device} (dense "
                                       f"{dense_ms:.3f} ms measured) is not reachable: "
                                       f"{str(e).split(': ', 1)[-1]}") from None
            else:
                # the corrected limit is below what the LUT can reach: the fastest plan is the
                # last one worth measuring
                reach = getattr(e, "reach_ms", None)
                if reach is None or reach >= min(r["limit_ms"] for r in rounds):
                    break
                limit = reach * (1 + 1e-9)
                result = plan_at(limit)
        if any(t[0].plan.keep == result.plan.keep for t in tried):
            break       # the corrected limit gives a plan already measured
        # a plan that keeps every channel ships the dense model, measured already (unless it
        # ships transformed, e.g. as int8)
        dense = not result.plan.keep and getattr(timer, "prepare", None) is None
        if dense:
            ms = dense_ms
        else:
            ms = measure(result)
            if target is not None and ms > target * (1 + SHIP_TOL):
                # a load spike on a shared machine only ever slows a run: look again before
                # taking a miss for the plan's
                ms = min(ms, measure(result))
        predicted = result.plan.predicted["latency_ms"]
        tried.append((result, ms))
        rounds.append({"limit_ms": limit, "predicted_ms": predicted, "measured_ms": ms,
                       "dense_beside_ms": None if dense else dense_seen[-1], "dense_plan": dense})
        note(f"round {k + 1}: planned {predicted:.3f} ms, measured {ms:.3f} ms"
             + (" (the dense model)" if dense else "")
             + (f" (target {target:.3f} ms)" if target is not None else ""))
        # the limit an earlier compile shipped at ships again whenever it still meets the
        # budget: a correction found once is not undone by timing noise
        low = float("inf") if k == 0 and start_ms is not None else SHIP_TOL
        if target is None or -low <= ms / target - 1 <= ACCEPT_TOL or (dense and ms <= target * (1 + SHIP_TOL)):
            break
        limit *= target / ms
    if target is None:
        result, ms = tried[0]
    else:
        # the plan measured closest to the target from below, preferring one with room for the
        # artifact's own timing later (ACCEPT_TOL) over one at the edge (SHIP_TOL)
        under = [t for t in tried if t[1] <= target * (1 + ACCEPT_TOL)] or \
            [t for t in tried if t[1] <= target * (1 + SHIP_TOL)]
        result, ms = max(under, key=lambda t: t[1]) if under else min(tried, key=lambda t: t[1])
        if ms > dense_ms * (1 - SHIP_TOL) and dense_ms <= target * (1 + SHIP_TOL) \
                and getattr(timer, "prepare", None) is None:
            # pruning measured no faster than the dense model, which meets the budget: the
            # channels it removes buy nothing, so ship dense (and keep its fidelity)
            whole = plan_at(max(dense_ms, target) * 1e3)
            if not whole.plan.keep:
                result, ms = whole, dense_ms
                tried.append((result, ms))
                rounds.append({"limit_ms": max(dense_ms, target) * 1e3, "predicted_ms": whole.plan.predicted["latency_ms"],
                               "measured_ms": ms, "dense_beside_ms": None, "dense_plan": True})
                note("the pruned plans measured no faster than the dense model, which meets the budget: "
                     "shipping the dense model")
    chosen = next(i for i, t in enumerate(tried) if t[0] is result)
    fit = Fit(result, target, dense_ms, ms, rounds, limit_ms=rounds[chosen]["limit_ms"],
              ships_dense=bool(rounds[chosen].get("dense_plan")))
    check_shippable(fit, budget, device)
    return fit


def check_shippable(fit: Fit, budget, device: str) -> None:
    """InfeasibleBudget (exit 3) when the measured artifact misses its budget by more than
    SHIP_TOL or is slower than the dense model (a measurement of the dense model against itself
    says nothing, so a plan that ships dense is judged by its budget only)."""
    if fit.measured_ms is None or fit.dense_ms is None:
        return
    ratio = fit.measured_ms / fit.dense_ms
    tried = f"after {len(fit.rounds)} measured round(s)"
    if fit.target_ms is not None and fit.measured_ms > fit.target_ms * (1 + SHIP_TOL):
        raise InfeasibleBudget(
            f"budget {budget.text} = {fit.target_ms:.3f} ms on {device} is not met: the closest plan "
            f"measured {fit.measured_ms:.3f} ms ({ratio:.2f}x of dense {fit.dense_ms:.3f} ms) {tried}; "
            f"smallest reachable latency measured: {min([r['measured_ms'] for r in fit.rounds] or [fit.measured_ms]):.3f} ms")
    if fit.measured_ms > fit.dense_ms * (1 + SHIP_TOL) and not fit.ships_dense:
        raise InfeasibleBudget(f"budget {budget.text} on {device}: the plan's artifact measured "
                               f"{fit.measured_ms:.3f} ms, slower than the dense model ({fit.dense_ms:.3f} ms) {tried}")
