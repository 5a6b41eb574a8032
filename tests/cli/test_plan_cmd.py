"""`edgeprune plan` through the command line, and `prune --plan` applying what it wrote.

The device is `pixel-7`: no LUT is shipped for it, so costs come from its roofline prior —
a real cost model that needs no measuring, which keeps these tests fast and repeatable."""

import json

import numpy as np
import pytest

from edgeprune.cli import main
from edgeprune.frontend.load import load_model
from edgeprune.graph import analyze
from tests.faults.harness import write_quick_profile
from tests.graph.archs import ARCHS
from tests.helpers import export


@pytest.fixture
def residual_onnx(tmp_path):
    cls, shape = ARCHS["residual"]
    path = tmp_path / "residual.onnx"
    path.write_bytes(export(cls(), shape).proto.SerializeToString())
    return path


def plan(path, out, *extra):
    return main(["plan", str(path), "--device", "pixel-7", "--step", "4", "-o", str(out), *extra])


def test_plan_then_prune_applies_it(residual_onnx, tmp_path, capsys):
    out = tmp_path / "plan.json"
    assert plan(residual_onnx, out, "--budget", "0.5x") == 0
    printed = capsys.readouterr().out
    assert "estimated" in printed and "discretisation error" in printed
    d = json.loads(out.read_text())
    assert d["model_sha256"] == load_model(residual_onnx).sha256
    assert d["cost_model"]["kind"] == "roofline" and d["cost_model"]["estimated"] is True
    assert d["predicted"]["latency_ms"] <= 0.5 * d["predicted"]["dense_latency_ms"] * (1 + 1e-9)
    assert all(len(g["indices"]) == g["kept"] <= g["total"] for g in d["groups"])
    pruned = tmp_path / "pruned.onnx"
    assert main(["prune", str(residual_onnx), "--plan", str(out), "-o", str(pruned)]) == 0
    before, after = analyze(load_model(residual_onnx)), analyze(load_model(pruned))
    assert after.macs < before.macs
    kept = {g["id"]: g["kept"] for g in d["groups"]}
    for gid, n in kept.items():
        want = analyze(load_model(residual_onnx)).group(gid).channels
        assert n <= want


def test_same_inputs_give_byte_identical_plans(residual_onnx, tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert plan(residual_onnx, a, "--budget", "0.6x", "--budget", "1000mJ") == 0
    assert plan(residual_onnx, b, "--budget", "0.6x,1000mJ") == 0
    assert a.read_bytes() == b.read_bytes()


def test_an_unreachable_budget_exits_3_naming_the_smallest_latency(residual_onnx, tmp_path, capsys):
    out = tmp_path / "plan.json"
    assert plan(residual_onnx, out, "--budget", "0.000001ms") == 3
    err = capsys.readouterr().err
    assert "smallest reachable latency is" in err and "ms" in err
    assert not out.exists()


@pytest.mark.parametrize("budget", ["-3ms", "0x", "abc"])
def test_a_bad_budget_exits_2_before_any_work(residual_onnx, tmp_path, capsys, budget):
    out = tmp_path / "plan.json"
    assert plan(residual_onnx, out, "--budget", budget) == 2
    err = capsys.readouterr().err.strip()
    assert "--budget" in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_taylor_without_data_exits_2(residual_onnx, tmp_path, capsys):
    assert plan(residual_onnx, tmp_path / "p.json", "--budget", "0.5x", "--criterion", "taylor") == 2
    assert "--data" in capsys.readouterr().err


def test_taylor_with_data_plans(residual_onnx, tmp_path):
    model = load_model(residual_onnx)
    (name, shape), = model.input_shapes.items()
    data = tmp_path / "calib.npz"
    np.savez(data, **{name: np.random.default_rng(0).standard_normal((8, *shape[1:])).astype(np.float32)})
    out = tmp_path / "p.json"
    assert plan(residual_onnx, out, "--budget", "0.5x", "--criterion", "taylor", "--data", str(data)) == 0
    assert json.loads(out.read_text())["criterion"] == "taylor"


def test_a_plan_for_another_model_exits_2(residual_onnx, tmp_path, capsys):
    out = tmp_path / "plan.json"
    assert plan(residual_onnx, out, "--budget", "0.5x") == 0
    cls, shape = ARCHS["residual"]
    other = tmp_path / "other.onnx"
    import torch
    torch.manual_seed(1)
    other.write_bytes(export(cls(), shape).proto.SerializeToString())
    assert main(["prune", str(other), "--plan", str(out), "-o", str(tmp_path / "x.onnx")]) == 2
    assert "another model" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.slow
def test_measure_on_host_records_timings_and_meets_the_budget(tmp_path, capsys):
    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(32, 10))
    path = tmp_path / "net.onnx"
    path.write_bytes(export(net, (1, 3, 48, 48)).proto.SerializeToString())
    lut = tmp_path / "lut.json"   # its own LUT: measured here, leaves the shared one alone
    out = tmp_path / "plan.json"
    # this machine with a fixed channel step and short timing: a LUT in seconds
    device = write_quick_profile(tmp_path)
    assert main(["plan", str(path), "--device", str(device), "--lut", str(lut), "--budget", "0.6x",
                 "--measure", "-o", str(out)]) == 0
    d = json.loads(out.read_text())
    m = d["measured"]
    assert d["budget"]["text"] == "0.6x"
    # both figures are written rounded to 6 decimals (plan/schema.py), so they agree to 1e-6
    assert m["target_ms"] == pytest.approx(0.6 * m["dense_ms"], abs=1e-6)
    assert 1 <= len(m["rounds"]) <= 3
    assert m["latency_ms"] in [r["measured_ms"] for r in m["rounds"]]
    assert "measured" in capsys.readouterr().out
