"""Deterministic construction of randomly initialised zoo models."""

from __future__ import annotations

import functools
from typing import Callable

import torch
from torch import nn


def seeded(seed: int = 0) -> Callable:
    """Build the model under a private RNG seeded with `seed`, then return it in eval mode.

    The global RNG is left as it was, so building a model never changes what a test draws
    afterwards, and the same factory call gives the same weights in any process.
    """

    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        @functools.wraps(factory)
        def build(*args, **kwargs) -> nn.Module:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = factory(*args, **kwargs)
            return model.eval()

        return build

    return wrap


def randomize_batchnorm(model: nn.Module) -> None:
    """Give untrained BatchNorm layers varied affine parameters and running statistics.

    Fresh BN layers are the identity (gamma 1, beta 0, mean 0, var 1): BN-scale importance
    would be flat and BN folding would be checked on a no-op. Trained-looking spreads make
    both meaningful. Layers of a loaded checkpoint are not touched (called before loading).
    """
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine and m.track_running_stats:
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 1.5)


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round channel counts to a multiple of `divisor` as the MobileNet papers do, never
    going more than 10% below `v`."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def init_weights(model: nn.Module) -> None:
    """The torchvision initialisation (He-normal convs, small normal linears, zero biases)
    plus trained-looking BatchNorm statistics."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
    randomize_batchnorm(model)
