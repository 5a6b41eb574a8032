"""Random CNN architectures for the LUT accuracy benchmark: ResNet-like and inverted-residual
stages with random, unaligned widths, kernels, strides and activations (the kind of model
tests/property draws, at a size where latency is more than per-run overhead).

    arch = random_arch(seed)          # a torch module, input 1x3x96x96
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

SIZE = 96
ACTS = {"relu": nn.ReLU, "relu6": nn.ReLU6, "hardswish": nn.Hardswish, "sigmoid": nn.Sigmoid}


def _unit(cin, cout, k, stride, act, groups=1):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(ACTS[act]())
    return nn.Sequential(*layers)


class Basic(nn.Module):
    """ResNet's basic block: two 3x3 convs and a skip (a 1x1 projection when the shape changes)."""

    def __init__(self, cin, cout, stride, mid, act):
        super().__init__()
        self.body = nn.Sequential(_unit(cin, mid, 3, stride, act), _unit(mid, cout, 3, 1, None))
        self.skip = _unit(cin, cout, 1, stride, None) if stride != 1 or cin != cout else nn.Identity()
        self.act = ACTS[act]()

    def forward(self, x):
        return self.act(self.body(x) + self.skip(x))


class Inverted(nn.Module):
    """MobileNetV2's block: 1x1 expansion, depthwise k x k, 1x1 projection, skip when shapes agree."""

    def __init__(self, cin, cout, stride, hidden, k, act):
        super().__init__()
        self.body = nn.Sequential(_unit(cin, hidden, 1, 1, act), _unit(hidden, hidden, k, stride, act, groups=hidden),
                                  _unit(hidden, cout, 1, 1, None))
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


class RandomArch(nn.Module):
    def __init__(self, seed: int):
        super().__init__()
        rng = np.random.default_rng(seed)
        act = str(rng.choice(list(ACTS)[:3]))
        width = int(rng.integers(12, 40))
        blocks = [_unit(3, width, 3, 2, act)]
        for stage in range(int(rng.integers(3, 5))):
            out = int(width * rng.uniform(1.3, 2.2))
            for b in range(int(rng.integers(1, 3))):
                stride = 2 if b == 0 else 1
                if rng.random() < 0.5:
                    blocks.append(Basic(width, out, stride, int(out * rng.uniform(0.6, 1.4)), act))
                else:
                    blocks.append(Inverted(width, out, stride, int(width * rng.uniform(2.5, 6.5)),
                                           int(rng.choice([3, 5])), act))
                width = out
        self.features = nn.Sequential(*blocks)
        self.head = nn.Linear(width, int(rng.integers(10, 1000)))

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3)))


def random_arch(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return RandomArch(seed).eval()


INPUT_SHAPE = (1, 3, SIZE, SIZE)
