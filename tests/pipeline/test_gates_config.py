"""Gates (value and verdict per gate, a failure naming gate and value) and the config table
mapping onto a command's flags."""

from __future__ import annotations

import click
import pytest

from edgeprune.config import config_option, default_map
from edgeprune.errors import GateFailed, UsageError
from edgeprune.gates import Measured, check_limits, evaluate, raise_if_failed


def test_each_gate_compares_its_value_with_the_limit():
    m = Measured(latency_ms=5.0, latency_source="measured", energy_mj=2.0, fidelity=0.9, size_mb=1.5)
    res = {r.name: r for r in evaluate({"max_latency": 5.0, "max_energy": 1.0, "min_fidelity": 0.95,
                                         "max_size": 2.0}, m)}
    assert res["max_latency"].passed and res["max_size"].passed
    assert not res["max_energy"].passed and not res["min_fidelity"].passed
    assert res["min_fidelity"].value == 0.9


def test_a_gate_without_a_value_fails():
    (r,) = evaluate({"min_fidelity": 0.5}, Measured())
    assert not r.passed and "not available" in r.describe()


def test_a_failed_gate_raises_naming_flag_and_measured_value():
    results = evaluate({"max_latency": 4.9}, Measured(latency_ms=5.0, latency_source="measured median on host"))
    with pytest.raises(GateFailed, match=r"--max-latency 4\.9 ms failed: 5 ms \(measured median on host\)"):
        raise_if_failed(results, "out")


@pytest.mark.parametrize("limits, flag", [({"max_latency": 0.0}, "--max-latency"),
                                          ({"min_fidelity": 1.2}, "--min-fidelity"),
                                          ({"max_size": float("nan")}, "--max-size")])
def test_bad_limits_are_usage_errors(limits, flag):
    with pytest.raises(UsageError, match=flag):
        check_limits(limits)


@click.command()
@click.argument("model", required=False)
@click.option("--max-latency", type=float)
@click.option("--budget", multiple=True)
@click.option("--data")
def _cmd(model, max_latency, budget, data):
    pass


def test_config_keys_map_to_flags_with_dashes_or_underscores(tmp_path):
    cfg = tmp_path / "edgeprune.toml"
    d = default_map(_cmd, {"max-latency": 3, "max_latency": 4, "budget": "0.5x", "model": "m.onnx",
                           "data": "calib.npz"}, cfg, "compile", frozenset({"data"}))
    assert d["max_latency"] == 4 and d["budget"] == ["0.5x"] and d["model"] == "m.onnx"
    assert d["data"] == str(tmp_path / "calib.npz")


def test_an_unknown_key_names_the_file_the_key_and_the_known_ones(tmp_path):
    with pytest.raises(UsageError, match=r"unknown key 'budgett' in \[compile\].*known: .*budget"):
        default_map(_cmd, {"budgett": "1x"}, tmp_path / "e.toml", "compile")


def test_the_command_line_wins_over_the_config(tmp_path):
    cfg = tmp_path / "e.toml"
    cfg.write_text('[run]\nmax-latency = 3.0\nbudget = ["0.5x"]\n')
    seen = {}

    @click.command()
    @click.option("--max-latency", type=float)
    @click.option("--budget", multiple=True)
    @config_option("run")
    def run(max_latency, budget):
        seen.update(max_latency=max_latency, budget=budget)

    run.main(["--config", str(cfg), "--max-latency", "9"], standalone_mode=False)
    assert seen == {"max_latency": 9.0, "budget": ("0.5x",)}
