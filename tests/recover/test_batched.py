"""The batched recovery path (activations streamed once per model, rows gathered per chunk
of samples, normal equations summed in batches) fits what the reference path fits, its
position subsample is fixed by the seed, and it still brings a pruned model closer to the
dense one. No timing here: benchmarks/recovery_speed.py measures speed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from onnx import helper

from edgeprune.fidelity import outputs
from edgeprune.recover import RecoverOptions, recover
from edgeprune.recover.reconstruct import Layer, NormalEquations
from edgeprune.recover.stream import sample_positions
from tests.recover.test_recover import _err, pruned_convnet  # noqa: F401 - a fixture


def _data(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, 16, 16)).astype(np.float32)


def test_batched_reconstruction_reduces_held_out_error(pruned_convnet):
    dense, analysis, keep, pruned = pruned_convnet
    held = {"x0": _data(32, 2)}
    rec = recover(dense, pruned, analysis, keep, {"x0": _data(64, 1)}, RecoverOptions(batched=True))
    bn_only = recover(dense, pruned, analysis, keep, {"x0": _data(64, 1)},
                      RecoverOptions(batched=True, reconstruct=False)).model
    e_pruned, e_bn, e_rec = _err(dense, pruned, held), _err(dense, bn_only, held), _err(dense, rec.model, held)
    assert e_rec < 0.5 * e_pruned and e_rec < e_bn, (e_pruned, e_bn, e_rec)
    for s in rec.steps:
        if s.kind != "bn":
            assert s.error_after <= s.error_before + 1e-9, s


def test_batched_equals_the_reference_solve_when_every_position_is_used(pruned_convnet):
    # 16x16 inputs: every layer has at most 256 positions per sample, under rows_per_sample,
    # so both fit the same rows; only the order of summation differs
    dense, analysis, keep, pruned = pruned_convnet
    calib, held = {"x0": _data(48, 1)}, {"x0": _data(16, 2)}
    # (the batched path's row caps lifted so it takes every position too)
    new = recover(dense, pruned, analysis, keep, calib,
                  RecoverOptions(batched=True, max_rows=1 << 20, max_rows_depthwise=1 << 20))
    ref = recover(dense, pruned, analysis, keep, calib, RecoverOptions(batched=False))
    assert [(s.node, s.kind, s.rows) for s in new.steps] == [(s.node, s.kind, s.rows) for s in ref.steps]
    for a, b in zip(new.steps, ref.steps):
        assert a.error_after == pytest.approx(b.error_after, rel=1e-4, abs=1e-7)
    np.testing.assert_allclose(outputs(new.model, held)[0], outputs(ref.model, held)[0], rtol=1e-3, atol=1e-4)


def _conv(kind: str):
    if kind == "conv":
        node = helper.make_node("Conv", ["x", "w"], ["y"], name="c", pads=[1, 0, 2, 1], strides=[2, 1])
        return Layer("conv", node, (5, 4, 3, 3), np.zeros((1, 37, 5)))
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="d", group=4, pads=[1, 1, 1, 1], strides=[2, 2])
    return Layer("depthwise", node, (4, 1, 3, 3), np.zeros((4, 10, 1)))


@pytest.mark.parametrize("kind", ["conv", "depthwise"])
def test_gathered_rows_equal_the_unfolded_reference_rows(kind):
    layer = _conv(kind)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 4, 9, 8)).astype(np.float32)
    out_c = 5 if kind == "conv" else 4
    hout, wout = ((9 + 3 - 3) // 2 + 1, (8 + 1 - 3) // 1 + 1) if kind == "conv" else (5, 4)
    y = rng.standard_normal((6, out_c, hout, wout)).astype(np.float32)
    L = hout * wout
    ref_a, ref_t = layer._rows(x, y)                      # every position, sample by sample
    ref_a, ref_t = ref_a.numpy(), ref_t.numpy()
    full = sample_positions(6, L, 10 ** 6, (0, 1))
    a, t = layer.gather(x, y, full)
    np.testing.assert_allclose(a, ref_a, rtol=0, atol=0)
    np.testing.assert_allclose(t, ref_t, rtol=0, atol=0)
    # a subsample picks exactly those rows of the reference
    idx = sample_positions(6, L, 7, (3, 4))
    a, t = layer.gather(x, y, idx)
    rows = (np.arange(6)[:, None] * L + idx).reshape(-1)
    np.testing.assert_array_equal(a, ref_a[:, rows])
    np.testing.assert_array_equal(t, ref_t[:, rows])


def test_normal_equations_summed_in_batches_equal_one_solve():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((1, 900, 12)).astype(np.float32)
    y = (a[0] @ rng.standard_normal((12, 3)) + 0.5).astype(np.float32)[None]
    prior = np.zeros((1, 13, 3))
    whole, parts = NormalEquations(), NormalEquations()
    whole.add(torch.from_numpy(a), torch.from_numpy(y))
    for lo in range(0, 900, 128):
        parts.add(torch.from_numpy(a[:, lo:lo + 128]), torch.from_numpy(y[:, lo:lo + 128]))
    # (float32 products per batch, float64 sums: equal to float32 rounding)
    np.testing.assert_allclose(parts.solve(prior, 1e-3), whole.solve(prior, 1e-3), rtol=1e-5, atol=1e-6)
    # against a plain float64 least squares with the ones column (tiny ridge)
    ones = np.concatenate([a[0].astype(np.float64), np.ones((900, 1))], axis=1)
    lstsq = np.linalg.lstsq(ones, y[0].astype(np.float64), rcond=None)[0]
    np.testing.assert_allclose(parts.solve(prior, 1e-9)[0], lstsq, rtol=1e-4, atol=1e-5)


def test_position_subsample_is_fixed_by_the_seed():
    a, b = sample_positions(5, 100, 8, (0, 7)), sample_positions(5, 100, 8, (0, 7))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, sample_positions(5, 100, 8, (1, 7)))
    assert a.shape == (5, 8) and a.min() >= 0 and a.max() < 100
    for row in a:
        assert np.all(np.diff(row) > 0)           # sorted, no repeats
    np.testing.assert_array_equal(sample_positions(2, 6, 8, (0, 0)), [np.arange(6)] * 2)


def test_subsampled_recovery_is_deterministic(pruned_convnet):
    dense, analysis, keep, pruned = pruned_convnet
    calib = {"x0": _data(32, 1)}
    opts = RecoverOptions(rows_per_sample=20)        # 16x16 layers: a subsample of 256 positions
    one = recover(dense, pruned, analysis, keep, calib, opts)
    two = recover(dense, pruned, analysis, keep, calib, opts)
    assert any(s.rows == 32 * 20 for s in one.steps)
    for t1, t2 in zip(one.model.proto.graph.initializer, two.model.proto.graph.initializer):
        assert t1.SerializeToString() == t2.SerializeToString()


def test_at_most_max_samples_calibration_samples_are_used(pruned_convnet):
    dense, analysis, keep, pruned = pruned_convnet
    rec = recover(dense, pruned, analysis, keep, {"x0": _data(40, 1)}, RecoverOptions(max_samples=10))
    bn = [s for s in rec.steps if s.kind == "bn"]
    fits = [s for s in rec.steps if s.kind == "gemm"]
    assert fits and all(s.rows == 10 for s in fits), rec.steps
    assert all(s.rows % 10 == 0 for s in bn)
