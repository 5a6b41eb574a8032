import json

import pytest
import torch
from torch import nn

from edgeprune.errors import UsageError
from edgeprune.graph import analyze
from edgeprune.plan.schema import GroupPlan, Plan, dumps_plan, load_plan, save_plan
from tests.helpers import export


def small_model():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                        nn.Conv2d(16, 8, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(8, 4))
    return export(net, (1, 3, 8, 8))


def a_plan(model, analysis, kept=(0, 2, 5, 7)):
    g = analysis.prunable()[0]
    return Plan(model_sha256=model.sha256, device="host", criterion="l1",
                budget={"text": "0.5x", "latency_ms": None, "latency_x": 0.5, "energy_mj": None},
                cost_model={"kind": "test"},
                predicted={"dense_latency_ms": 1.0, "latency_ms": 0.5, "dense_energy_mj": None,
                           "energy_mj": None, "energy_estimated": True},
                solver={"method": "dp", "iterations": 1}, importance={"kept": 1.0, "total": 2.0},
                groups=[GroupPlan(g.id, g.name, g.channels, list(kept))])


def test_round_trip_gives_the_keep_map(tmp_path):
    model = small_model()
    analysis = analyze(model)
    plan = a_plan(model, analysis)
    path = save_plan(plan, tmp_path / "plan.json")
    back = load_plan(path, model, analysis)
    assert back.keep == {analysis.prunable()[0].id: [0, 2, 5, 7]}
    assert dumps_plan(back) == path.read_text()


def test_float_noise_does_not_change_the_bytes(tmp_path):
    model = small_model()
    analysis = analyze(model)
    a, b = a_plan(model, analysis), a_plan(model, analysis)
    b.predicted["latency_ms"] = 0.5 + 1e-12
    assert dumps_plan(a) == dumps_plan(b)


def test_a_plan_for_another_model_is_refused(tmp_path):
    model = small_model()
    analysis = analyze(model)
    plan = a_plan(model, analysis)
    plan.model_sha256 = "0" * 64
    path = save_plan(plan, tmp_path / "plan.json")
    with pytest.raises(UsageError, match="another model"):
        load_plan(path, model, analysis)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(version=99), "version 99"),
    (lambda d: d.pop("groups"), "groups"),
    (lambda d: d["groups"][0].update(indices=[0, 99, 1, 2]), "out of range"),
    (lambda d: d["groups"][0].update(total=3), "the plan says 3"),
    (lambda d: d["groups"][0].update(kept=2), "'kept' is 2"),
])
def test_broken_plans_are_one_line_usage_errors(tmp_path, edit, message):
    model = small_model()
    analysis = analyze(model)
    d = a_plan(model, analysis).to_json()
    edit(d)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(d))
    with pytest.raises(UsageError, match=message) as e:
        load_plan(path, model, analysis)
    assert "\n" not in str(e.value)


def test_not_json_names_the_file(tmp_path):
    model = small_model()
    path = tmp_path / "p.json"
    path.write_text("{nope")
    with pytest.raises(UsageError, match="p.json"):
        load_plan(path, model, analyze(model))
