"""Fidelity: top-1 agreement over the class axis and max abs error against the dense model."""

from __future__ import annotations

import numpy as np
import pytest

from edgeprune.fidelity import Fidelity, accuracy, compare, fidelity, outputs
from edgeprune.graph import analyze
from edgeprune.rewrite import prune
from tests.helpers import export, half_keep
from tests.recover.models import conv_net


def test_agreement_counts_matching_argmax_and_error_takes_the_worst_value():
    ref = [np.array([[0.0, 1.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 3.0], [1.0, 0.0, 0.0]])]
    cand = [ref[0] + np.array([[0, 0, 0], [0, 0, 2.5], [0, 0, 0.1], [0, 0, 0]])]
    f = compare(ref, cand)
    assert f == Fidelity(top1_agreement=0.75, max_abs_error=2.5, samples=4)
    j = f.to_json()
    assert {k: j[k] for k in ("top1_agreement", "max_abs_error", "samples", "metric", "score")} == \
        {"top1_agreement": 0.75, "max_abs_error": 2.5, "samples": 4, "metric": "top-1 agreement", "score": 0.75}
    assert j["outputs"][0]["kind"] == "classes" and j["outputs"][0]["top1_agreement"] == 0.75


def test_dense_outputs_agree_per_position():
    ref = [np.zeros((1, 2, 2, 2))]
    ref[0][0, 0] = 1.0                      # class 0 wins at every position
    cand = [ref[0].copy()]
    cand[0][0, 1, 0, 0] = 2.0              # class 1 wins at one of four positions
    assert compare(ref, cand).top1_agreement == 0.75


def test_mismatched_outputs_are_refused():
    with pytest.raises(ValueError, match="shapes"):
        compare([np.zeros((2, 3))], [np.zeros((2, 4))])
    with pytest.raises(ValueError, match="outputs"):
        compare([np.zeros((2, 3))], [])


def test_a_model_agrees_with_itself_and_a_pruned_one_less():
    dense = export(conv_net(), (1, 3, 16, 16))
    analysis = analyze(dense)
    pruned = prune(dense, analysis, half_keep(dense))
    data = {"x0": np.random.default_rng(0).standard_normal((16, 3, 16, 16)).astype(np.float32)}
    same = fidelity(dense, dense, data)
    assert same.top1_agreement == 1.0 and same.max_abs_error == 0.0 and same.samples == 16
    assert fidelity(dense, pruned, data).max_abs_error > 0
    predicted = outputs(dense, data)[0].argmax(1)
    assert accuracy(dense, data, predicted) == 1.0
    assert accuracy(dense, data, (predicted + 1) % 10) == 0.0
