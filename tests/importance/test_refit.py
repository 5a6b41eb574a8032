"""`refit` importance: the loss a channel's removal leaves after recovery refits its consumers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edgeprune.graph import analyze
from edgeprune.importance import compute
from edgeprune.importance.refit import _nondecreasing, refit_scores
from tests.helpers import export


class _Twins(nn.Module):
    """conv -> ReLU -> 1x1 conv -> pool -> linear, where conv channel 3 is a copy of channel 2."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.mix = nn.Conv2d(6, 8, 1)
        self.fc = nn.Linear(8, 5)
        with torch.no_grad():
            self.conv.weight[3] = self.conv.weight[2]
            self.conv.bias[3] = self.conv.bias[2]

    def forward(self, x):
        return self.fc(torch.relu(self.mix(torch.relu(self.conv(x)))).mean((2, 3)))


@pytest.fixture(scope="module")
def twins():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        module = _Twins().eval()
    model = export(module, (1, 3, 12, 12))
    data = {"x0": np.random.default_rng(0).standard_normal((48, 3, 12, 12)).astype(np.float32)}
    return model, analyze(model), data


def _conv_group(analysis):
    return next(g for g in analysis.prunable() if g.channels == 6)


def test_a_channel_its_twin_can_stand_in_for_costs_almost_nothing(twins):
    model, analysis, data = twins
    s = refit_scores(model, analysis, data)[_conv_group(analysis).id]
    l1 = compute(model, analysis, "l1")[_conv_group(analysis).id]
    # one twin goes first, for next to nothing; magnitude sees two ordinary channels
    assert min(s[2], s[3]) < 0.1 * np.median(np.delete(s, [2, 3]))
    assert min(l1[2], l1[3]) > 0.2 * np.median(l1)


def test_scores_cover_every_group_and_are_deterministic(twins):
    model, analysis, data = twins
    a = compute(model, analysis, "refit", data=data)
    b = compute(model, analysis, "refit", data=data)
    assert set(a) == {g.id for g in analysis.groups}
    for g in analysis.groups:
        assert a[g.id].shape == (g.channels,) and (a[g.id] >= 0).all()
        np.testing.assert_array_equal(a[g.id], b[g.id])


def test_refit_needs_data(twins):
    from edgeprune.errors import UsageError

    model, analysis, _ = twins
    with pytest.raises(UsageError, match="refit needs calibration data"):
        compute(model, analysis, "refit")


def test_pooled_marginals_are_monotone_and_keep_their_sum():
    v = np.array([3.0, 1.0, 2.0, 5.0, 4.0, 4.0, 0.5, 9.0])
    out = _nondecreasing(v)
    assert (np.diff(out) >= 0).all()
    assert out.sum() == pytest.approx(v.sum())
    np.testing.assert_array_equal(_nondecreasing(np.sort(v)), np.sort(v))


def test_walk_factors_rescale_marginals_up_to_each_checkpoint():
    from edgeprune.importance.refit import _Walk

    walk = _Walk(order=[3, 1, 0, 2], marginal=np.array([1.0, 1.0, 2.0, 2.0]), depths=[1, 3])
    units = [[0], [1], [2], [3]]
    plain = walk.scores(units)
    scaled = walk.scores(units, np.array([4.0, 2.0]))
    # unit 3 went first (factor 4), units 1 and 0 up to depth 3 (factor 2), unit 2 after the
    # last checkpoint keeps the last factor; pooling then makes them non-decreasing
    assert plain[[3, 1, 0, 2]] == pytest.approx([1.0, 1.0, 2.0, 2.0], rel=1e-6)
    assert scaled[[3, 1, 0, 2]] == pytest.approx([3.0, 3.0, 4.0, 4.0], rel=1e-6)


def test_coherent_errors_before_a_pooled_head_raise_the_price(twins):
    """The conv group's consumer feeds a global average pool: the error its refit leaves has
    the same sign at every position, which the per-element (diagonal) Fisher misses; the
    coherence pass, on samples the Gram matrices did not see, prices it up, never down."""
    model, analysis, data = twins
    gid = _conv_group(analysis).id
    diagonal = refit_scores(model, analysis, data, max_samples=32, coherence=False)
    full = refit_scores(model, analysis, data, max_samples=32, coherence=True)
    for g in analysis.prunable():
        assert (full[g.id] >= diagonal[g.id] * (1 - 1e-9)).all()
    assert full[gid].sum() > 2 * diagonal[gid].sum()


def test_the_coherence_pass_measures_on_samples_the_gram_matrices_did_not_see():
    from edgeprune.importance.refit import BATCH, COHERENCE_SAMPLES, _held_out

    data = {"x0": np.arange(200)[:, None].astype(np.float32)}
    assert _held_out(data, ["x0"], 128)["x0"][:, 0].tolist() == list(range(128, 128 + COHERENCE_SAMPLES))
    # too few others to measure on: the scored ones, rather than nothing
    few = {"x0": np.arange(128 + BATCH - 1)[:, None].astype(np.float32)}
    assert _held_out(few, ["x0"], 128)["x0"][0, 0] == 0
