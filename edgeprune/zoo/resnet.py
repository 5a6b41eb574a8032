"""ResNet-18/50 (torchvision's layout and module names) and a small ResNeXt: all RANDOM
INITIALISATIONS (no pretrained weights ship offline), for latency, graph and rewrite checks;
their fidelity figures measure nothing, so they stay out of fidelity tables and the demo."""

from __future__ import annotations

from torch import Tensor, nn

from ._init import init_weights, seeded


def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    conv = nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, groups=groups, bias=False)
    return conv, nn.BatchNorm2d(c_out)


def _downsample(c_in: int, c_out: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and c_in == c_out:
        return None
    return nn.Sequential(*_conv_bn(c_in, c_out, 1, stride))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, c_in: int, planes: int, stride: int = 1, groups: int = 1, base_width: int = 64):
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(c_in, planes, 3, stride)
        self.relu = nn.ReLU(inplace=True)
        self.conv2, self.bn2 = _conv_bn(planes, planes, 3)
        self.downsample = _downsample(c_in, planes, stride)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce → 3x3 (grouped for ResNeXt) → 1x1 expand, with the stride on the 3x3."""

    expansion = 4

    def __init__(self, c_in: int, planes: int, stride: int = 1, groups: int = 1, base_width: int = 64):
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1, self.bn1 = _conv_bn(c_in, width, 1)
        self.conv2, self.bn2 = _conv_bn(width, width, 3, stride, groups)
        self.conv3, self.bn3 = _conv_bn(width, planes * self.expansion, 1)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(c_in, planes * self.expansion, stride)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: list[int],
                 num_classes: int = 1000, widths: tuple[int, ...] = (64, 128, 256, 512),
                 stem_width: int = 64, deep_stem: bool = True, groups: int = 1, base_width: int = 64):
        super().__init__()
        self.c_in = stem_width
        if deep_stem:  # the ImageNet stem: 7x7/2 conv and a 3x3/2 max-pool
            self.conv1 = nn.Conv2d(3, stem_width, 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        else:  # small inputs (tests): a 3x3/1 conv and no pooling
            self.conv1 = nn.Conv2d(3, stem_width, 3, 1, 1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        stages = []
        for i, (width, blocks) in enumerate(zip(widths, layers)):
            stride = 1 if i == 0 else 2
            stage = []
            for b in range(blocks):
                stage.append(block(self.c_in, width, stride if b == 0 else 1, groups, base_width))
                self.c_in = width * block.expansion
            stages.append(nn.Sequential(*stage))
        # torchvision's names: layer1 … layer4
        for i, stage in enumerate(stages, start=1):
            setattr(self, f"layer{i}", stage)
        self.num_stages = len(stages)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(self.c_in, num_classes)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(self.avgpool(x).flatten(1))


@seeded(0)
def resnet18(num_classes: int = 1000) -> ResNet:
    """ResNet-18 at 224x224 (random init; no pretrained weights ship offline)."""
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes)


@seeded(0)
def resnet50(num_classes: int = 1000) -> ResNet:
    """ResNet-50 (bottleneck blocks) at 224x224 (random init)."""
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes)


@seeded(0)
def resnext_small(num_classes: int = 10, groups: int = 8, width_per_group: int = 16) -> ResNet:
    """A small ResNeXt (grouped 3x3 convs, `groups` cardinality) for 64x64 inputs."""
    return ResNet(Bottleneck, [1, 1, 1], num_classes, widths=(32, 64, 128), stem_width=32,
                  deep_stem=False, groups=groups, base_width=width_per_group)
