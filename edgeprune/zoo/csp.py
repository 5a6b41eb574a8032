"""A YOLO-like CSP neck: conv → split on channels → bottlenecks → concat (C2f), an SPPF and
a 1x1 prediction head. `torch.split` exports as ONNX Split, `torch.cat` as Concat."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ._init import init_weights, seeded


class ConvBNSiLU(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int = 1, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    def __init__(self, c: int, shortcut: bool = True):
        super().__init__()
        self.cv1 = ConvBNSiLU(c, c, 3)
        self.cv2 = ConvBNSiLU(c, c, 3)
        self.add = shortcut

    def forward(self, x: Tensor) -> Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    """cv1 doubles the hidden width, the result is split in halves, the second half runs
    through n bottlenecks, and every piece is concatenated for cv2."""

    def __init__(self, c_in: int, c_out: int, n: int = 2, shortcut: bool = True):
        super().__init__()
        self.c = c_out // 2
        self.cv1 = ConvBNSiLU(c_in, 2 * self.c)
        self.m = nn.ModuleList(Bottleneck(self.c, shortcut) for _ in range(n))
        self.cv2 = ConvBNSiLU((2 + n) * self.c, c_out)

    def forward(self, x: Tensor) -> Tensor:
        y = list(torch.split(self.cv1(x), [self.c, self.c], dim=1))
        for m in self.m:
            y.append(m(y[-1]))
        return self.cv2(torch.cat(y, dim=1))


class SPPF(nn.Module):
    """Spatial pyramid pooling (fast): three chained 5x5 max-pools, all concatenated."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        hidden = c_in // 2
        self.cv1 = ConvBNSiLU(c_in, hidden)
        self.cv2 = ConvBNSiLU(4 * hidden, c_out)
        self.m = nn.MaxPool2d(5, 1, 2)

    def forward(self, x: Tensor) -> Tensor:
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat([x, y1, y2, self.m(y2)], dim=1))


class CSPNeck(nn.Module):
    def __init__(self, num_outputs: int = 16, width: int = 32):
        super().__init__()
        w = width
        self.stem = ConvBNSiLU(3, w, 3, 2)
        self.down1 = ConvBNSiLU(w, 2 * w, 3, 2)
        self.c2f1 = C2f(2 * w, 2 * w, n=1)
        self.down2 = ConvBNSiLU(2 * w, 4 * w, 3, 2)
        self.c2f2 = C2f(4 * w, 4 * w, n=2)
        self.sppf = SPPF(4 * w, 4 * w)
        self.head = nn.Conv2d(4 * w, num_outputs, 1)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.c2f1(self.down1(self.stem(x)))
        x = self.sppf(self.c2f2(self.down2(x)))
        return self.head(x)


@seeded(0)
def csp_neck(num_outputs: int = 16, width: int = 32) -> CSPNeck:
    """A small YOLO-like backbone/neck for 64x64 inputs (random init); output is a
    prediction map of `num_outputs` channels at stride 8."""
    return CSPNeck(num_outputs, width)
