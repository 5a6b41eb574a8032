"""--plan files that do not fit the model: exit 2, one line, no output written."""

import hashlib
import json

import onnx
import pytest
import torch
import torch.nn as nn

from edgeprune.frontend.export import export_module
from edgeprune.frontend.load import load_model
from edgeprune.graph import analyze
from edgeprune.plan.schema import GroupPlan, Plan, dumps_plan

from .conftest import tiny_proto


def plan_for(model_path, keep: dict[str, list[int]], sha256: str | None = None) -> str:
    model = load_model(model_path)
    analysis = analyze(model)
    groups = [GroupPlan(g.id, g.name, g.channels, sorted(keep.get(g.id, range(g.channels))))
              for g in analysis.groups]
    plan = Plan(model_sha256=sha256 or model.sha256, device="host", criterion="l1",
                budget={"text": "0.5x", "latency_ms": None, "latency_x": 0.5, "energy_mj": None},
                cost_model={"kind": "test"},
                predicted={"dense_latency_ms": 1.0, "latency_ms": 0.5, "dense_energy_mj": None,
                           "energy_mj": None, "energy_estimated": False},
                solver={"method": "test", "iterations": 0}, importance={"kept": 1.0, "total": 2.0},
                groups=groups)
    return dumps_plan(plan)


@pytest.fixture
def write(tmp_path):
    def w(name, text):
        (tmp_path / name).write_text(text)
        return tmp_path / name

    return w


def test_a_valid_plan_prunes(cli, tiny, write, out):
    r = cli("prune", tiny, "--plan", write("p.json", plan_for(tiny, {"g0": [0, 2, 4]})), "-o", out)
    assert r.code == 0, r.err
    assert out.exists()


def test_a_plan_for_another_model_is_refused(refused, tiny, tmp_path, write, out):
    other = tmp_path / "other.onnx"
    other.write_bytes(tiny_proto(channels=8, size=6).SerializeToString())
    plan = write("p.json", plan_for(other, {"g0": [0, 1]}))
    refused(2, "prune", tiny, "--plan", plan, "-o", out, words=["another model"], output=out)


def test_a_plan_whose_hash_matches_but_groups_do_not_is_refused(refused, tiny, tmp_path, write, out):
    other = tmp_path / "other.onnx"
    other.write_bytes(tiny_proto(channels=12).SerializeToString())
    sha = hashlib.sha256(tiny.read_bytes()).hexdigest()
    plan = write("p.json", plan_for(other, {"g0": [0, 1]}, sha256=sha))
    refused(2, "prune", tiny, "--plan", plan, "-o", out, words=["g0", "12"], output=out)


@pytest.mark.parametrize("indices, words", [([0, 8], ["out of range"]), ([], ["kept"])])
def test_a_plan_with_bad_indices_is_refused(refused, tiny, write, out, indices, words):
    doc = json.loads(plan_for(tiny, {"g0": [0, 1]}))
    doc["groups"][0]["indices"] = indices
    doc["groups"][0]["kept"] = len(indices) or 1
    refused(2, "prune", tiny, "--plan", write("p.json", json.dumps(doc)), "-o", out, words=words, output=out)


def test_a_plan_pruning_a_group_frozen_by_an_op_without_rule_names_the_op(refused, tmp_path, write, out):
    proto = tiny_proto()
    relu = proto.graph.node[1]
    relu.op_type, relu.name = "LRN", "lrn"
    relu.attribute.append(onnx.helper.make_attribute("size", 3))
    model = tmp_path / "lrn.onnx"
    model.write_bytes(proto.SerializeToString())
    doc = json.loads(plan_for(model, {}))
    doc["groups"][0]["indices"], doc["groups"][0]["kept"] = [0, 1], 2
    refused(2, "prune", model, "--plan", write("p.json", json.dumps(doc)), "-o", out,
            words=["frozen", "LRN"], output=out)


class SplitHalves(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 1)
        self.p = nn.Conv2d(4, 4, 1)
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        p, q = torch.split(self.a(x), [4, 4], 1)
        return self.head(torch.cat([self.p(p), q], 1))


def test_a_plan_emptying_a_split_output_is_refused(refused, tmp_path, write, out):
    model = export_module(SplitHalves(), (1, 3, 4, 4), tmp_path / "split.onnx")
    analysis = analyze(load_model(model))
    g = next(g for g in analysis.prunable() if g.channels == 8)
    plan = write("p.json", plan_for(model, {g.id: [0, 1, 2, 3]}))
    refused(2, "prune", model, "--plan", plan, "-o", out, words=["split"], output=out)


@pytest.mark.parametrize("text, words", [
    ("{not json", ["invalid json"]),
    ("", ["invalid json"]),
    ('{"format": "something-else"}', ["not an edgeprune plan"]),
    ('{"format": "edgeprune-plan", "version": 99}', ["version 99"]),
    ('{"format": "edgeprune-plan", "version": 1}', ["invalid plan"]),
], ids=["broken", "empty", "format", "version", "schema"])
def test_a_malformed_plan_is_refused(refused, tiny, write, out, text, words):
    refused(2, "prune", tiny, "--plan", write("p.json", text), "-o", out, words=words, output=out)


def test_a_missing_plan_or_two_sources_of_keep_are_refused(refused, tiny, tmp_path, write, out):
    refused(2, "prune", tiny, "--plan", tmp_path / "absent.json", "-o", out, words=["absent.json"], output=out)
    plan = write("p.json", plan_for(tiny, {"g0": [0, 1]}))
    refused(2, "prune", tiny, "--plan", plan, "--ratio", "0.5", "-o", out, words=["--ratio", "--plan"], output=out)


def test_a_plan_with_a_kept_count_that_disagrees_is_refused(refused, tiny, write, out):
    doc = json.loads(plan_for(tiny, {"g0": [0, 1, 2]}))
    doc["groups"][0]["kept"] = 5
    refused(2, "prune", tiny, "--plan", write("p.json", json.dumps(doc)), "-o", out, words=["g0"], output=out)
