"""Small torch models the recovery tests prune."""

from __future__ import annotations

import torch
from torch import nn


class ConvNet(nn.Module):
    """conv-BN-ReLU stages with a depthwise conv and a residual, then a linear head."""

    def __init__(self, width: int = 16):
        super().__init__()
        w = width
        self.stem = nn.Sequential(nn.Conv2d(3, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU())
        self.expand = nn.Sequential(nn.Conv2d(w, 2 * w, 1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(2 * w, 2 * w, 3, padding=1, groups=2 * w, bias=False),
                                nn.BatchNorm2d(2 * w), nn.ReLU6())
        self.project = nn.Sequential(nn.Conv2d(2 * w, w, 1, bias=False), nn.BatchNorm2d(w))
        self.head = nn.Sequential(nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.ReLU())
        self.fc = nn.Linear(2 * w, 10)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.project(self.dw(self.expand(x)))
        x = self.head(x)
        return self.fc(x.mean((2, 3)))


def conv_net(width: int = 16, seed: int = 0) -> ConvNet:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        m = ConvNet(width)
        # non-trivial BN statistics, so that recovery has means to compensate
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.data.uniform_(0.5, 1.5)
                mod.bias.data.uniform_(-0.2, 0.6)
    return m.eval()
