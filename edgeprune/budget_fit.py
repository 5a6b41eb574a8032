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
    whole: tuple[float, float] | None = None   # (predicted, measured) whole model as it ships: round 1's scale

    def to_json(self) -> dict[str, Any]:
        return {"target_ms": self.target_ms, "dense_measured_ms": self.dense_ms,
                "measured_ms": self.measured_ms, "rounds": self.rounds, "not_measured": self.not_measured,
                "whole_model": None if self.whole is None else
                {"predicted_ms": self.whole[0], "measured_ms": self.whole[1]}}


def fit_plan(plan_at: Callable[[float | None], Any], budget, timer, dense_model, candidate_of: Callable[[Any], Any],
             dense_ms: float | None, device: str, note: Callable[[str], None] = lambda s: None,
             not_measured: str | None = None, start_ms: float | None = None,
             dense_predicted_ms: float | Callable[[], float] | None = None,
             whole_ms: float | None = None) -> Fit:
    """`plan_at(limit_ms) -> PlanResult` (InfeasibleBudget when none fits); `candidate_of(result)`
    is the pruned model a plan ships; `timer` a ShippedTimer, or None when the target cannot be
    measured (`not_measured` says why; `dense_ms` is then the dense model's prediction).
    `dense_ms` is the dense model as it ships on the device (measured once and kept in the LUT,
    so the first plan, and the artifact when it lands in the band, are the same every run).

    The loop reads the measurements as points (predicted, measured). The first is the whole
    model as it ships: the dense model itself, or, when candidates ship transformed (int8),
    `whole_ms`, that model measured on the dense reference's scale. Round 1 plans at the
    target scaled by how far the LUT's prediction of the whole model is off (the LUT and the
    dense reference may be timed at different speeds of a shared machine, and an int8 LUT's
    whole-model term is fitted at one size); without that point, at the target. A plan
    measured within -SHIP_TOL..+ACCEPT_TOL of the target ships as planned. A miss is corrected
    (a few rounds) along the line through the points nearest the target: interpolated between
    one above and one below it, else extrapolated from the nearest one with the slope to
    another (or, when noise makes that slope implausible, with its ratio measured / predicted);
    the plan measured closest to the target from below is kept.

    `start_ms` is the limit an earlier compile of this model for this target shipped at (kept in
    the LUT): round 1 plans there, and its plan ships whenever it still meets the budget, so
    the same command gives the same artifact.

    `dense_predicted_ms` (a number, or a function computing it only if needed) is the dense
    model's prediction in the LUT's units, asked for when round 1 finds no plan at all.

    A pruned plan that measures no faster than the dense model (within SHIP_TOL) where the
    dense model meets the budget ships dense: its pruning buys no speed and costs fidelity."""
    limit, _ = budget.limits(dense_ms)
    if timer is None:
        return Fit(plan_at(limit), limit, None, None, not_measured=not_measured)
    note(f"dense model as it ships: {dense_ms:.3f} ms on {device}")
    dense_seen: list[float] = []
    shipped_as_is = getattr(timer, "prepare", None) is None
    built: dict[str, Any] = {}

    def measure(result, again: bool = False) -> float:
        # each artifact is built once: a second look re-times the same files
        if "dense" not in built:
            built["dense"] = timer.build(dense_model, prepared=True)
        if not again:
            built["candidate"] = timer.build(candidate_of(result))
        ms = timer.time_artifacts(built)
        dense_seen.append(ms["dense"])
        # the machine's load drifts between rounds: judge the candidate by its ratio to the dense
        # model timed beside it, on the scale of the dense reference
        return ms["candidate"] / ms["dense"] * dense_ms

    target = limit
    points: list[tuple[float, float]] = []
    whole = None
    if target is not None and start_ms is not None:
        limit = start_ms
    elif target is not None:
        whole = _whole_point(plan_at, dense_ms if shipped_as_is else whole_ms, max(dense_ms, target))
        if whole is not None:
            points.append(whole)
            limit = target * whole[0] / whole[1]
            note(f"whole model as it ships: predicted {whole[0]:.3f} ms, measured {whole[1]:.3f} ms")
    tried, rounds = [], []
    for k in range(ROUNDS if target is not None else 1):
        try:
            result = plan_at(limit)
        except InfeasibleBudget as e:
            if not tried and target is None:
                raise
            if callable(dense_predicted_ms) and not tried and k == 0:
                dense_predicted_ms = dense_predicted_ms()
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
        dense = not result.plan.keep and shipped_as_is
        if dense:
            ms = dense_ms
        else:
            ms = measure(result)
            if target is not None and ms > target * (1 + SHIP_TOL):
                # a load spike on a shared machine only ever slows a run: look again before
                # taking a miss for the plan's
                ms = min(ms, measure(result, again=True))
        predicted = result.plan.predicted["latency_ms"]
        points.append((predicted, ms))
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
        limit = _next_limit(points, target * (1 - (SHIP_TOL - ACCEPT_TOL) / 2), limit, ms)
    if target is None:
        result, ms = tried[0]
    else:
        # the plan measured closest to the target from below, preferring one with room for the
        # artifact's own timing later (ACCEPT_TOL) over one at the edge (SHIP_TOL)
        under = [t for t in tried if t[1] <= target * (1 + ACCEPT_TOL)] or \
            [t for t in tried if t[1] <= target * (1 + SHIP_TOL)]
        result, ms = max(under, key=lambda t: t[1]) if under else min(tried, key=lambda t: t[1])
        if ms > dense_ms * (1 - SHIP_TOL) and dense_ms <= target * (1 + SHIP_TOL) and shipped_as_is:
            # pruning measured no faster than the dense model, which meets the budget: the
            # channels it removes buy nothing, so ship dense (and keep its fidelity)
            dense_plan = plan_at(max(dense_ms, target) * 1e3)
            if not dense_plan.plan.keep:
                result, ms = dense_plan, dense_ms
                tried.append((result, ms))
                rounds.append({"limit_ms": max(dense_ms, target) * 1e3,
                               "predicted_ms": dense_plan.plan.predicted["latency_ms"],
                               "measured_ms": ms, "dense_beside_ms": None, "dense_plan": True})
                note("the pruned plans measured no faster than the dense model, which meets the budget: "
                     "shipping the dense model")
    chosen = next(i for i, t in enumerate(tried) if t[0] is result)
    fit = Fit(result, target, dense_ms, ms, rounds, limit_ms=rounds[chosen]["limit_ms"],
              ships_dense=bool(rounds[chosen].get("dense_plan")), whole=whole)
    check_shippable(fit, budget, device)
    return fit


def _whole_point(plan_at, measured_ms: float | None, dense_scale_ms: float) -> tuple[float, float] | None:
    """(predicted, measured) of the plan that keeps every channel, when there is one and it
    was measured."""
    if measured_ms is None:
        return None
    try:
        whole = plan_at(dense_scale_ms * 1e3)
    except InfeasibleBudget:    # an energy budget the whole model exceeds
        return None
    predicted = whole.plan.predicted["latency_ms"]
    return (predicted, measured_ms) if not whole.plan.keep and predicted > 0 else None


def _next_limit(points: list[tuple[float, float]], aim: float, limit: float, ms: float) -> float:
    """The planning limit whose plan should measure `aim`, from the (predicted, measured)
    points so far; `limit` and `ms` are the last round's limit and measurement."""
    above = [p for p in points if p[1] > aim]
    below = [p for p in points if p[1] <= aim]
    if above and below:
        (pa, ma), (pb, mb) = min(above, key=lambda p: p[1]), max(below, key=lambda p: p[1])
        return pb + (aim - mb) * (pa - pb) / (ma - mb)
    near = sorted(points, key=lambda p: abs(p[1] - aim))
    p1, m1 = near[0]
    if p1 <= 0:
        return limit * aim / ms
    ratio = m1 / p1
    # a slope from two plans whose predictions lie close together is mostly timing noise
    apart = [p for p in near[1:] if abs(p[0] - p1) >= 0.1 * p1]
    if apart:
        slope = (m1 - apart[0][1]) / (p1 - apart[0][0])
        if 0.5 * ratio <= slope <= 2 * ratio:
            return p1 + (aim - m1) / slope
    return p1 * aim / m1


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
