"""The knapsack alone, against exhaustive search on small cases."""

import itertools

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from edgeprune.plan.knapsack import Infeasible, Options, solve


def brute_force(groups, latency_budget=None, energy_budget=None):
    best = None
    for choice in itertools.product(*(range(len(g.value)) for g in groups)):
        lat = sum(g.latency[k] for g, k in zip(groups, choice))
        en = sum(g.energy[k] for g, k in zip(groups, choice)) if energy_budget is not None else 0
        if latency_budget is not None and lat > latency_budget + 1e-9:
            continue
        if energy_budget is not None and en > energy_budget + 1e-9:
            continue
        v = sum(g.value[k] for g, k in zip(groups, choice))
        if best is None or v > best:
            best = v
    return best


def totals(groups, choice):
    return (sum(g.value[k] for g, k in zip(groups, choice)),
            sum(g.latency[k] for g, k in zip(groups, choice)),
            sum(g.energy[k] for g, k in zip(groups, choice)) if groups[0].energy is not None else None)


@st.composite
def problems(draw, energy=False):
    n_groups = draw(st.integers(1, 4))
    groups = []
    for _ in range(n_groups):
        n = draw(st.integers(1, 5))
        # importance of each further chunk is >= 0: values rise with chunks kept
        gains = draw(st.lists(st.floats(0, 10, allow_nan=False), min_size=n, max_size=n))
        lat = draw(st.lists(st.floats(0.1, 10, allow_nan=False), min_size=n, max_size=n))
        en = draw(st.lists(st.floats(0.1, 10, allow_nan=False), min_size=n, max_size=n)) if energy else None
        groups.append(Options(np.cumsum(gains), np.asarray(lat), None if en is None else np.asarray(en)))
    min_lat = sum(g.latency.min() for g in groups)
    max_lat = sum(g.latency.max() for g in groups)
    budget = draw(st.floats(min_lat, max_lat + 1))
    return groups, budget


@settings(max_examples=300, deadline=None)
@given(problems(), st.sampled_from([7, 50, 400]))
def test_dp_is_optimal_within_its_discretisation_error(problem, bins):
    groups, budget = problem
    s = solve(groups, latency_budget=budget, bins=bins, method="dp")
    value, lat, _ = totals(groups, s.choice)
    assert lat <= budget + 1e-9                       # never over budget
    assert value == pytest.approx(s.value)
    assert value <= brute_force(groups, budget) + 1e-9
    # as good as the best choice on a budget smaller by the reported error bound
    shrunk = brute_force(groups, budget - s.discretisation_bound)
    if shrunk is not None:
        assert value >= shrunk - 1e-9
    assert 0 <= s.rounding_slack <= s.discretisation_bound + 1e-9


@settings(max_examples=150, deadline=None)
@given(problems())
def test_dp_is_exact_on_a_grid_that_fits_the_costs(problem):
    groups, budget = problem
    # integer costs and a grid of one unit per integer: no rounding at all
    groups = [Options(g.value, np.round(g.latency)) for g in groups]
    budget = float(np.floor(budget))
    room = budget - sum(g.latency.min() for g in groups)
    if room < 1:
        return
    s = solve(groups, latency_budget=budget, bins=int(room), method="dp")
    assert s.value == pytest.approx(brute_force(groups, budget))


@settings(max_examples=200, deadline=None)
@given(problems())
def test_greedy_is_feasible_and_never_beats_the_optimum(problem):
    groups, budget = problem
    s = solve(groups, latency_budget=budget, method="greedy")
    value, lat, _ = totals(groups, s.choice)
    assert lat <= budget + 1e-9
    assert value <= brute_force(groups, budget) + 1e-9


@settings(max_examples=200, deadline=None)
@given(problems(energy=True), st.floats(0, 1))
# found by hypothesis in a full run: values spanning less than the DP's tie tolerance
@example(([Options(np.array([0.0, 1.4544799e-135]), np.array([1.0, 1.0]), np.array([0.5, 1.0]))], 1.0), 0.0)
def test_energy_budget_holds_as_a_second_constraint(problem, frac):
    groups, budget = problem
    lo = sum(g.energy.min() for g in groups)
    hi = sum(g.energy.max() for g in groups)
    e_budget = lo + frac * (hi - lo)
    best = brute_force(groups, budget, e_budget)
    if best is None:
        with pytest.raises(Infeasible):
            solve(groups, latency_budget=budget, energy_budget=e_budget, bins=200)
        return
    s = solve(groups, latency_budget=budget, energy_budget=e_budget, bins=200)
    value, lat, en = totals(groups, s.choice)
    assert lat <= budget + 1e-9 and en <= e_budget + 1e-9
    assert value <= best + 1e-9


@settings(max_examples=100, deadline=None)
@given(problems(energy=True))
def test_energy_alone_is_optimal_within_the_grid(problem):
    groups, _ = problem
    e_budget = sum(g.energy.min() for g in groups) + 0.5 * sum(np.ptp(g.energy) for g in groups)
    s = solve(groups, energy_budget=e_budget, bins=400)
    value, _, en = totals(groups, s.choice)
    assert en <= e_budget + 1e-9
    assert value <= brute_force(groups, None, e_budget) + 1e-9
    shrunk = brute_force(groups, None, e_budget - s.discretisation_bound)
    if shrunk is not None:
        assert value >= shrunk - 1e-9


def test_infeasible_names_the_smallest_reachable_cost():
    groups = [Options([1, 2], [3.0, 5.0]), Options([1, 4], [2.0, 1.5])]
    with pytest.raises(Infeasible) as e:
        solve(groups, latency_budget=4.0)
    assert e.value.min_latency == pytest.approx(4.5)


def test_no_budget_keeps_everything():
    groups = [Options([1, 2, 3], [1, 2, 3]), Options([5, 6], [1, 9])]
    assert solve(groups).choice == [2, 1]


def test_a_cheaper_larger_option_wins_on_a_staircase():
    # keeping 16 channels can be faster than 12 (vector-width staircase): the DP sees it
    g = Options(value=[1.0, 2.0, 3.0], latency=[2.0, 3.0, 2.5])
    s = solve([g], latency_budget=2.6)
    assert s.choice == [2]


def test_a_budget_equal_to_the_cheapest_choice_takes_it():
    # found by hypothesis: a vanishing room made the grid unit vanish and the weights overflow
    g = Options(value=[0.0, 0.0], latency=[0.77395415, 4.0])
    s = solve([g], latency_budget=0.77395415, bins=400)
    assert s.choice == [0] and s.rounding_slack >= 0
    two = [Options([1.0, 2.0], [0.3, 0.9]), Options([1.0, 5.0], [0.4, 7.0])]
    assert solve(two, latency_budget=0.7 + 1e-18).choice == [0, 0]


def test_greedy_reaches_a_cheaper_option_at_any_index_on_a_non_monotone_staircase():
    # found by hypothesis: from the dense option (3 ms) the greedy stepped to index 0 (2 ms)
    # and, looking only at smaller indices, found no way down to the 1 ms options
    g = Options(value=np.zeros(5), latency=np.array([2.0, 1.0, 1.0, 1.0, 3.0]))
    r = solve([g], latency_budget=1.0, method="greedy")
    assert g.latency[r.choice[0]] == 1.0
