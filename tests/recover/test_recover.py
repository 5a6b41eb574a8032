"""Recovery: least-squares reconstruction and BN moment matching bring a pruned model back
towards the dense one, using unlabelled calibration data only."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edgeprune.errors import UsageError
from edgeprune.fidelity import fidelity, outputs
from edgeprune.graph import analyze
from edgeprune.recover import RecoverOptions, recover, reestimate_bn
from edgeprune.rewrite import prune
from tests.helpers import export, half_keep
from tests.recover.models import conv_net


def _data(n: int, shape, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, *shape[1:])).astype(np.float32)


@pytest.fixture(scope="module")
def pruned_convnet():
    dense = export(conv_net(), (1, 3, 16, 16))
    analysis = analyze(dense)
    keep = half_keep(dense)
    return dense, analysis, keep, prune(dense, analysis, keep)


def _err(dense, candidate, data) -> float:
    want, got = outputs(dense, data)[0], outputs(candidate, data)[0]
    return float(np.mean((want - got) ** 2) / np.mean(want ** 2))


def test_reconstruction_brings_held_out_outputs_closer_to_dense(pruned_convnet):
    dense, analysis, keep, pruned = pruned_convnet
    calib = {"x0": _data(64, (1, 3, 16, 16), 1)}
    held_out = {"x0": _data(32, (1, 3, 16, 16), 2)}
    rec = recover(dense, pruned, analysis, keep, calib)
    before, after = _err(dense, pruned, held_out), _err(dense, rec.model, held_out)
    assert after < 0.5 * before, (before, after)
    # every refit layer fits the calibration data at least as well as the sliced weights
    fits = [s for s in rec.steps if s.kind != "bn"]
    assert {s.kind for s in fits} >= {"conv", "depthwise", "gemm"}
    for s in fits:
        assert s.error_after <= s.error_before + 1e-9, s
    # the same graph as the pruned one: fitted biases of BN-followed convs went into the BN
    assert [n.op_type for n in rec.model.proto.graph.node] == [n.op_type for n in pruned.proto.graph.node]
    assert analyze(rec.model).params == analyze(pruned).params


def test_reconstruction_beats_bn_matching_alone(pruned_convnet):
    dense, analysis, keep, pruned = pruned_convnet
    calib = {"x0": _data(64, (1, 3, 16, 16), 1)}
    held_out = {"x0": _data(32, (1, 3, 16, 16), 2)}
    bn_only = recover(dense, pruned, analysis, keep, calib, RecoverOptions(reconstruct=False)).model
    full = recover(dense, pruned, analysis, keep, calib).model
    e_pruned, e_bn, e_full = (_err(dense, m, held_out) for m in (pruned, bn_only, full))
    # on a random network BN matching alone may help or not; refitting the layers must
    assert e_full < min(e_bn, e_pruned) * 0.5


class _ConstantChannels(nn.Module):
    """Channels 4..7 of the first conv are constant (zero weights, positive bias): removing
    them loses only a shift, which the refit bias must take over exactly."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 1)
        self.b = nn.Conv2d(8, 4, 1)
        with torch.no_grad():
            self.a.weight[4:] = 0
            self.a.bias[4:] = torch.tensor([0.5, 1.0, 1.5, 2.0])

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def test_removed_channels_mean_is_folded_into_the_bias():
    dense = export(_ConstantChannels().eval(), (1, 3, 8, 8))
    analysis = analyze(dense)
    (gid,) = [g.id for g in analysis.prunable()]
    keep = {gid: [0, 1, 2, 3]}
    pruned = prune(dense, analysis, keep)
    data = {"x0": _data(16, (1, 3, 8, 8), 3)}
    assert fidelity(dense, pruned, data).max_abs_error > 0.1
    rec = recover(dense, pruned, analysis, keep, data, RecoverOptions(ridge=0.0))
    assert fidelity(dense, rec.model, {"x0": _data(8, (1, 3, 8, 8), 4)}).max_abs_error < 1e-4


def test_adaptive_bn_sets_running_stats_to_the_pruned_models_statistics(pruned_convnet):
    dense, analysis, keep, pruned = pruned_convnet
    calib = {"x0": _data(32, (1, 3, 16, 16), 1)}
    adapted = reestimate_bn(pruned, calib)
    proto = adapted.proto
    inits = {t.name: t for t in proto.graph.initializer}
    bn = next(n for n in proto.graph.node if n.op_type == "BatchNormalization")
    from onnx import numpy_helper
    x = outputs(_with_output(pruned.proto, bn.input[0]), calib)[-1]
    mean = numpy_helper.to_array(inits[bn.input[3]])
    var = numpy_helper.to_array(inits[bn.input[4]])
    np.testing.assert_allclose(mean, x.mean((0, 2, 3)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(var, x.var((0, 2, 3)), rtol=1e-3, atol=1e-5)


def _with_output(proto, name):
    import onnx
    p = onnx.ModelProto()
    p.CopyFrom(proto)
    p.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return p


def test_calibration_data_must_fit_the_model(pruned_convnet):
    dense, analysis, keep, pruned = pruned_convnet
    with pytest.raises(UsageError, match="lacks input"):
        recover(dense, pruned, analysis, keep, {"other": _data(4, (1, 3, 16, 16), 0)})
    with pytest.raises(UsageError, match="sample shape"):
        recover(dense, pruned, analysis, keep, {"x0": _data(4, (1, 3, 8, 8), 0)})
    with pytest.raises(UsageError, match="another model"):
        recover(pruned, pruned, analysis, keep, {"x0": _data(4, (1, 3, 16, 16), 0)})
