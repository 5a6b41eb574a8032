"""LUTs with NaN, negative or missing entries, and malformed or infeasible budgets: the
contract's exit code (2 bad input, 3 infeasible), one line, no plan written, LUT untouched."""

from __future__ import annotations

import json

import pytest

from tests.faults.harness import copy_files


@pytest.fixture
def setup(measured_lut, tmp_path):
    return copy_files(measured_lut, tmp_path, "quickhost.toml", "tiny.onnx", "lut.json")


def _plan(setup, budget="0.9x", lut="lut.json"):
    return ["plan", setup / "tiny.onnx", "--device", setup / "quickhost.toml", "--lut", setup / lut,
            "--budget", budget, "-o", setup / "plan.json"]


def _latency(setup, lut="lut.json", device=None):
    return ["latency", setup / "tiny.onnx", "--device", device or setup / "quickhost.toml", "--lut", setup / lut]


def test_a_feasible_budget_plans(cli, setup):
    r = cli(*_plan(setup, "1x"))
    assert r.code == 0, r.err
    assert (setup / "plan.json").exists()


@pytest.mark.parametrize("budget", ["-3ms", "0x", "abc", "0ms", "2x", "nanms", "infms", "12ms,13ms",
                                    "5 parsecs", "", "ms", "1e400ms"])
def test_a_malformed_budget_is_refused(refused, setup, budget):
    lut_before = (setup / "lut.json").read_bytes()
    refused(2, *_plan(setup, budget), words=["budget"], output=setup / "plan.json")
    assert (setup / "lut.json").read_bytes() == lut_before


@pytest.mark.parametrize("budget", ["0.000001ms", "0.001x", "0.0000001mJ"])
def test_an_infeasible_budget_exits_3_with_the_smallest_reachable_value(refused, setup, budget):
    line = refused(3, *_plan(setup, budget), words=["smallest reachable"], output=setup / "plan.json")
    assert "ms" in line.split("smallest reachable")[1]


def _corrupt(setup, edit) -> str:
    doc = json.loads((setup / "lut.json").read_text())
    text = edit(doc)
    (setup / "bad.json").write_text(text if isinstance(text, str) else json.dumps(doc))
    return "bad.json"


def _set_run(field, value):
    def edit(doc):
        doc["entries"][0]["runs"][0][field] = value
        return json.dumps(doc).replace('"__NaN__"', "NaN").replace('"__Inf__"', "Infinity")
    return edit


LUT_DEFECTS = {
    "nan-median": _set_run("median_ms", "__NaN__"),
    "inf-p90": _set_run("p90_ms", "__Inf__"),
    "negative-median": _set_run("median_ms", -1.0),
    "zero-median": _set_run("median_ms", 0.0),
    "negative-energy": _set_run("energy_mj", -0.5),
    "string-median": _set_run("median_ms", "fast"),
    "no-runs": lambda doc: doc["entries"][0].pop("runs"),
    "empty-runs": lambda doc: doc["entries"][0].__setitem__("runs", []),
    "no-channel-step": lambda doc: doc["header"].pop("channel_step"),
    "unknown-signature": lambda doc: doc["entries"][0].__setitem__("sig", "conv|k9x9|nowhere"),
    "zero-channels": lambda doc: doc["entries"][0].__setitem__("c_in", 0),
    "truncated": lambda doc: json.dumps(doc)[:200],
    "not-json": lambda doc: "this is not a LUT\n",
    "other-format": lambda doc: json.dumps({"format": "something", "version": 1}),
    "future-version": lambda doc: json.dumps({**doc, "version": 99}),
}


@pytest.mark.parametrize("defect", sorted(LUT_DEFECTS))
@pytest.mark.parametrize("command", ["plan", "latency"])
def test_a_broken_lut_is_refused_naming_the_file(refused, setup, defect, command):
    bad = _corrupt(setup, LUT_DEFECTS[defect])
    before = (setup / bad).read_bytes()
    args = _plan(setup, lut=bad) if command == "plan" else _latency(setup, lut=bad)
    refused(2, *args, words=["bad.json"], output=setup / "plan.json")
    assert (setup / bad).read_bytes() == before, "the broken LUT was rewritten"


def test_a_lut_missing_entries_for_a_remote_device_is_refused(refused, setup):
    # on the host missing entries are measured on demand; a remote device needs `profile`
    def drop_first_signature(doc):
        sig = doc["entries"][0]["sig"]
        doc["entries"] = [e for e in doc["entries"] if e["sig"] != sig]

    bad = _corrupt(setup, drop_first_signature)
    for args in (_latency(setup, lut=bad, device="pixel-7"),
                 _plan(setup, lut=bad)[:2] + ["--device", "pixel-7", "--lut", setup / bad, "--budget",
                                              "0.5x", "-o", setup / "plan.json"]):
        refused(2, *args, words=["bad.json", "lacks entries", "edgeprune profile"], output=setup / "plan.json")


def test_a_lut_measured_on_another_device_is_refused(refused, setup):
    refused(2, *_latency(setup, device="pixel-7"), words=["lut.json"])


def test_a_lut_whose_rest_term_outweighs_the_layers_is_refused(refused, setup):
    def huge_negative_rest(doc):
        for record in doc["models"].values():
            record["rest_ms"] = -1000.0

    bad = _corrupt(setup, huge_negative_rest)
    refused(2, *_latency(setup, lut=bad), words=["bad.json"])


def test_a_lut_where_fewer_channels_time_slower_still_plans_a_1x_budget(cli, setup):
    """Timing noise on small layers makes real LUTs non-monotone; keeping every channel is
    always a plan, so a 1x budget is always reachable, even when it is the cheapest one."""
    def slower_when_narrower(doc):
        widest = max(e["c_out"] for e in doc["entries"])
        for e in doc["entries"]:
            if e["c_out"] < widest:
                for r in e["runs"]:
                    r["median_ms"] *= 30
                    r["p90_ms"] *= 30

    noisy = _corrupt(setup, slower_when_narrower)
    r = cli(*_plan(setup, "1x", lut=noisy))
    assert r.code == 0, r.err
