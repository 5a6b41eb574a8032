"""A small U-Net: encoder, bottleneck, decoder with concatenated skips. One decoder stage
upsamples with a ConvTranspose, the other with nn.Upsample + conv, so both appear in ONNX."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ._init import init_weights, seeded


class DoubleConv(nn.Sequential):
    def __init__(self, c_in: int, c_out: int):
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class UNetSmall(nn.Module):
    def __init__(self, in_channels: int = 3, num_classes: int = 2, base: int = 16):
        super().__init__()
        b = base
        self.enc1 = DoubleConv(in_channels, b)
        self.enc2 = DoubleConv(b, 2 * b)
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = DoubleConv(2 * b, 4 * b)
        self.up2 = nn.ConvTranspose2d(4 * b, 2 * b, 2, stride=2)
        self.dec2 = DoubleConv(4 * b, 2 * b)
        self.up1 = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(2 * b, b, 1))
        self.dec1 = DoubleConv(2 * b, b)
        self.head = nn.Conv2d(b, num_classes, 1)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        mid = self.bottleneck(self.pool(e2))
        d2 = self.dec2(torch.cat([self.up2(mid), e2], dim=1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
        return self.head(d1)


@seeded(0)
def unet_small(num_classes: int = 2, in_channels: int = 3, base: int = 16) -> UNetSmall:
    """A two-level U-Net for 64x64 inputs (random init); output is per-pixel class scores."""
    return UNetSmall(in_channels, num_classes, base)
