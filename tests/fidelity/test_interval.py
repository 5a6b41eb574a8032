"""Fidelity you can trust: the 95% Wilson interval, top-5 agreement, the held-out split and
a --min-fidelity gate that judges the interval's lower bound."""

from __future__ import annotations

import numpy as np
import pytest

from edgeprune.fidelity import COSINE, TOP1, compare, describe, judged, wilson_interval
from edgeprune.gates import evaluate
from edgeprune.data.evaluation import EVAL_MIN, split_data
from edgeprune.verify import measured_from


@pytest.mark.parametrize("k, n, lo, hi", [
    # reference values (Wilson 1927; e.g. Newcombe 1998, Table I; R's binom::binom.wilson)
    (5, 10, 0.2366, 0.7634),
    (0, 10, 0.0, 0.2775),
    (10, 10, 0.7225, 1.0),
    (81, 263, 0.2553, 0.3662),   # Newcombe's example 81/263
    (15, 148, 0.0624, 0.1605),   # Newcombe's example 15/148
    (10, 16, 0.3864, 0.8152),    # the demo's old 62.5% on 16 views: ±20 points
])
def test_wilson_interval_matches_known_values(k, n, lo, hi):
    got = wilson_interval(k, n)
    assert got == pytest.approx((lo, hi), abs=1e-4)


def test_wilson_interval_edges():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    lo, hi = wilson_interval(244, 256)
    assert 0 <= lo < 244 / 256 < hi <= 1 and hi - lo < 0.06


def test_top5_agreement_counts_the_dense_top1_among_the_candidates_top5():
    ref = np.zeros((4, 6))
    ref[np.arange(4), [0, 1, 2, 3]] = 10.0                  # dense top-1: 0, 1, 2, 3
    cand = np.tile(np.arange(6, dtype=float), (4, 1))       # candidate top-5: 5, 4, 3, 2, 1
    f = compare([ref], [cand])
    assert f.top1_agreement == 0.0 and f.top5_agreement == 0.75
    assert f.top1_interval == pytest.approx(wilson_interval(0, 4))
    j = f.to_json()
    assert j["top5_agreement"] == 0.75 and j["outputs"][0]["top5_agreement"] == 0.75
    assert j["top1_interval"] == pytest.approx(list(wilson_interval(0, 4)))


def test_no_top5_below_five_classes_and_no_interval_without_a_class_axis():
    f = compare([np.eye(3)], [np.eye(3)])
    assert f.top5_agreement is None and "top5_agreement" not in f.to_json()
    heat = np.random.default_rng(0).random((2, 1, 8, 8))
    g = compare([heat], [heat])
    assert g.metric == COSINE and g.top1_interval is None and judged(g.to_json()) == (g.score, COSINE)


def test_top1_is_judged_by_the_wilson_lower_bound_and_says_so():
    ref = np.eye(10)[np.arange(16) % 10]
    cand = ref.copy()
    cand[:6] = np.roll(cand[:6], 1, axis=1)                 # 10 of 16 agree
    f = compare([ref], [cand])
    value, what = judged(f.to_json())
    assert f.metric == TOP1 and f.score == 0.625
    assert value == pytest.approx(0.3864, abs=1e-4)
    assert what.startswith("lower bound of the 95% Wilson interval of top-1 agreement")
    assert "62.5%" in describe(f.to_json()) and "95% CI 38.6%–81.5%" in describe(f.to_json())
    # an older manifest without the interval is judged the same way from its samples
    old = {"top1_agreement": 0.625, "max_abs_error": 1.0, "samples": 16}
    assert judged(old)[0] == pytest.approx(value)


def _manifest(stage: dict) -> dict:
    return {"latency_ms": {"measured_median": 1.0, "measured_on": "host", "predicted": 1.0},
            "energy_mj": {"measured": None, "predicted": 1.0, "predicted_source": "estimate"},
            "verify": {"deployed_files": []},
            "fidelity": {"stages": {"artifact": stage}}}


def test_min_fidelity_gate_fails_a_point_estimate_above_the_limit_whose_lower_bound_is_below(tmp_path):
    stage = {"top1_agreement": 0.95, "max_abs_error": 1.0, "samples": 40, "metric": TOP1, "score": 0.95,
             "top1_interval": list(wilson_interval(38, 40))}
    measured = measured_from(_manifest(stage), tmp_path)
    assert measured.fidelity == pytest.approx(wilson_interval(38, 40)[0])
    result, = evaluate({"min_fidelity": 0.9}, measured)
    assert not result.passed
    assert "lower bound of the 95% Wilson interval of top-1 agreement (95.0%" in result.describe()
    assert "lower bound" in result.to_json()["source"]


def test_split_holds_out_at_least_256_when_data_allows_and_a_quarter_below():
    def split(n):
        calib, held, info = split_data({"x": np.arange(n)})
        assert len(calib["x"]) + len(held["x"]) == n and not set(calib["x"]) & set(held["x"])
        return info["evaluation_samples"], held["x"]

    assert split(64) == (16, pytest.approx(np.arange(3, 64, 4)))        # unchanged: every 4th
    assert split(511)[0] == 127                                        # fewer than 512: a quarter
    count, held = split(600)
    assert count == EVAL_MIN == 256 and held[-1] == 599 and np.all(np.diff(held) <= 3)
    assert split(4000)[0] == 1000                                      # a quarter is more already
