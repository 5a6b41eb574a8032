"""Dead channels: when the least important channels of every group are exactly dead (zero
filters, zero BN gamma and beta in every coupled producer), `prune --ratio <live fraction>`
removes exactly them and the pruned model's outputs equal the original's."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from edgeprune.cli import main
from edgeprune.frontend.export import export_module
from tests.helpers import run

LIVE = 0.75


def cbr(cin, cout, groups=1, act=nn.ReLU):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), act())


class Chain(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.head = cbr(3, 16), cbr(16, 32), nn.Conv2d(32, 4, 1)
        self.groups = [[self.a], [self.b]]

    def forward(self, x):
        return self.head(self.b(self.a(x)))


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = cbr(3, 16)
        self.c1 = cbr(16, 32)
        self.c2 = nn.Sequential(nn.Conv2d(32, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16))
        self.head = nn.Conv2d(16, 4, 1)
        # the residual group has two producers: a dead channel must be dead in both
        self.groups = [[self.stem, self.c2], [self.c1]]

    def forward(self, x):
        x = self.stem(x)
        return self.head(F.relu(x + self.c2(self.c1(x))))


class Depthwise(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = cbr(3, 16)
        self.dw = cbr(16, 16, groups=16, act=nn.ReLU6)
        self.pw = cbr(16, 8)
        self.head = nn.Conv2d(8, 4, 1)
        self.groups = [[self.a, self.dw], [self.pw]]

    def forward(self, x):
        return self.head(self.pw(self.dw(self.a(x))))


def kill(module: nn.Module, rng: np.random.Generator) -> None:
    """Make (1 - LIVE) of each group's channels dead in every producer of that group."""
    with torch.no_grad():
        for producers in module.groups:
            n = producers[0][1].num_features
            dead = rng.choice(n, size=n - int(round(LIVE * n)), replace=False)
            for conv, bn in ((p[0], p[1]) for p in producers):
                conv.weight[dead] = 0
                bn.weight[dead] = 0
                bn.bias[dead] = 0
                live = np.setdiff1d(np.arange(n), dead)   # live ones clearly alive
                bn.weight[live] = torch.rand(len(live)) + 0.5
                bn.running_mean.copy_(torch.randn(n) * 0.1)
                bn.running_var.copy_(torch.rand(n) + 0.5)


@pytest.mark.parametrize("criterion", ["l1", "bn"])
@pytest.mark.parametrize("arch", [Chain, Residual, Depthwise], ids=lambda a: a.__name__)
def test_pruning_exactly_the_dead_channels_changes_nothing(tmp_path, capsys, arch, criterion):
    torch.manual_seed(0)
    module = arch()
    kill(module, np.random.default_rng(1))
    src = export_module(module, (1, 3, 8, 8), tmp_path / "dead.onnx")
    out = tmp_path / "pruned.onnx"
    code = main(["prune", str(src), "--ratio", str(LIVE), "--round-to", "1", "--criterion", criterion,
                 "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    original, pruned = onnx.load(src), onnx.load(out)
    feeds = {"input": np.random.default_rng(2).standard_normal((1, 3, 8, 8)).astype(np.float32)}
    want, got = run(original, feeds)[0], run(pruned, feeds)[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(want).max())))
    # exactly the dead filters are gone, from every producer
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in original.graph.initializer if len(t.dims) == 4}
    sliced = {t.name: t.dims[0] for t in pruned.graph.initializer if t.name in weights}
    dead_somewhere = 0
    for name, w in weights.items():
        live = int((np.abs(w).reshape(w.shape[0], -1).sum(1) > 0).sum())
        dead_somewhere += live < w.shape[0]
        if live < w.shape[0]:
            assert sliced[name] == live, name
    assert dead_somewhere >= len(module.groups)
