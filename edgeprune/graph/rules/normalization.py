"""Per-channel normalisation: BatchNormalization and InstanceNormalization slice their
parameters with the channels; LayerNormalization and Softmax across the channel axis
freeze them (removing a channel changes what every other channel sees).
"""

from __future__ import annotations

from ..context import Context
from ..types import THROUGH
from .registry import attr, in_input, rule, where


@rule("BatchNormalization")
def batchnorm(ctx: Context, node) -> None:
    x = in_input(ctx, node, 0)
    if x is None:
        return
    if x.axis != 1 or any(not ctx.is_const(n) for n in node.input[1:5]):
        ctx.freeze(x.ids, f"{where(node)} has non-constant parameters or channels off axis 1")
        return
    if len(node.output) > 1 and any(node.output[1:]):
        ctx.freeze(x.ids, f"{where(node)} is in training mode")
        return
    for name, param in zip(node.input[1:5], ("bn_scale", "bn_bias", "bn_mean", "bn_var")):
        ctx.slice(name, 0, x.ids, node, THROUGH, param)
    ctx.set(node.output[0], 1, x.ids)


@rule("InstanceNormalization")
def instancenorm(ctx: Context, node) -> None:
    x = in_input(ctx, node, 0)
    if x is None:
        return
    if x.axis != 1:
        ctx.freeze(x.ids, f"{where(node)} normalises channels off axis 1")
        return
    ctx.slice(node.input[1], 0, x.ids, node, THROUGH, "scale")
    ctx.slice(node.input[2], 0, x.ids, node, THROUGH, "bias")
    ctx.set(node.output[0], 1, x.ids)


@rule("LayerNormalization")
def layernorm(ctx: Context, node) -> None:
    x = in_input(ctx, node, 0)
    if x is None:
        return
    rank = ctx.rank(node.input[0])
    axis = int(attr(node, "axis", -1)) % rank
    if x.axis >= axis:
        # removing a channel changes the mean and variance every other channel sees
        ctx.freeze(x.ids, f"{where(node)} normalises across the channel axis")
    ctx.set(node.output[0], x.axis, x.ids)


@rule("Softmax", "LogSoftmax", "Hardmax")
def softmax(ctx: Context, node) -> None:
    x = in_input(ctx, node, 0)
    if x is None:
        return
    rank = ctx.rank(node.input[0])
    axis = int(attr(node, "axis", -1)) % rank
    if axis in x.axes:
        ctx.freeze(x.ids, f"{where(node)} normalises across the channel axis")
    ctx.set_axes(node.output[0], x.axes, x.ids)
