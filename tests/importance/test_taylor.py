import numpy as np
import pytest
import torch
from torch import nn

from edgeprune.errors import UsageError
from edgeprune.graph import analyze
from edgeprune.importance import compute, scores
from edgeprune.importance.taylor import taylor_scores
from tests.helpers import export


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.conv3 = nn.Conv2d(16, 12, 1)      # no BN: scored by its weight and bias
        self.fc = nn.Linear(12, 5)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(y + self.bn2(self.conv2(y)))   # residual: bn1 and bn2 are coupled
        y = torch.relu(self.conv3(y))
        return self.fc(y.mean(dim=(2, 3)))


def make():
    torch.manual_seed(0)
    net = Net()
    for bn in (net.bn1, net.bn2):
        nn.init.uniform_(bn.weight, 0.5, 1.5)
        nn.init.uniform_(bn.bias, -0.2, 0.2)
        bn.running_mean.uniform_(-0.1, 0.1)
    net.eval()
    return net, export(net, (1, 3, 8, 8))


def calib(n=24, seed=0):
    return {"x0": np.random.default_rng(seed).standard_normal((n, 3, 8, 8)).astype(np.float32)}


def test_the_onnx_graph_and_the_module_give_the_same_scores():
    net, model = make()
    analysis = analyze(model)
    from_module = taylor_scores(model, analysis, calib(), module=net, batch_size=8)
    from_onnx = taylor_scores(model, analysis, calib(), batch_size=8)
    for gid in from_module:
        np.testing.assert_allclose(from_onnx[gid], from_module[gid], rtol=1e-3, atol=1e-6)
    assert any(v.sum() > 0 for v in from_onnx.values())


def _loss(net, x, target):
    return torch.nn.functional.cross_entropy(net(x), target, reduction="sum").item()


def test_a_bn_channel_scores_its_first_order_loss_change():
    net, model = make()
    analysis = analyze(model)
    data = calib(8)
    got = taylor_scores(model, analysis, data, module=net, batch_size=8)
    x = torch.from_numpy(data["x0"])
    with torch.no_grad():
        target = net(x).argmax(1)
        base = _loss(net, x, target)
    # conv3's group has no BN; bn1+bn2 are one group (the residual): check a channel of it
    gid = next(g.id for g in analysis.groups if any(m.tensor == "bn1.weight" for m in g.members))
    eps = 1e-3
    for c in (0, 5, 11):
        want = 0.0
        for bn in (net.bn1, net.bn2):   # per member: |d loss| when its scale and shift shrink
            with torch.no_grad():
                saved = bn.weight[c].item(), bn.bias[c].item()
                bn.weight[c] *= 1 - eps
                bn.bias[c] *= 1 - eps
                want += abs(_loss(net, x, target) - base) / eps
                bn.weight[c], bn.bias[c] = saved
        assert got[gid][c] == pytest.approx(want, rel=0.05, abs=1e-4)


def test_a_dead_channel_scores_zero():
    net, model0 = make()
    with torch.no_grad():
        net.conv3.weight[4] = 0
        net.conv3.bias[4] = 0
    model = export(net, (1, 3, 8, 8))
    analysis = analyze(model)
    got = taylor_scores(model, analysis, calib())
    gid = next(g.id for g in analysis.groups if any(m.tensor == "conv3.weight" and m.role == "out"
                                                    for m in g.members))
    assert got[gid][4] == 0
    assert (np.delete(got[gid], 4) > 0).all()


def test_labels_change_the_loss():
    net, model = make()
    analysis = analyze(model)
    labels = np.arange(24) % 5
    a = taylor_scores(model, analysis, calib(), labels=labels)
    b = taylor_scores(model, analysis, calib())
    assert any(not np.allclose(a[g], b[g]) for g in a)


def test_compute_dispatches_and_keeps_the_data_free_criteria():
    net, model = make()
    analysis = analyze(model)
    l1 = compute(model, analysis, "l1")
    for gid, v in scores(model, analysis, "l1").items():
        np.testing.assert_array_equal(l1[gid], v)
    with pytest.raises(UsageError, match="--data"):
        compute(model, analysis, "taylor")
    with pytest.raises(UsageError, match="no array for model input 'x0'"):
        compute(model, analysis, "taylor", data={"images": calib()["x0"]})


def test_a_module_with_other_names_falls_back_to_the_onnx_graph():
    net, model = make()
    analysis = analyze(model)
    wrapped = nn.Sequential(net)  # parameters now named "0.bn1.weight"
    a = taylor_scores(model, analysis, calib(), module=wrapped)
    b = taylor_scores(model, analysis, calib())
    for gid in a:
        np.testing.assert_allclose(a[gid], b[gid])
