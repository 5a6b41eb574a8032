"""A model with few LUT entries, so tests that profile through a remote device stay short."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from tests.helpers import export


class Micro(nn.Module):
    """conv 3->4 + ReLU, global pool, linear 4->3: few LUT entries, so the test stays short."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def micro_onnx(folder: Path) -> Path:
    path = Path(folder) / "micro.onnx"
    path.write_bytes(export(Micro(), (1, 3, 8, 8)).proto.SerializeToString())
    return path
