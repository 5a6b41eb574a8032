"""Distillation of a pruned ONNX model (`--finetune-steps`): trained through the PyTorch
interpretation of the graph and written back into the same initializers."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import numpy_helper

from edgeprune.data.digits import digits
from edgeprune.errors import UsageError
from edgeprune.fidelity import outputs
from edgeprune.graph import analyze
from edgeprune.importance import compute
from edgeprune.recover import recover
from edgeprune.distill import DistillOptions, check_steps, distill, trainable
from edgeprune.rewrite import prune, ratio_keep
from edgeprune.zoo.digits import train_digits_cnn
from tests.helpers import export


@pytest.fixture(scope="module")
def recovered():
    """A trained digits CNN, pruned to 40% of every group and recovered: what the stage gets."""
    module, _ = train_digits_cnn(epochs=4, width=16)
    dense = export(module, (1, 1, 32, 32))
    analysis = analyze(dense)
    keep = ratio_keep(analysis, compute(dense, analysis, "l1"), 0.4, 4)
    train, test = digits("train", 32), digits("test", 32)
    calib = {"x0": np.array(train.images[:256])}
    held = {"x0": np.array(test.images)}
    rec = recover(dense, prune(dense, analysis, keep), analysis, keep, calib).model
    return dense, rec, calib, held


def _error(dense, model, held) -> float:
    ref, got = outputs(dense, held)[0], outputs(model, held)[0]
    return float(((got - ref) ** 2).sum() / (ref ** 2).sum())


def _initializers(model) -> dict[str, tuple]:
    return {t.name: (tuple(t.dims), t.data_type) for t in model.proto.graph.initializer}


def test_distillation_lowers_the_held_out_error(recovered):
    dense, rec, calib, held = recovered
    d = distill(dense, rec, calib, DistillOptions(steps=300))
    assert d.kept and d.loss_after < d.loss_before
    assert _error(dense, d.model, held) < _error(dense, rec, held)


def test_weights_are_written_back_in_place(recovered):
    dense, rec, calib, _ = recovered
    d = distill(dense, rec, calib, DistillOptions(steps=60))
    assert d.kept
    assert _initializers(d.model) == _initializers(rec)
    assert [(n.op_type, list(n.input), list(n.output)) for n in d.model.proto.graph.node] == \
        [(n.op_type, list(n.input), list(n.output)) for n in rec.proto.graph.node]
    before = {t.name: numpy_helper.to_array(t) for t in rec.proto.graph.initializer}
    after = {t.name: numpy_helper.to_array(t) for t in d.model.proto.graph.initializer}
    changed = {n for n in before if not np.array_equal(before[n], after[n])}
    assert changed and changed <= set(trainable(rec.proto))
    # BN running statistics are not trained
    bn_stats = {i for n in rec.proto.graph.node if n.op_type == "BatchNormalization" for i in n.input[3:5]}
    assert not changed & bn_stats


def test_zero_steps_leave_the_model_alone(recovered):
    dense, rec, calib, _ = recovered
    d = distill(dense, rec, calib, DistillOptions(steps=0))
    assert d.model is rec and not d.kept


def test_the_same_inputs_train_the_same_weights(recovered):
    dense, rec, calib, _ = recovered
    a = distill(dense, rec, calib, DistillOptions(steps=3, lr=1e-3)).model
    b = distill(dense, rec, calib, DistillOptions(steps=3, lr=1e-3)).model
    assert a.proto.SerializeToString() == b.proto.SerializeToString()


@pytest.mark.parametrize("value", [-1, 1.5, "abc", None, True])
def test_bad_step_counts_are_usage_errors(value):
    with pytest.raises(UsageError, match="--finetune-steps must be an integer >= 0"):
        check_steps(value)


@pytest.mark.parametrize("value,want", [(0, 0), (12, 12), ("7", 7), (3.0, 3)])
def test_step_counts(value, want):
    assert check_steps(value) == want
