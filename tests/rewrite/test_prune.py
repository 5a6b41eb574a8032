"""Physical channel removal: the pruned model equals the original with the removed channels
zeroed where they are consumed, and it is really smaller."""

import numpy as np
import onnx
import pytest
import torch

from edgeprune.graph import analyze
from edgeprune.rewrite import prune, ratio_keep
from edgeprune.rewrite.select import round_keep
from tests.graph.archs import ARCHS
from tests.helpers import assert_invariant, export, half_keep


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_pruning_invariant_on_each_coupling_pattern(name):
    cls, shape = ARCHS[name]
    torch.manual_seed(0)
    model = export(cls(), shape)
    keep = half_keep(model)
    assert keep, "every test architecture has something prunable"
    pruned = assert_invariant(model, keep)
    onnx.checker.check_model(pruned.proto)
    def op_counts(proto):
        return sorted(n.op_type for n in proto.graph.node)

    assert op_counts(pruned.proto) == op_counts(model.proto), "no mask or selector ops added"


def test_random_subsets_not_just_the_top_channels():
    cls, shape = ARCHS["concat_split"]
    torch.manual_seed(0)
    model = export(cls(), shape)
    a = analyze(model)
    rng = np.random.default_rng(1)
    keep = {g.id: sorted(rng.choice(g.channels, size=g.channels // 2 + 1, replace=False).tolist())
            for g in a.prunable()}
    assert_invariant(model, keep, analysis=a)


def test_no_zero_filled_channels_remain():
    cls, shape = ARCHS["residual"]
    model = export(cls(), shape)
    keep = half_keep(model)
    pruned = prune(model, analyze(model), keep)
    for t in pruned.proto.graph.initializer:
        arr = onnx.numpy_helper.to_array(t)
        if arr.ndim == 4 and arr.shape[0] > 1:
            assert (np.abs(arr).reshape(arr.shape[0], -1).sum(1) > 0).all()


def test_conv_group_attribute_follows_kept_depthwise_channels():
    cls, shape = ARCHS["depthwise"]
    model = export(cls(), shape)
    keep = half_keep(model)
    pruned = prune(model, analyze(model), keep)
    groups = [a.i for n in pruned.proto.graph.node if n.op_type == "Conv" for a in n.attribute if a.name == "group"]
    assert 8 in groups


def test_ratio_rounds_to_the_channel_step():
    assert round_keep(64, 0.5, 8) == 32
    assert round_keep(64, 0.3, 8) == 16
    assert round_keep(12, 0.5, 8) == 8
    assert round_keep(6, 0.5, 8) == 6
    assert round_keep(100, 0.01, 8) == 8


def test_a_plan_that_empties_a_group_is_refused():
    from edgeprune.errors import UsageError

    cls, shape = ARCHS["chain"]
    model = export(cls(), shape)
    a = analyze(model)
    with pytest.raises(UsageError):
        prune(model, a, {a.groups[0].id: []})
    with pytest.raises(UsageError, match="frozen"):
        prune(model, a, {a.groups[-1].id: [0]})
