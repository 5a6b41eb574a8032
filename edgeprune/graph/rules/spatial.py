"""Ops that work over space, channel by channel: pooling, reductions, Resize, Pad.
"""

from __future__ import annotations

import numpy as np

from ..context import Context
from .registry import attr, in_input, rule, where


@rule("MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool", "GlobalLpPool")
def pool(ctx: Context, node) -> None:
    x = in_input(ctx, node, 0)
    if x is None:
        return
    if x.axis != 1 or (len(node.output) > 1 and node.output[1]):
        ctx.freeze(x.ids, f"{where(node)} pools off axis 1 or returns indices")
        return
    ctx.set(node.output[0], 1, x.ids)


@rule("Resize", "Upsample")
def resize(ctx: Context, node) -> None:
    x = in_input(ctx, node, 0)
    if x is None:
        return
    # Resize(X, roi, scales, sizes) with one of scales/sizes (the other "" or an empty tensor);
    # opset 18 may name the resized axes, scales/sizes then have one entry per named axis.
    # Upsample(X, scales)
    scales_name = node.input[1] if node.op_type == "Upsample" else (node.input[2] if len(node.input) > 2 else "")
    sizes_name = node.input[3] if node.op_type == "Resize" and len(node.input) > 3 else ""
    rank = ctx.rank(node.input[0])
    axes = attr(node, "axes")
    if axes is not None and rank is None:
        ctx.freeze(x.ids, f"{where(node)} resizes named axes of a tensor of unknown rank")
        return
    # where the channel axis sits in scales/sizes, or None when they leave it alone
    index = x.axis if axes is None else next((k for k, a in enumerate(axes) if int(a) % rank == x.axis), None)
    if scales_name:
        scales = ctx.const(scales_name)
        if scales is None:
            ctx.freeze(x.ids, f"{where(node)} has non-constant scales")
            return
        if scales.size and index is not None and scales.reshape(-1)[index] != 1:
            ctx.freeze(x.ids, f"{where(node)} resizes the channel axis")
            return
    if sizes_name:
        sizes = ctx.const(sizes_name)
        if sizes is None:
            ctx.freeze(x.ids, f"{where(node)} has non-constant sizes")
            return
        if sizes.size and index is not None:
            if sizes.reshape(-1)[index] != len(x.ids):
                ctx.freeze(x.ids, f"{where(node)} resizes the channel axis")
                return
            ctx.fixup(node, "shape", x.ids, input=3, index=index)
    ctx.set(node.output[0], x.axis, x.ids)


@rule("Pad")
def pad(ctx: Context, node) -> None:
    x = in_input(ctx, node, 0)
    if x is None:
        return
    pads = ctx.const(node.input[1]) if len(node.input) > 1 else np.array(attr(node, "pads", []))
    axes_name = node.input[3] if len(node.input) > 3 else ""
    rank = ctx.rank(node.input[0])
    if pads is None or (axes_name and ctx.const(axes_name) is None):
        ctx.freeze(x.ids, f"{where(node)} has non-constant pads")
        return
    axes = list(range(rank)) if not axes_name else [int(a) % rank for a in ctx.const(axes_name)]
    pads = pads.reshape(-1)
    n = len(axes)
    for k, a in enumerate(axes):
        if a == x.axis and (pads[k] != 0 or pads[k + n] != 0):
            ctx.freeze(x.ids, f"{where(node)} pads the channel axis")
            return
    ctx.set(node.output[0], x.axis, x.ids)


@rule("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
      "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare")
def reduce(ctx: Context, node) -> None:
    x = in_input(ctx, node, 0)
    if x is None:
        return
    rank = ctx.rank(node.input[0])
    axes = attr(node, "axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = ctx.const(node.input[1])
        if axes is None:
            ctx.freeze(x.ids, f"{where(node)} has non-constant axes")
            return
    if axes is None or len(np.reshape(axes, -1)) == 0:
        if attr(node, "noop_with_empty_axes", 0):
            ctx.set(node.output[0], x.axis, x.ids)
        else:
            ctx.freeze(x.ids, f"{where(node)} reduces across the channel axis")
        return
    axes = sorted(int(a) % rank for a in np.reshape(axes, -1))
    if x.axis in axes:
        ctx.freeze(x.ids, f"{where(node)} reduces across the channel axis")
        return
    keep = int(attr(node, "keepdims", 1))
    ctx.set(node.output[0], x.axis if keep else x.axis - sum(a < x.axis for a in axes), x.ids)
