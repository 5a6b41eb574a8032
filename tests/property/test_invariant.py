"""The pruning invariant on random graphs: pruned outputs equal the original's with the
removed channels zeroed where consumed; parameters and MACs strictly fall."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeprune.frontend.load import load_model_bytes
from edgeprune.graph import analyze
from edgeprune.importance import scores
from edgeprune.rewrite import prune, ratio_keep
from edgeprune.rewrite.reference import zero_removed
from tests.helpers import assert_invariant, export, random_feeds, run

from .netgen import Op, RandomNet, Spec, export_dynamic, input_shape, random_keep, specs
from .onnxgen import graphs, input_shapes

# Reproducible in CI: the same examples every run, no example database.
CI = settings(max_examples=100, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@CI
@given(spec=specs(), data=st.data())
def test_random_subsets_of_every_group_keep_the_invariant(spec, data):
    model = export(RandomNet(spec), input_shape(spec))
    analysis = analyze(model)
    keep = data.draw(random_keep(analysis), label="keep")
    assert_invariant(model, keep, analysis=analysis)


@settings(CI, max_examples=30)
@given(spec=specs(), ratio=st.sampled_from([0.25, 0.5, 0.75]), criterion=st.sampled_from(["l1", "l2", "bn"]),
       round_to=st.sampled_from([1, 2, 4]))
def test_ratio_pruning_keeps_the_invariant_and_is_deterministic(spec, ratio, criterion, round_to):
    model = export(RandomNet(spec), input_shape(spec))
    analysis = analyze(model)
    keep = ratio_keep(analysis, scores(model, analysis, criterion), ratio, round_to)
    pruned = assert_invariant(model, keep, analysis=analysis)
    again = prune(model, analyze(model), keep)
    assert again.proto.SerializeToString(deterministic=True) == pruned.proto.SerializeToString(deterministic=True)


@settings(CI, max_examples=30)
@given(spec=specs(), axes=st.sampled_from([{0: "batch"}, {0: "batch", 2: "height", 3: "width"}]),
       data=st.data())
def test_random_nets_exported_with_dynamic_axes_keep_the_invariant(spec, axes, data):
    model = export_dynamic(RandomNet(spec), spec, axes)
    analysis = analyze(model)
    # the Shape arithmetic a dynamic export adds folds away: it prunes as the static export does
    static = analyze(export(RandomNet(spec), input_shape(spec)))
    assert sorted(g.channels for g in analysis.prunable()) == sorted(g.channels for g in static.prunable())
    keep = data.draw(random_keep(analysis), label="keep")
    assert_invariant(model, keep, analysis=analysis)


@CI
@given(graph=graphs(), data=st.data())
def test_random_onnx_op_forms_keep_the_invariant(graph, data):
    opset, proto = graph
    model = load_model_bytes(proto.SerializeToString(), name=f"random-opset{opset}", input_shapes=input_shapes(proto))
    analysis = analyze(model)
    keep = data.draw(random_keep(analysis), label="keep")
    assert_invariant(model, keep, analysis=analysis)


def test_the_invariant_check_catches_a_wrongly_pruned_model():
    """The harness itself: a model pruned with other channels than the reference zeroes fails."""
    spec = Spec(3, 4, (Op("conv", (8, 3, 1, 1, True, True, "relu")),), Op("conv", (2,)))
    model = export(RandomNet(spec), input_shape(spec))
    analysis = analyze(model)
    g = analysis.prunable()[0]
    pruned = prune(model, analysis, {g.id: [0, 1, 2, 3]})
    wrong = zero_removed(model, analysis, {g.id: [4, 5, 6, 7]})
    feeds = random_feeds(model)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(run(pruned.proto, feeds)[0], run(wrong, feeds)[0], rtol=1e-4)


@settings(CI, max_examples=30)
@given(graph=graphs(), ratio=st.sampled_from([0.25, 0.5, 0.75]), criterion=st.sampled_from(["l1", "l2", "bn"]),
       round_to=st.sampled_from([1, 2, 4]))
def test_ratio_pruning_of_random_onnx_graphs_keeps_the_invariant(graph, ratio, criterion, round_to):
    _, proto = graph
    model = load_model_bytes(proto.SerializeToString(), input_shapes=input_shapes(proto))
    analysis = analyze(model)
    keep = ratio_keep(analysis, scores(model, analysis, criterion), ratio, round_to)
    assert_invariant(model, keep, analysis=analysis)
