import pytest

from edgeprune.errors import InfeasibleBudget
from edgeprune.plan.calibrate import fit_measured


def test_a_device_slower_than_predicted_is_met_by_planning_tighter():
    # the device runs every plan 25% slower than predicted, plus a fixed 0.2 ms
    plans = []

    def plan_at(limit):
        plans.append(limit)
        return limit, limit

    fitted = fit_measured(plan_at, lambda predicted: 1.25 * predicted + 0.2, target_ms=10.0)
    assert fitted.measured_ms == pytest.approx(10.0, rel=0.02)
    assert plans[0] == 10.0 and plans[1] < plans[0]
    assert [r["measured_ms"] for r in fitted.rounds] == [1.25 * p + 0.2 for p in plans]


def test_it_never_returns_a_plan_above_target_when_one_below_was_measured():
    # a staircase device: anything between 9 and 10 ms of plan measures 11 ms
    def measure(p):
        return 11.0 if 9 <= p <= 10 else p

    fitted = fit_measured(lambda limit: (limit, limit), measure, target_ms=10.0, rounds=3)
    assert fitted.measured_ms <= 10.0 * 1.02


def test_an_infeasible_tighter_limit_keeps_the_best_so_far():
    def plan_at(limit):
        if limit < 9.5:
            raise InfeasibleBudget("no")
        return limit, limit

    fitted = fit_measured(plan_at, lambda p: 1.1 * p, target_ms=10.0)
    assert fitted.candidate == 10.0 and len(fitted.rounds) == 1
