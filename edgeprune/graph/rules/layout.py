"""Ops that move channels between axes without changing them: Transpose, Flatten,
Reshape (including the split into attention heads), Squeeze/Unsqueeze, Expand/Tile, and
Shape/Size (which read a shape and carry no channels).
"""

from __future__ import annotations

import numpy as np

from ..context import Context
from .registry import attr, in_input, rule, where


@rule("Transpose")
def transpose(ctx: Context, node) -> None:
    x = in_input(ctx, node, 0)
    if x is None:
        return
    rank = ctx.rank(node.input[0])
    perm = list(attr(node, "perm", list(range(rank))[::-1]))
    ctx.set_axes(node.output[0], [perm.index(a) for a in x.axes], x.ids)


def _merged_ids(ids: np.ndarray, shape: tuple[int, ...], lo: int, hi: int, axis: int) -> np.ndarray:
    """Channel ids of dims shape[lo:hi] merged into one axis, in C order."""
    inner = int(np.prod(shape[axis + 1:hi], dtype=np.int64))
    outer = int(np.prod(shape[lo:axis], dtype=np.int64))
    return np.tile(np.repeat(ids, inner), outer)


@rule("Flatten")
def flatten(ctx: Context, node) -> None:
    x = in_input(ctx, node, 0)
    if x is None:
        return
    shape = ctx.shape(node.input[0])
    if shape is None:
        ctx.freeze(x.ids, f"{where(node)} has an unknown input shape")
        return
    split = int(attr(node, "axis", 1)) % (len(shape) + 1)
    if x.axis >= split:
        ctx.set(node.output[0], 1, _merged_ids(x.ids, shape, split, len(shape), x.axis))
    else:
        ctx.set(node.output[0], 0, _merged_ids(x.ids, shape, 0, split, x.axis))


def _reshape_blocks(src: tuple[int, ...], dst: tuple[int, ...]):
    """Pair runs of source and destination dims with equal products (a reshape moves data
    only within such runs). Yields (src_lo, src_hi, dst_lo, dst_hi)."""
    i = j = 0
    while i < len(src) or j < len(dst):
        lo_i, lo_j = i, j
        p = q = 1
        if i < len(src):
            p *= src[i]
            i += 1
        if j < len(dst):
            q *= dst[j]
            j += 1
        while p != q:
            if p < q and i < len(src):
                p *= src[i]
                i += 1
            elif j < len(dst):
                q *= dst[j]
                j += 1
            else:
                return
        # absorb trailing size-1 dims into this run so the next run starts clean
        yield lo_i, i, lo_j, j


@rule("Reshape")
def reshape(ctx: Context, node) -> None:
    x = in_input(ctx, node, 0)
    if x is None:
        return
    src, dst = ctx.shape(node.input[0]), ctx.shape(node.output[0])
    target = ctx.const(node.input[1])
    if src is None or dst is None or target is None:
        ctx.freeze(x.ids, f"{where(node)} has an unknown or non-constant shape")
        return
    target = target.reshape(-1)
    runs = [r for r in _reshape_blocks(src, dst) if any(r[0] <= a < r[1] for a in x.axes)]
    if len(runs) != 1 or not all(runs[0][0] <= a < runs[0][1] for a in x.axes):
        ctx.freeze(x.ids, f"{where(node)} cannot be traced")
        return
    lo_i, hi_i, lo_j, hi_j = runs[0]
    real_src = [k for k in range(lo_i, hi_i) if src[k] != 1 or k in x.axes]
    real_dst = [k for k in range(lo_j, hi_j) if dst[k] != 1]
    if len(real_dst) <= 1:
        # channels (with the features they own) merge into one axis
        j = real_dst[0] if real_dst else lo_j
        shape_b = [src[k] if k in x.axes else 1 for k in range(lo_i, hi_i)]
        ids = np.broadcast_to(x.ids.reshape(shape_b), src[lo_i:hi_i]).ravel()
        if target[j] > 0:
            ctx.fixup(node, "shape", ids, input=1, index=j)
        elif target[j] == 0 and (j != x.axis or x.multi or attr(node, "allowzero", 0)):
            ctx.freeze(x.ids, f"{where(node)} copies a dim by position")
            return
        ctx.set(node.output[0], j, ids)
        return
    if real_src == list(x.axes) and not x.multi:
        _split_heads(ctx, node, x, target, dst, real_dst)
        return
    ctx.freeze(x.ids, f"{where(node)} regroups the channel axis")


def _split_heads(ctx: Context, node, x, target, dst, real_dst) -> None:
    """Channels split into [..., heads, head_dim] (optionally [3, heads, head_dim] for a
    packed q/k/v): heads are pruned whole, so the head count is what the shape must follow."""
    dims = [dst[k] for k in real_dst]
    head = len(dims) - 2
    j = real_dst[head]
    if target[j] == 0 or any(target[k] == 0 for k in real_dst):
        ctx.freeze(x.ids, f"{where(node)} splits the channel axis with a copied dim")
        return
    ids = x.ids.reshape(dims)
    if target[j] > 0:
        divisor = int(np.prod(dims)) // dims[head]
        ctx.fixup(node, "shape", ids.ravel(), input=1, index=j, divisor=divisor)
    for h in range(dims[head]):
        ctx.atom(np.take(ids, h, axis=head))
    ctx.set_axes(node.output[0], real_dst, ids)


@rule("Squeeze", "Unsqueeze")
def squeeze(ctx: Context, node) -> None:
    x = in_input(ctx, node, 0)
    if x is None:
        return
    in_rank, out_rank = ctx.rank(node.input[0]), ctx.rank(node.output[0])
    axes = ctx.const(node.input[1]) if len(node.input) > 1 and node.input[1] else attr(node, "axes")
    if axes is None or in_rank is None or out_rank is None:
        ctx.freeze(x.ids, f"{where(node)} has unknown axes")
        return
    if node.op_type == "Squeeze":
        axes = sorted(int(a) % in_rank for a in np.reshape(axes, -1))
        ids = x.ids
        for a in axes:
            if a in x.axes:
                sub = x.axes.index(a)
                if not x.multi or ids.shape[sub] != 1:
                    ctx.freeze(x.ids, f"{where(node)} squeezes the channel axis")
                    return
        keep = [k for k, a in enumerate(x.axes) if a not in axes]
        ids = ids.reshape([ids.shape[k] for k in keep])
        ctx.set_axes(node.output[0], [x.axes[k] - sum(a < x.axes[k] for a in axes) for k in keep], ids)
    else:
        axes = sorted(int(a) % out_rank for a in np.reshape(axes, -1))
        moved = []
        for axis in x.axes:
            for a in axes:
                if a <= axis:
                    axis += 1
            moved.append(axis)
        ctx.set_axes(node.output[0], moved, x.ids)


@rule("Shape", "Size")
def shape_of(ctx: Context, node) -> None:
    x = in_input(ctx, node, 0)
    if x is None:
        return
    rank = ctx.rank(node.input[0])
    start = int(attr(node, "start", 0)) % (rank + 1) if node.op_type == "Shape" else 0
    end = attr(node, "end", None)
    end = rank if end is None else int(end) % (rank + 1) if end < 0 else min(int(end), rank)
    if node.op_type == "Size" or start <= x.axis < end:
        ctx.freeze(x.ids, f"{where(node)} reads the channel count")


@rule("Expand", "Tile")
def expand(ctx: Context, node) -> None:
    x = in_input(ctx, node, 0)
    if x is None:
        return
    arg = ctx.const(node.input[1])
    in_rank, out_rank = ctx.rank(node.input[0]), ctx.rank(node.output[0])
    if arg is None or in_rank is None or out_rank is None:
        ctx.freeze(x.ids, f"{where(node)} has a non-constant shape")
        return
    axis = x.axis + out_rank - in_rank
    arg = arg.reshape(-1)
    if node.op_type == "Tile":
        if arg[x.axis] != 1:
            ctx.freeze(x.ids, f"{where(node)} repeats the channel axis")
            return
    else:
        k = axis - (out_rank - len(arg))
        if k >= 0 and arg[k] not in (1, len(x.ids)):
            ctx.freeze(x.ids, f"{where(node)} expands the channel axis")
            return
        if k >= 0 and arg[k] == len(x.ids) and len(x.ids) > 1:
            ctx.fixup(node, "shape", x.ids, input=1, index=k)
    ctx.set(node.output[0], axis, x.ids)
