"""The hardware-aware planner: group importance + a cost model + a budget → a Plan.

HALP's loop (Shen et al., NeurIPS 2022): each layer's cost is charged to the group that
owns its output channels (a layer whose outputs are frozen is charged to its input group),
priced from the cost model at the *current* channel counts of its other neighbours; the
knapsack picks how many chunks each group keeps; the counts change, so costs are priced
again from the new neighbours, until the choice stops changing. At that fixed point the
knapsack's costs are the model's true predicted costs, so the budget holds exactly.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from ..errors import InfeasibleBudget
from ..graph.groups import Analysis
from ..graph.types import Group
from ..graph.keep import top_channels
from .budget import Budget
from .costs import CostModel
from .knapsack import DEFAULT_BINS, Infeasible, Options, Solution, solve
from .schema import GroupPlan, Plan

MAX_ITERATIONS = 4


@dataclass
class _Layer:
    node: str
    fixed_in: float
    in_shares: dict[int, float]     # prunable group index -> channels of the input per kept fraction
    fixed_out: float
    out_shares: dict[int, float]
    owner: int | None

    def channels(self, counts: np.ndarray, totals: np.ndarray) -> tuple[int, int]:
        ci = self.fixed_in + sum(n * counts[g] / totals[g] for g, n in self.in_shares.items())
        co = self.fixed_out + sum(n * counts[g] / totals[g] for g, n in self.out_shares.items())
        return max(1, int(round(ci))), max(1, int(round(co)))


@dataclass
class _GroupOptions:
    group: Group
    counts: np.ndarray      # channels kept by each option, ascending (last = all)
    values: np.ndarray      # importance kept by each option


@dataclass(frozen=True)
class _State:
    """Per-group channel counts the loop reached, with what they keep and cost at true prices."""

    counts: np.ndarray                 # channels kept per prunable group, in `Planner.groups` order
    value: float                       # importance kept
    ms: float
    mj: float


@dataclass(frozen=True)
class _Move:
    """One chunk more (fill) or less (repair) for one group, and what the model then costs."""

    ratio: float       # value gained per ms (or mJ) spent; value lost per ms saved in repair
    group: int         # index into `Planner.groups`
    ms: float
    mj: float


@dataclass
class PlanResult:
    plan: Plan
    solve_seconds: float            # time in the knapsack solver alone, all iterations
    total_seconds: float            # pricing + solving
    iterations: int
    converged: bool
    counts: dict[str, int] = field(default_factory=dict)


class Planner:
    def __init__(self, analysis: Analysis, scores: Mapping[str, np.ndarray], cost_model: CostModel,
                 step: int | None = None, min_channels: int | None = None):
        self.analysis = analysis
        self.scores = scores
        self.cost = cost_model
        self.step = max(1, int(step or cost_model.channel_step))
        self.groups = [self._options(g, min_channels) for g in analysis.prunable()]
        self.totals = np.array([o.group.channels for o in self.groups], dtype=np.float64)
        self.layers = self._layers()
        # the layers whose channel counts each group changes
        self.touched: list[list[_Layer]] = [[] for _ in self.groups]
        for layer in self.layers:
            for gi in set(layer.in_shares) | set(layer.out_shares):
                self.touched[gi].append(layer)
        self._cache: dict[tuple[str, int, int], tuple[float, float]] = {}

    # ---------------------------------------------------------------- set-up
    def _options(self, g: Group, min_channels: int | None) -> _GroupOptions:
        chunk = math.lcm(self.step, g.atom_size)
        floor = max(chunk, -(-(min_channels or 0) // chunk) * chunk)
        counts = [k for k in range(floor, g.channels, chunk)] + [g.channels]
        atoms = g.atoms or [[i] for i in range(g.channels)]
        s = np.asarray(self.scores[g.id], dtype=np.float64)
        atom_scores = np.array([s[a].sum() for a in atoms])
        order = np.lexsort((np.arange(len(atoms)), -atom_scores))
        cum = np.concatenate([[0.0], np.cumsum(atom_scores[order])])
        values = np.array([cum[min(len(atoms), int(round(k / g.atom_size)))] for k in counts])
        return _GroupOptions(g, np.asarray(counts, dtype=np.int64), values)

    def _shares(self, tensor: str, index: dict[str, int], group_of_flat: np.ndarray):
        info = self.analysis.tensors.get(tensor) if tensor else None
        if info is None:
            return {}
        gidx = group_of_flat[self.analysis.flat_of[info.ids]]
        shares: dict[int, float] = {}
        for g in gidx[gidx >= 0].tolist():
            shares[g] = shares.get(g, 0.0) + 1.0
        return shares

    def _layers(self) -> list[_Layer]:
        a = self.analysis
        index = {o.group.id: i for i, o in enumerate(self.groups)}
        group_of_flat = np.full(sum(g.channels for g in a.groups), -1, dtype=np.int64)
        for o in self.groups:
            off = a.offsets[o.group.id]
            group_of_flat[off:off + o.group.channels] = index[o.group.id]
        priced = set(self.cost.nodes())
        layers = []
        for node, (x, y, c_in, c_out) in a.layers.items():
            if node not in priced:
                continue
            ins, outs = self._shares(x, index, group_of_flat), self._shares(y, index, group_of_flat)
            owner = _largest(outs) if outs else (_largest(ins) if ins else None)
            layers.append(_Layer(node, c_in - sum(ins.values()), ins, c_out - sum(outs.values()),
                                 outs, owner))
        return layers

    # ---------------------------------------------------------------- pricing
    def layer_cost(self, layer: _Layer, counts: np.ndarray) -> tuple[float, float]:
        ci, co = layer.channels(counts, self.totals)
        key = (layer.node, ci, co)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = tuple(float(v) for v in self.cost.layer_cost(layer.node, ci, co))
        return hit

    def predict(self, counts: np.ndarray) -> tuple[float, float]:
        """Whole-model (ms, mJ) at these per-group channel counts."""
        ms, mj = self.cost.fixed_cost()
        for layer in self.layers:
            l_ms, l_mj = self.layer_cost(layer, counts)
            ms, mj = ms + l_ms, mj + l_mj
        return ms, mj

    def delta(self, counts: np.ndarray, gi: int, n: float) -> tuple[float, float]:
        """Change in (ms, mJ) when group `gi` alone goes from counts[gi] to n channels."""
        trial = counts.copy()
        trial[gi] = n
        d_ms = d_mj = 0.0
        for layer in self.touched[gi]:
            a_ms, a_mj = self.layer_cost(layer, counts)
            b_ms, b_mj = self.layer_cost(layer, trial)
            d_ms, d_mj = d_ms + b_ms - a_ms, d_mj + b_mj - a_mj
        return d_ms, d_mj

    def dense_counts(self) -> np.ndarray:
        return self.totals.copy()

    def min_counts(self) -> np.ndarray:
        return np.array([o.counts[0] for o in self.groups], dtype=np.float64)

    def _priced_options(self, cur: np.ndarray) -> tuple[list[Options], float, float]:
        """Each group's options priced with its neighbours at `cur`; plus the cost of the
        layers no prunable group owns."""
        owned: dict[int, list[_Layer]] = {}
        const_ms, const_mj = 0.0, 0.0
        for layer in self.layers:
            if layer.owner is None:
                ms, mj = self.layer_cost(layer, cur)
                const_ms, const_mj = const_ms + ms, const_mj + mj
            else:
                owned.setdefault(layer.owner, []).append(layer)
        options = []
        counts = cur.copy()
        for gi, o in enumerate(self.groups):
            lat = np.zeros(len(o.counts))
            en = np.zeros(len(o.counts))
            for k, n in enumerate(o.counts):
                counts[gi] = n
                for layer in owned.get(gi, ()):
                    ms, mj = self.layer_cost(layer, counts)
                    lat[k] += ms
                    en[k] += mj
            counts[gi] = cur[gi]
            options.append(Options(o.values, lat, en))
        return options, const_ms, const_mj

    # ---------------------------------------------------------------- the loop
    def run(self, budget: Budget, *, bins: int = DEFAULT_BINS, method: str = "auto",
            max_iterations: int = MAX_ITERATIONS,
            device: str = "host", criterion: str = "l1") -> PlanResult:
        t_start = time.perf_counter()
        dense_ms, dense_mj = self.predict(self.dense_counts())
        lat_limit, en_limit = budget.limits(dense_ms)
        min_ms, min_mj = self.predict(self.min_counts())
        # On a measured LUT the narrowest model is not always the fastest (small layers time
        # noisily, staircases), but keeping every channel is always a plan.
        reach_ms, reach_mj = min(min_ms, dense_ms), min(min_mj, dense_mj)
        if (lat_limit is not None and reach_ms > lat_limit) or (en_limit is not None and reach_mj > en_limit):
            err = InfeasibleBudget(_infeasible_message(budget, lat_limit, en_limit, reach_ms, reach_mj,
                                                       device, self.cost.energy_estimated))
            err.reach_ms = reach_ms   # the closed loop may then try the fastest plan there is
            raise err
        fixed_ms, fixed_mj = self.cost.fixed_cost()
        cur = self.dense_counts()
        visited: list[_State] = []
        seen: set[tuple] = set()
        solve_s, converged, iterations = 0.0, False, 0
        last: Solution | None = None
        for iterations in range(1, max_iterations + 1):
            options, c_ms, c_mj = self._priced_options(cur)
            t0 = time.perf_counter()
            try:
                sol = solve(options,
                            None if lat_limit is None else lat_limit - fixed_ms - c_ms,
                            None if en_limit is None else en_limit - fixed_mj - c_mj,
                            bins=bins, method=method)
            except Infeasible:
                # priced from neighbours too wide to fit: restart from the narrowest model
                solve_s += time.perf_counter() - t0
                cur = self.min_counts()
                continue
            solve_s += time.perf_counter() - t0
            last = sol
            new = np.array([o.counts[k] for o, k in zip(self.groups, sol.choice)], dtype=np.float64)
            ms, mj = self.predict(new)
            visited.append(_State(new, float(sol.value), ms, mj))
            if np.array_equal(new, cur):
                converged = True
                break
            # Priced from the neighbours' old counts, the choice overshoots both ways (wide
            # neighbours make every channel look dear, then narrow ones make it look cheap):
            # move only halfway to it, at least one option per group that differs.
            cur = self._toward(cur, new)
            if tuple(cur.tolist()) in seen:
                break   # the damped walk is cycling: take the best state it visited
            seen.add(tuple(cur.tolist()))
        feasible = [v for v in visited if _fits(v.ms, v.mj, lat_limit, en_limit)]
        if _fits(dense_ms, dense_mj, lat_limit, en_limit):
            feasible.append(_State(self.dense_counts(), float(sum(o.values[-1] for o in self.groups)),
                                   dense_ms, dense_mj))
        if not feasible:
            feasible = [self._repair(visited[-1].counts if visited else self.min_counts(), lat_limit, en_limit)]
        # Each state was chosen at approximate prices (its neighbours' previous counts): spend
        # what is left of the budget at true prices, best value per ms first, and keep the
        # best result. A fixed point gains only what the budget grid rounded away.
        distinct = {tuple(v.counts.tolist()): v for v in feasible}
        chosen = max((self._fill(v, lat_limit, en_limit) for v in distinct.values()),
                     key=lambda v: (v.value, -v.ms))
        sol = last
        plan = self._plan(chosen, dense_ms, dense_mj, budget, device, criterion, {
            "method": sol.method if sol else "repair",
            "iterations": iterations, "converged": converged,
            "bins": sol.bins if sol else 0,
            # the DP's grid is over latency, or over energy when only energy is budgeted
            "discretised": "latency_ms" if lat_limit is not None else "energy_mj",
            "discretisation_error": sol.discretisation_bound if sol else 0.0,
            "rounding_slack": sol.rounding_slack if sol else 0.0,
            "energy_price": sol.energy_price if sol else 0.0,
            "channel_step": self.step,
            "min_channels": {o.group.id: int(o.counts[0]) for o in self.groups},
        })
        return PlanResult(plan, solve_s, time.perf_counter() - t_start, iterations, converged,
                          {o.group.id: int(c) for o, c in zip(self.groups, chosen.counts)})

    def _index(self, counts: np.ndarray) -> list[int]:
        return [int(np.searchsorted(o.counts, c)) for o, c in zip(self.groups, counts)]

    def _toward(self, cur: np.ndarray, new: np.ndarray) -> np.ndarray:
        out = cur.copy()
        for gi, (a, b) in enumerate(zip(self._index(cur), self._index(new))):
            if a != b:
                step = (b - a) // 2 if abs(b - a) > 1 else (b - a)
                out[gi] = self.groups[gi].counts[a + step]
        return out

    def _fill(self, state: _State, lat_limit, en_limit) -> _State:
        """Add one chunk at a time where it buys the most value per ms (or mJ) while the
        budget still holds at true prices."""
        counts, ms, mj = state.counts.copy(), state.ms, state.mj
        pos = self._index(counts)
        while True:
            best: _Move | None = None
            for gi, o in enumerate(self.groups):
                if pos[gi] + 1 >= len(o.counts):
                    continue
                d_ms, d_mj = self.delta(counts, gi, o.counts[pos[gi] + 1])
                t_ms, t_mj = ms + d_ms, mj + d_mj
                if not _fits(t_ms, t_mj, lat_limit, en_limit):
                    continue
                gain = o.values[pos[gi] + 1] - o.values[pos[gi]]
                spent = max((t_ms - ms) if lat_limit is not None else (t_mj - mj), 1e-12)
                ratio = gain / spent
                if best is None or ratio > best.ratio:
                    best = _Move(ratio, gi, t_ms, t_mj)
            if best is None:
                break
            gi, ms, mj = best.group, best.ms, best.mj
            pos[gi] += 1
            counts[gi] = self.groups[gi].counts[pos[gi]]
        ms, mj = self.predict(counts)   # re-summed: no drift from the running deltas
        return _State(counts, float(sum(o.values[p] for o, p in zip(self.groups, pos))), ms, mj)

    def _repair(self, counts: np.ndarray, lat_limit, en_limit) -> _State:
        """Drop one chunk at a time, least value lost per ms saved first, until it fits."""
        counts = counts.copy()
        pos = self._index(counts)
        ms, mj = self.predict(counts)
        while not _fits(ms, mj, lat_limit, en_limit):
            best: _Move | None = None
            for gi, o in enumerate(self.groups):
                if pos[gi] == 0:
                    continue
                d_ms, d_mj = self.delta(counts, gi, o.counts[pos[gi] - 1])
                t_ms, t_mj = ms + d_ms, mj + d_mj
                saved = (ms - t_ms) if lat_limit is not None and ms > lat_limit else (mj - t_mj)
                if saved <= 0:
                    continue
                ratio = (o.values[pos[gi]] - o.values[pos[gi] - 1]) / saved
                if best is None or ratio < best.ratio:
                    best = _Move(ratio, gi, t_ms, t_mj)
            if best is None:
                counts, ms, mj = self.min_counts(), *self.predict(self.min_counts())
                break
            gi, ms, mj = best.group, best.ms, best.mj
            pos[gi] -= 1
            counts[gi] = self.groups[gi].counts[pos[gi]]
        return _State(counts, float(sum(o.values[p] for o, p in zip(self.groups, pos))), ms, mj)

    def _plan(self, state: _State, dense_ms, dense_mj, budget, device, criterion, solver) -> Plan:
        groups = []
        for o, n in zip(self.groups, state.counts):
            g = o.group
            indices = list(range(g.channels)) if n >= g.channels else \
                top_channels(g, np.asarray(self.scores[g.id]), int(n))
            groups.append(GroupPlan(g.id, g.name, g.channels, indices))
        total = float(sum(o.values[-1] for o in self.groups))
        return Plan(model_sha256=self.analysis.model_sha256, device=device, criterion=criterion,
                    budget=budget.to_json(), cost_model=self.cost.describe(),
                    predicted={"dense_latency_ms": dense_ms, "latency_ms": state.ms,
                               "dense_energy_mj": dense_mj, "energy_mj": state.mj,
                               "energy_estimated": bool(self.cost.energy_estimated)},
                    solver=solver, importance={"kept": state.value, "total": total}, groups=groups)


def _largest(shares: dict[int, float]) -> int:
    return min(shares, key=lambda g: (-shares[g], g))


def _fits(ms, mj, lat_limit, en_limit) -> bool:
    return (lat_limit is None or ms <= lat_limit * (1 + 1e-9)) and \
        (en_limit is None or mj <= en_limit * (1 + 1e-9))


def _infeasible_message(budget, lat_limit, en_limit, min_ms, min_mj, device, estimated) -> str:
    est = " (estimated)" if estimated else ""
    want = []
    if lat_limit is not None:
        want.append(f"{lat_limit:.3f} ms")
    if en_limit is not None:
        want.append(f"{en_limit:.3f} mJ")
    return (f"budget {budget.text} ({', '.join(want)}) is not reachable on {device}: the smallest "
            f"reachable latency is {min_ms:.3f} ms and energy {min_mj:.3f} mJ{est}")


def plan_channels(analysis: Analysis, scores: Mapping[str, np.ndarray], cost_model: CostModel,
                  budget: Budget, *, step: int | None = None, min_channels: int | None = None,
                  bins: int = DEFAULT_BINS, method: str = "auto", device: str = "host",
                  criterion: str = "l1") -> PlanResult:
    """The knapsack plan for `budget` (InfeasibleBudget when not reachable)."""
    return Planner(analysis, scores, cost_model, step, min_channels).run(
        budget, bins=bins, method=method, device=device, criterion=criterion)
