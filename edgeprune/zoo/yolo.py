"""A YOLO-style detector on the zoo's CSP blocks: a C2f backbone with an SPPF, and an
anchor-free head per stride (8, 16, 32) like YOLOv8's: a box branch predicting each side's
distance as a distribution over `reg_max` bins (DFL) and a class branch. The output is what
an Ultralytics export gives, `[N, 4 + classes, anchors]`: boxes as (cx, cy, w, h) in input
pixels, then per-class sigmoid scores.

The decode reshapes with the batch size taken from the tensor, so an ONNX export at batch 1
folds it into Reshape constants (`[1, 4, reg_max, anchors]`), as real exports do.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ._init import init_weights, seeded
from .csp import C2f, SPPF, ConvBNSiLU


class DFL(nn.Module):
    """The expectation of each side's distance over `reg_max` bins (a fixed 1x1 conv)."""

    def __init__(self, reg_max: int):
        super().__init__()
        self.reg_max = reg_max
        self.conv = nn.Conv2d(reg_max, 1, 1, bias=False).requires_grad_(False)
        self.conv.weight.data[:] = torch.arange(reg_max, dtype=torch.float32).view(1, reg_max, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, _, a = x.shape
        return self.conv(x.view(b, 4, self.reg_max, a).transpose(2, 1).softmax(1)).view(b, 4, a)


class Detect(nn.Module):
    def __init__(self, num_classes: int, channels: tuple[int, ...], strides: tuple[int, ...], reg_max: int = 8):
        super().__init__()
        self.nc, self.reg_max, self.strides = num_classes, reg_max, strides
        hb, hc = max(16, channels[0] // 4, 4 * reg_max), max(channels[0], num_classes)
        self.box = nn.ModuleList(nn.Sequential(ConvBNSiLU(c, hb, 3), ConvBNSiLU(hb, hb, 3),
                                               nn.Conv2d(hb, 4 * reg_max, 1)) for c in channels)
        self.cls = nn.ModuleList(nn.Sequential(ConvBNSiLU(c, hc, 3), ConvBNSiLU(hc, hc, 3),
                                               nn.Conv2d(hc, num_classes, 1)) for c in channels)
        self.dfl = DFL(reg_max)

    def forward(self, feats: list[Tensor]) -> Tensor:
        b = feats[0].shape[0]
        no = 4 * self.reg_max + self.nc
        maps = [torch.cat([box(f), cls(f)], 1) for f, box, cls in zip(feats, self.box, self.cls)]
        points, strides = [], []
        for m, s in zip(maps, self.strides):
            h, w = m.shape[2:]
            ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32) + 0.5,
                                    torch.arange(w, dtype=torch.float32) + 0.5, indexing="ij")
            points.append(torch.stack([xs, ys]).view(2, -1))
            strides.append(torch.full((1, h * w), float(s)))
        anchors, stride = torch.cat(points, 1), torch.cat(strides, 1)
        x = torch.cat([m.view(b, no, -1) for m in maps], 2)
        box, cls = x.split((4 * self.reg_max, self.nc), 1)
        lt, rb = self.dfl(box).chunk(2, 1)
        x1y1, x2y2 = anchors - lt, anchors + rb
        xywh = torch.cat([(x1y1 + x2y2) / 2, x2y2 - x1y1], 1) * stride
        return torch.cat([xywh, cls.sigmoid()], 1)


class CSPYolo(nn.Module):
    def __init__(self, num_classes: int = 8, width: int = 16):
        super().__init__()
        w = width
        self.stem = ConvBNSiLU(3, w, 3, 2)
        self.down1 = ConvBNSiLU(w, 2 * w, 3, 2)
        self.c2f1 = C2f(2 * w, 2 * w, n=1)
        self.down2 = ConvBNSiLU(2 * w, 4 * w, 3, 2)          # stride 8
        self.c2f2 = C2f(4 * w, 4 * w, n=1)
        self.down3 = ConvBNSiLU(4 * w, 8 * w, 3, 2)          # stride 16
        self.c2f3 = C2f(8 * w, 8 * w, n=1)
        self.down4 = ConvBNSiLU(8 * w, 8 * w, 3, 2)          # stride 32
        self.sppf = SPPF(8 * w, 8 * w)
        self.detect = Detect(num_classes, (4 * w, 8 * w, 8 * w), (8, 16, 32))
        init_weights(self)
        self.detect.dfl.conv.weight.data[:] = torch.arange(self.detect.reg_max, dtype=torch.float32).view(1, -1, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        p3 = self.c2f2(self.down2(self.c2f1(self.down1(self.stem(x)))))
        p4 = self.c2f3(self.down3(p3))
        p5 = self.sppf(self.down4(p4))
        return self.detect([p3, p4, p5])


@seeded(0)
def csp_yolo(num_classes: int = 8, width: int = 16) -> CSPYolo:
    """A small YOLOv8-style detector for 64x64 inputs (random init); output [N, 4 + classes, 84]."""
    return CSPYolo(num_classes, width)
