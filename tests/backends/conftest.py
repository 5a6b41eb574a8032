"""Small real models for the backend tests: exported from torch, loaded the project's way."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgeprune.frontend.export import export_module
from edgeprune.frontend.load import load_model


class TinyNet(nn.Module):
    """conv-bn-relu, a residual add, depthwise conv, pooling and a classifier: the op mix of
    the zoo's CNNs at a size that compiles in seconds."""

    def __init__(self, width: int = 12):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.dw = nn.Sequential(nn.Conv2d(width, width, 3, 1, 1, groups=width), nn.BatchNorm2d(width), nn.ReLU6())
        self.pw = nn.Conv2d(width, width, 1)
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        y = self.stem(x)
        y = y + self.pw(self.dw(y))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1))


def export(module: nn.Module, shape, path):
    torch.manual_seed(0)
    module.eval()
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):  # non-trivial statistics, so folding BN is exercised
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return load_model(export_module(module, shape, path, input_names=["input"], output_names=["logits"]))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    torch.manual_seed(0)
    return export(TinyNet(), (1, 3, 32, 32), tmp_path_factory.mktemp("tiny") / "tiny.onnx")
