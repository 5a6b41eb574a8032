"""Interpolating a signature's grid: exact on bilinear costs, staircase-aware, honest about misses."""

import pytest

from edgeprune.lut.interp import GridInterpolator, LutMiss


def bilinear(ci, co):
    return 0.01 + 0.001 * ci + 0.002 * co + 0.0001 * ci * co


def grid(cins, couts, f=bilinear, energy=False):
    return {(ci, co): (f(ci, co), 2 * f(ci, co) if energy else None) for ci in cins for co in couts}


def test_bilinear_cost_is_interpolated_exactly_between_aligned_knots():
    t = GridInterpolator("s", grid([16, 64, 128], [16, 48, 96, 128]), step=16)
    for ci in range(16, 129, 16):
        for co in range(16, 129, 16):
            assert t(ci, co)[0] == pytest.approx(bilinear(ci, co))


def test_unaligned_count_costs_the_next_multiple_of_the_step():
    t = GridInterpolator("s", grid([16, 64], [16, 32, 48, 64]), step=16)
    assert t(64, 33) == t(64, 48)
    assert t(17, 64)[0] == pytest.approx(bilinear(32, 64))


def test_exactly_measured_unaligned_dense_count_is_used_as_is():
    # a dense count of 24 (MobileNetV2) is a measured knot of its own
    values = grid([16, 24], [16, 24], f=lambda ci, co: 1.0 if (ci % 16 or co % 16) else 0.5)
    t = GridInterpolator("s", values, step=16)
    assert t(24, 24)[0] == 1.0 and t(16, 16)[0] == 0.5


def test_outside_the_measured_range_is_a_miss_naming_the_point():
    t = GridInterpolator("s", grid([16, 64], [16, 64]), step=16)
    with pytest.raises(LutMiss) as miss:
        t(16, 80)
    assert miss.value.points == [(16, 80)] and "c_out=80" in str(miss.value)


def test_rows_that_cannot_answer_are_skipped():
    # a lone refinement probe at c_in=32 must not break queries at other c_out
    values = grid([16, 64], [16, 64])
    values[(32, 64)] = (bilinear(32, 64), None)
    t = GridInterpolator("s", values, step=16)
    assert t(32, 16)[0] == pytest.approx(bilinear(32, 16))
    assert t(32, 64)[0] == pytest.approx(bilinear(32, 64))


def test_depthwise_is_one_dimensional_along_the_diagonal():
    values = {(c, c): (0.01 * c, None) for c in (16, 64, 128)}
    t = GridInterpolator("dw", values, step=16, depthwise=True)
    assert t(96, 96)[0] == pytest.approx(0.96)
    assert t(0, 32)[0] == pytest.approx(0.32)  # c_in is c_out for a depthwise layer


def test_energy_is_interpolated_only_when_every_corner_measured_it():
    t = GridInterpolator("s", grid([16, 64], [16, 64], energy=True), step=16)
    ms, mj = t(32, 32)
    assert mj == pytest.approx(2 * ms)
    values = grid([16, 64], [16, 64], energy=True)
    values[(64, 64)] = (values[(64, 64)][0], None)
    assert GridInterpolator("s", values, step=16)(32, 32)[1] is None


def test_roofline_prior_is_the_slower_of_compute_and_memory_and_marked_estimated():
    from edgeprune.lut.layers import Layer, Signature
    from edgeprune.lut.predict import RooflineModel

    sig = Signature(kind="conv", kernel=(3, 3), pads=(1, 1, 1, 1), in_hw=(56, 56))
    rm = RooflineModel({"peak_gflops_fp32": 100.0, "mem_bandwidth_gbs": 10.0, "source": "test"},
                       [Layer("c", sig, 64, 64)])
    compute_ms = 2 * sig.macs(64, 64) / 100e9 * 1e3
    memory_ms = sig.bytes_moved(64, 64) / 10e9 * 1e3
    assert rm.predict_ms() == pytest.approx(max(compute_ms, memory_ms))
    assert rm.predict_ms({"c": (32, 32)}) < rm.predict_ms()
    p = rm.predict()
    assert p.estimated and p.energy_source.startswith("estimated") and rm.missing() == []
