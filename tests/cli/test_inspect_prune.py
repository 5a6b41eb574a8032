"""`edgeprune inspect` and `edgeprune prune` through the command line."""

import json

import numpy as np
import onnx
import pytest

from edgeprune.cli import main
from edgeprune.frontend.load import load_model
from edgeprune.graph import analyze
from tests.graph.archs import ARCHS
from tests.helpers import export, random_feeds, run


@pytest.fixture
def residual_onnx(tmp_path):
    cls, shape = ARCHS["residual"]
    model = export(cls(), shape)
    path = tmp_path / "residual.onnx"
    path.write_bytes(model.proto.SerializeToString())
    return path


def test_inspect_json_lists_groups_members_and_totals(residual_onnx, capsys):
    assert main(["inspect", str(residual_onnx), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["prunable_groups"] >= 1 and out["frozen_groups"] >= 1
    g = out["groups"][0]
    assert {"id", "channels", "members", "prunable", "frozen_reason"} <= set(g)
    assert {"node", "tensor", "axis", "role"} <= set(g["members"][0])
    frozen = [g for g in out["groups"] if not g["prunable"]]
    assert all(g["frozen_reason"] for g in frozen)
    assert out["totals"]["macs"]["after"] < out["totals"]["macs"]["before"]
    assert out["totals"]["params"]["after"] < out["totals"]["params"]["before"]


def test_inspect_table_names_why_groups_are_frozen(residual_onnx, capsys):
    assert main(["inspect", str(residual_onnx)]) == 0
    assert "model output" in capsys.readouterr().out


def test_prune_by_ratio_writes_a_smaller_model_that_runs(residual_onnx, tmp_path):
    out = tmp_path / "out" / "pruned.onnx"
    assert main(["prune", str(residual_onnx), "--ratio", "0.5", "--round-to", "4", "-o", str(out)]) == 0
    pruned = onnx.load(out)
    onnx.checker.check_model(pruned)
    before, after = analyze(load_model(residual_onnx)), analyze(load_model(out))
    assert after.params < before.params and after.macs < before.macs
    assert run(pruned, random_feeds(load_model(out)))[0].shape == (1, 4, 8, 8)


def test_prune_is_deterministic(residual_onnx, tmp_path):
    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    for p in (a, b):
        assert main(["prune", str(residual_onnx), "--ratio", "0.5", "--criterion", "bn", "-o", str(p)]) == 0
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize("args, message", [
    (["--ratio", "0"], "--ratio must be in (0, 1]"),
    (["--ratio", "1.5"], "--ratio must be in (0, 1]"),
    ([], "exactly one of --ratio and --plan"),
    (["--ratio", "0.5", "--criterion", "taylor"], "--criterion taylor needs --data"),
])
def test_prune_refuses_bad_flags_with_one_line_and_writes_nothing(residual_onnx, tmp_path, capsys, args, message):
    out = tmp_path / "p.onnx"
    assert main(["prune", str(residual_onnx), *args, "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_prune_refuses_a_non_onnx_file(tmp_path, capsys):
    bad = tmp_path / "notes.onnx"
    bad.write_text("this is not a model")
    out = tmp_path / "p.onnx"
    assert main(["prune", str(bad), "--ratio", "0.5", "-o", str(out)]) == 2
    assert "not a valid ONNX model" in capsys.readouterr().err
    assert not out.exists()
