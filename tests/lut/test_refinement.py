"""Adaptive refinement: a coarse grid first, then midpoints only where latency bends."""

from edgeprune.lut.layers import Signature
from edgeprune.lut.profiler import SigPlan, _GridState, plan_signatures
from edgeprune.lut.layers import Layer

SIG = Signature(kind="conv", kernel=(3, 3), pads=(1, 1, 1, 1), in_hw=(14, 14))


def walk(plan, f):
    """Run the refinement loop against a cost function; returns every point asked for."""
    state, asked = _GridState(plan), set()
    while True:
        asked |= {(ci, co) for _, ci, co in state.grid_points()}
        probes = state.probes()
        if not probes:
            return state, asked
        asked |= {(ci, co) for _, ci, co in probes}
        state.decide(lambda sig, ci, co: (f(ci, co), f(ci, co)))


def test_linear_cost_needs_only_the_coarse_grid_and_two_probes_per_interval():
    plan = SigPlan(SIG, list(range(16, 257, 16)), list(range(16, 257, 16)))
    state, asked = walk(plan, lambda ci, co: 0.001 * ci * co)
    assert len(state.cin) == 4 and len(state.cout) == 4
    # 4x4 grid + each interval's midpoint at both ends of the other axis
    assert len(asked) == 16 + 2 * 6


def test_a_step_in_latency_is_refined_down_to_the_channel_step():
    # latency jumps when c_out crosses 112: refinement must put knots on both sides
    def f(ci, co):
        return 0.001 * ci * co + (5.0 if co > 112 else 0.0)
    plan = SigPlan(SIG, [16, 64], list(range(16, 257, 16)))
    state, _ = walk(plan, f)
    assert 112 in state.cout and 128 in state.cout
    assert len(state.cout) < 16   # but not the whole axis


def test_a_step_seen_only_at_small_counts_of_the_other_axis_is_refined_too():
    def f(ci, co):
        return 0.001 * ci * co + (5.0 if ci > 112 and co < 64 else 0.0)
    plan = SigPlan(SIG, list(range(16, 257, 16)), list(range(16, 257, 16)))
    state, _ = walk(plan, f)
    assert 112 in state.cin and 128 in state.cin


def test_frozen_and_depthwise_axes():
    dw = Signature(kind="dwconv", kernel=(3, 3), pads=(1, 1, 1, 1), in_hw=(14, 14))
    layers = [Layer("stem", SIG, 3, 64), Layer("dw", dw, 64, 64), Layer("fc", Signature(kind="linear"), 64, 10)]
    plans = {p.signature.kind: p for p in plan_signatures(layers, 16, {"stem": (True, False), "fc": (False, True)})}
    assert plans["conv"].cin_candidates == [3] and plans["conv"].cout_candidates == [16, 32, 48, 64]
    assert plans["linear"].cout_candidates == [10]
    state = _GridState(plans["dwconv"])
    assert all(ci == co for _, ci, co in state.grid_points())


def test_every_layers_own_channel_counts_are_on_the_coarse_grid():
    # two layers share a signature with different dense counts (as in MobileNetV2)
    layers = [Layer("a", SIG, 64, 384), Layer("b", SIG, 96, 576), Layer("c", SIG, 160, 960)]
    (plan,) = plan_signatures(layers, 16, {})
    points = {(ci, co) for _, ci, co in _GridState(plan).grid_points()}
    assert {(64, 384), (96, 576), (160, 960)} <= points


def test_channel_step_is_read_off_a_staircase_even_with_a_few_disturbed_timings():
    from edgeprune.lut.profiler import step_from_sweep

    stairs16 = {c: 0.1 * (-(-c // 16)) for c in range(64, 97)}
    assert step_from_sweep(stairs16) == 16
    noisy = dict(stairs16)
    for c in (67, 75, 90):
        noisy[c] *= 1.3     # three runs slowed by other load
    assert step_from_sweep(noisy) == 16
    stairs8 = {c: 0.1 * (-(-c // 8)) for c in range(64, 97)}
    assert step_from_sweep(stairs8) == 8
    linear = {c: 0.01 * c for c in range(64, 97)}
    assert step_from_sweep(linear) <= 4


def test_unaligned_counts_slower_than_the_next_multiple_do_not_make_the_step_finer():
    from edgeprune.lut.profiler import step_from_sweep

    # a sweep measured on this host (c_in 64, 3x3, 14x14): steps of 8, with c_out 69-70, 75-79
    # and 82 slower than the multiple of 8 above them
    measured = [0.172, 0.229, 0.204, 0.204, 0.205, 0.251, 0.254, 0.204, 0.204, 0.220, 0.221, 0.273, 0.280,
                0.286, 0.286, 0.281, 0.222, 0.237, 0.281, 0.241, 0.241, 0.236, 0.236, 0.236, 0.236, 0.252,
                0.251, 0.253, 0.252, 0.251, 0.251, 0.251, 0.251]
    assert step_from_sweep(dict(zip(range(64, 97), measured))) == 8


def test_refinement_stops_at_max_knots_per_axis_narrowing_the_worst_bend_first():
    from edgeprune.lut.profiler import MAX_KNOTS

    def f(ci, co):   # a 5 ms jump at c_out 112, and a 0.5 ms zigzag every 32 channels
        return 0.001 * ci * co + (5.0 if co > 112 else 0.0) + (0.5 if co // 32 % 2 else 0.0)
    plan = SigPlan(SIG, [16, 64], list(range(16, 513, 16)))
    state, _ = walk(plan, f)
    assert len(state.cout) == MAX_KNOTS
    below = max(c for c in state.cout if c <= 112)
    above = min(c for c in state.cout if c > 112)
    assert above - below <= 48   # the jump was bracketed first: the coarse interval was 16..176
