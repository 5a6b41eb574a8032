"""Ops that join or cut channel id arrays: Concat, Split, Slice, Gather. Split outputs and
Slice ranges become segments that each keep at least one channel.
"""

from __future__ import annotations

import numpy as np

from ..context import Context
from ..types import THROUGH
from .registry import attr, in_input, rule, where


@rule("Concat")
def concat(ctx: Context, node) -> None:
    names = list(node.input)
    infos = [ctx.get(n) for n in names]
    tracked = [i for i in infos if i is not None]
    if not tracked:
        return
    rank = ctx.rank(node.output[0])
    axis = int(attr(node, "axis")) % rank
    if len({i.axis for i in tracked}) != 1:
        ctx.freeze_inputs(node, f"{where(node)} joins tensors with different channel axes")
        return
    ch = tracked[0].axis
    if axis == ch:
        parts = []
        for name, info in zip(names, infos):
            if info is not None:
                parts.append(info.ids)
            else:
                shape = ctx.shape(name)
                if shape is None:
                    ctx.freeze_inputs(node, f"{where(node)}: input '{name}' has an unknown shape")
                    return
                parts.append(ctx.fresh(shape[axis], node, frozen=f"{where(node)}: input '{name}' is untracked"))
        ctx.set(node.output[0], ch, np.concatenate(parts))
        return
    y = tracked[0].ids
    for name, info in zip(names, infos):
        if info is not None:
            ctx.union(info.ids, y)
        elif ctx.is_const(name) and ctx.shape(name)[ch] == len(y):
            ctx.slice(name, ch, y, node, THROUGH, "scale")
        else:
            ctx.freeze(y, f"{where(node)}: input '{name}' carries channels of unknown origin")
    ctx.set(node.output[0], ch, y)


@rule("Split")
def split(ctx: Context, node) -> None:
    x = in_input(ctx, node, 0)
    if x is None:
        return
    rank = ctx.rank(node.input[0])
    axis = int(attr(node, "axis", 0)) % rank
    if axis not in x.axes:
        for out in node.output:
            ctx.set_axes(out, x.axes, x.ids)
        return
    sizes = [ctx.shape(o)[axis] if ctx.shape(o) else None for o in node.output]
    if x.multi:
        # splitting q/k/v apart along their own axis: whole heads span all three, so the
        # sizes never change
        sub = x.axes.index(axis)
        if None in sizes or sum(sizes) != x.ids.shape[sub]:
            ctx.freeze(x.ids, f"{where(node)} has unknown split sizes")
            return
        for out, part in zip(node.output, np.split(x.ids, np.cumsum(sizes)[:-1], axis=sub)):
            ctx.set_axes(out, x.axes, part)
        return
    if None in sizes or sum(sizes) != len(x.ids):
        ctx.freeze(x.ids, f"{where(node)} has unknown split sizes")
        return
    offsets = np.cumsum([0] + sizes)
    for out, a, b in zip(node.output, offsets[:-1], offsets[1:]):
        ctx.set(out, axis, x.ids[a:b])
    ctx.fixup(node, "split", x.ids, sizes=sizes, opset=ctx.opset)


@rule("Slice")
def slice_(ctx: Context, node) -> None:
    x = in_input(ctx, node, 0)
    if x is None:
        return
    shape = ctx.shape(node.input[0])
    consts = [ctx.const(n) if n else None for n in list(node.input[1:5]) + [""] * (5 - len(node.input))]
    starts, ends, axes, steps = consts
    if starts is None or ends is None or shape is None:
        ctx.freeze(x.ids, f"{where(node)} has non-constant bounds")
        return
    rank = len(shape)
    axes = list(range(len(starts))) if axes is None else [int(a) % rank for a in axes]
    steps = [1] * len(axes) if steps is None else [int(s) for s in steps]
    if x.axis not in axes:
        ctx.set(node.output[0], x.axis, x.ids)
        return
    k = axes.index(x.axis)
    if steps[k] != 1:
        ctx.freeze(x.ids, f"{where(node)} slices channels with step {steps[k]}")
        return
    begin, end, _ = slice(int(starts[k]), int(ends[k])).indices(len(x.ids))
    end = max(begin, end)
    ctx.set(node.output[0], x.axis, x.ids[begin:end])
    ctx.fixup(node, "slice", x.ids, index=k, begin=begin, end=end)


@rule("Gather")
def gather(ctx: Context, node) -> None:
    x = in_input(ctx, node, 0)
    if x is None:
        return
    rank = ctx.rank(node.input[0])
    axis = int(attr(node, "axis", 0)) % rank
    idx = ctx.shape(node.input[1])
    index = ctx.const(node.input[1])
    if axis in x.axes and x.multi and index is not None and index.ndim == 0:
        # picking q, k or v out of a packed [3, heads, head_dim] split
        sub = x.axes.index(axis)
        ids = np.take(x.ids, int(index) % x.ids.shape[sub], axis=sub)
        ctx.set_axes(node.output[0], [a if a < axis else a - 1 for a in x.axes if a != axis], ids)
        return
    if axis in x.axes or idx is None:
        ctx.freeze(x.ids, f"{where(node)} gathers along the channel axis")
        return
    ctx.set_axes(node.output[0], [a if axis > a else a + len(idx) - 1 for a in x.axes], x.ids)
