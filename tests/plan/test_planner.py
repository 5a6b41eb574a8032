import numpy as np
import pytest
import torch
from torch import nn

from edgeprune.errors import InfeasibleBudget
from edgeprune.graph import analyze
from edgeprune.importance import scores
from edgeprune.plan.budget import parse_budget
from edgeprune.plan.planner import Planner, plan_channels
from edgeprune.plan.schema import dumps_plan
from edgeprune.rewrite import prune
from tests.helpers import export
from tests.plan.macs_cost import MacsCostModel


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, 48, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(48)
        self.conv2 = nn.Conv2d(48, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


def net():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                      Block(32), nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
                      nn.Conv2d(64, 40, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                      nn.Linear(40, 10))
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            nn.init.uniform_(mod.weight, 0.1, 1.0)
    return export(m, (1, 3, 32, 32))


@pytest.fixture(scope="module")
def setup():
    model = net()
    analysis = analyze(model)
    return model, analysis, scores(model, analysis, "l1"), MacsCostModel(model, step=8, fixed_ms=0.01)


@pytest.mark.parametrize("budget", ["0.3x", "0.5x", "0.8x"])
def test_the_plan_meets_the_budget_and_leaves_no_chunk_unspent(setup, budget):
    model, analysis, s, cost = setup
    r = plan_channels(analysis, s, cost, parse_budget(budget))
    p = r.plan.predicted
    frac = float(budget[:-1])
    assert p["latency_ms"] <= frac * p["dense_latency_ms"] * (1 + 1e-9)
    # no budget left on the table: one more chunk anywhere would break it
    planner = Planner(analysis, s, cost)
    counts = np.array([g.kept for g in r.plan.groups], dtype=float)
    for gi, o in enumerate(planner.groups):
        bigger = o.counts[o.counts > counts[gi]]
        if len(bigger):
            trial = counts.copy()
            trial[gi] = bigger[0]
            assert planner.predict(trial)[0] > frac * p["dense_latency_ms"]
    # the prediction is the cost model's own sum at the planned channel counts
    channels = analysis.layer_channels({g.id: g.kept for g in r.plan.groups})
    direct = cost.fixed_cost()[0] + sum(cost.layer_cost(n, *channels[n]) [0] for n in cost.nodes())
    assert p["latency_ms"] == pytest.approx(direct)


def test_kept_counts_are_multiples_of_the_step_and_at_least_the_minimum(setup):
    model, analysis, s, cost = setup
    r = plan_channels(analysis, s, cost, parse_budget("0.3x"), min_channels=16)
    for g in r.plan.groups:
        assert g.kept == g.total or (g.kept % 8 == 0 and g.kept >= 16)


def test_the_kept_channels_are_the_most_important(setup):
    model, analysis, s, cost = setup
    r = plan_channels(analysis, s, cost, parse_budget("0.4x"))
    for g in r.plan.groups:
        if g.kept < g.total:
            dropped = np.setdiff1d(np.arange(g.total), g.indices)
            assert s[g.id][g.indices].min() >= s[g.id][dropped].max()


def test_same_inputs_give_the_same_bytes(setup):
    model, analysis, s, cost = setup
    a = dumps_plan(plan_channels(analysis, s, cost, parse_budget("0.5x")).plan)
    b = dumps_plan(plan_channels(analysis, s, MacsCostModel(model, step=8, fixed_ms=0.01), parse_budget("0.5x")).plan)
    assert a == b


def test_an_unreachable_budget_names_the_smallest_reachable_latency(setup):
    model, analysis, s, cost = setup
    planner = Planner(analysis, s, cost)
    smallest = planner.predict(planner.min_counts())[0]
    with pytest.raises(InfeasibleBudget, match=f"smallest reachable latency is {smallest:.3f} ms"):
        plan_channels(analysis, s, cost, parse_budget(f"{smallest * 0.9:.6f}ms"))


def test_an_energy_budget_holds_alone_and_with_latency(setup):
    model, analysis, s, cost = setup
    planner = Planner(analysis, s, cost)
    dense_ms, dense_mj = planner.predict(planner.dense_counts())
    r = plan_channels(analysis, s, cost, parse_budget(f"{0.5 * dense_mj:.6f}mJ"))
    assert r.plan.predicted["energy_mj"] <= 0.5 * dense_mj * (1 + 1e-6)
    both = plan_channels(analysis, s, cost, parse_budget(f"0.7x,{0.4 * dense_mj:.6f}mJ"))
    assert both.plan.predicted["energy_mj"] <= 0.4 * dense_mj * (1 + 1e-6)
    assert both.plan.predicted["latency_ms"] <= 0.7 * dense_ms * (1 + 1e-9)


def test_more_budget_never_keeps_less_importance(setup):
    model, analysis, s, cost = setup
    kept = [plan_channels(analysis, s, cost, parse_budget(b)).plan.importance["kept"]
            for b in ("0.3x", "0.5x", "0.7x", "1x")]
    assert kept == sorted(kept)
    assert kept[-1] == pytest.approx(plan_channels(analysis, s, cost, parse_budget("1x")).plan.importance["total"])


def test_the_plan_prunes(setup):
    model, analysis, s, cost = setup
    r = plan_channels(analysis, s, cost, parse_budget("0.5x"))
    pruned = prune(model, analysis, r.plan.keep)
    after = analyze(pruned)
    assert after.macs < analysis.macs


def test_the_greedy_fallback_meets_the_budget_and_the_dp_keeps_at_least_as_much(setup):
    model, analysis, s, cost = setup
    greedy = plan_channels(analysis, s, cost, parse_budget("0.5x"), method="greedy")
    dp = plan_channels(analysis, s, cost, parse_budget("0.5x"), method="dp")
    assert greedy.plan.solver["method"] == "greedy"
    assert greedy.plan.predicted["latency_ms"] <= 0.5 * greedy.plan.predicted["dense_latency_ms"] * (1 + 1e-9)
    assert dp.plan.importance["kept"] >= greedy.plan.importance["kept"] * 0.98
