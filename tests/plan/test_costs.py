"""The planner over the LUT's own LatencyModel: its layer costs add up to the LUT's
whole-model prediction, and a plan made with it meets its budget by that prediction."""

import numpy as np
import pytest

from edgeprune.graph import analyze
from edgeprune.importance import scores
from edgeprune.lut.layers import model_layers
from edgeprune.lut.predict import LatencyModel, structure_key
from edgeprune.lut.table import Lut
from edgeprune.plan.budget import parse_budget
from edgeprune.plan.costs import LutCostModel
from edgeprune.plan.planner import plan_channels
from tests.plan.test_planner import net

STEP = 8


def grid(dense: int) -> list[int]:
    return sorted(set(range(STEP, dense + 1, STEP)) | {dense})


def a_lut(model) -> Lut:
    """A LUT over every layer's (c_in, c_out) grid; latency a bilinear function of the counts
    (what a convolution's work is), 10% more on unaligned counts."""
    lut = Lut(header={"device": "test", "backend": "ort", "threads": 1, "clock": "cpu",
                      "channel_step": STEP})
    for layer in model_layers(model):
        sig = layer.signature
        ins = [layer.c_in] if sig.kind == "conv" and layer.c_in < STEP else grid(layer.c_in)
        for ci in ins:
            for co in grid(layer.c_out):
                if sig.kind == "dwconv" and ci != co:
                    continue
                ms = 1e-3 * (1 + 0.5 * ci + 0.3 * co + 0.02 * ci * co) * (1.1 if co % STEP else 1.0)
                lut.add(sig, ci, co, {"median_ms": ms, "p90_ms": ms, "count": 1})
    lut.models[structure_key(model)] = {"name": "net", "rest_ms": 0.05}
    return lut


@pytest.fixture(scope="module")
def setup():
    model = net()
    analysis = analyze(model)
    lm = LatencyModel.for_model(a_lut(model), model)
    return model, analysis, lm, LutCostModel(lm)


def test_layer_costs_add_up_to_the_luts_prediction(setup):
    model, analysis, lm, cost = setup
    rng = np.random.default_rng(0)
    for _ in range(5):
        kept = {g.id: int(rng.integers(1, g.channels // STEP + 1)) * STEP for g in analysis.prunable()}
        channels = analysis.layer_channels(kept)
        ours = cost.fixed_cost()[0] + sum(cost.layer_cost(n, *channels[n])[0] for n in cost.nodes())
        assert ours == pytest.approx(lm.predict_ms(channels))


def test_a_plan_over_the_lut_meets_the_budget_by_the_luts_prediction(setup):
    model, analysis, lm, cost = setup
    r = plan_channels(analysis, scores(model, analysis, "l1"), cost, parse_budget("0.6x"))
    channels = analysis.layer_channels({g.id: g.kept for g in r.plan.groups})
    assert lm.predict_ms(channels) == pytest.approx(r.plan.predicted["latency_ms"])
    assert lm.predict_ms(channels) <= 0.6 * lm.predict_ms() * (1 + 1e-9)
    d = r.plan.to_json()["cost_model"]
    assert d["kind"] == "lut" and d["channel_step"] == STEP and d["header"]["device"] == "test"
    assert d["energy_estimated"] is True   # no entry carries a measured energy


def test_energy_estimates_follow_the_work(setup):
    model, analysis, lm, cost = setup
    node = next(iter(cost.nodes()))
    _, small = cost.layer_cost(node, 3, 8)
    _, large = cost.layer_cost(node, 3, 32)
    assert 0 < small < large


def test_a_point_the_lut_cannot_answer_is_a_usage_error_naming_the_layer(setup):
    from edgeprune.errors import UsageError

    model, analysis, lm, cost = setup
    node = next(n for n in cost.nodes() if lm.layers[n].signature.kind == "conv" and lm.layers[n].c_in >= STEP)
    with pytest.raises(UsageError, match=f"layer '{node}'"):
        cost.layer_cost(node, 4096, 4096)
