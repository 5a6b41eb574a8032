"""Small models and a fast local device profile for the LUT tests."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from tests.helpers import export
from tests.host_profile import write_host_profile


class TinyNet(nn.Module):
    """conv-bn-relu stem, an inverted-residual block (1x1, depthwise, 1x1 + skip), a linear head."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.expand = nn.Sequential(nn.Conv2d(width, 2 * width, 1, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(2 * width, 2 * width, 3, 1, 1, groups=2 * width, bias=False),
                                nn.BatchNorm2d(2 * width), nn.ReLU6())
        self.project = nn.Sequential(nn.Conv2d(2 * width, width, 1, bias=False), nn.BatchNorm2d(width))
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.project(self.dw(self.expand(x)))
        return self.head(x.mean(dim=(2, 3)))


def tiny_model(width: int = 32):
    return export(TinyNet(width), (1, 3, 32, 32))


def tiny_onnx(folder: Path, width: int = 32) -> Path:
    path = Path(folder) / f"tiny{width}.onnx"
    path.write_bytes(tiny_model(width).proto.SerializeToString())
    return path


def fast_profile(folder: Path, step: int = 16, passes: int = 1) -> Path:
    """A host profile with short timings: the LUT tests stay fast."""
    return write_host_profile(folder, step=step, warmup=1, repeats=3, min_seconds=0.01, passes=passes)
