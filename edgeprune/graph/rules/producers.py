"""Ops that make fresh channel ids from a constant weight: Conv, ConvTranspose, Gemm and
MatMul (whose activation x activation form is traced only as attention's per-head
products q @ k^T and attn @ v). Grouped and depthwise convs pass ids through by group.
"""

from __future__ import annotations

import numpy as np

from ...errors import UsageError
from ..context import Context
from ..types import IN, OUT, THROUGH
from .registry import attr, in_input, rule, where


def _conv_operands(ctx: Context, node):
    """(x info or None, weight name, weight shape, bias name) of a Conv/ConvTranspose, or
    None when the weight is not a constant (then its inputs are frozen)."""
    x = in_input(ctx, node, 0)
    w_name = node.input[1]
    w = ctx.shape(w_name)
    if not ctx.is_const(w_name) or w is None:
        ctx.freeze_inputs(node, f"{where(node)} has a non-constant weight")
        return None
    _check_conv_shapes(ctx, node, w)
    if x is not None and x.axis != 1:
        ctx.freeze(x.ids, f"{where(node)} reads channels on axis {x.axis}")
        x = None
    return x, w_name, w, node.input[2] if len(node.input) > 2 else ""


def _check_conv_shapes(ctx: Context, node, w) -> None:
    """ONNX shape inference does not check a conv's channel counts: an input or bias that
    disagrees with the weight is a broken model, refused here rather than mis-pruned."""
    groups = int(attr(node, "group", 1))
    transposed = node.op_type == "ConvTranspose"
    c_in, c_out = (w[0], w[1] * groups) if transposed else (w[1] * groups, w[0])
    xs = ctx.shape(node.input[0])
    if xs is not None and len(xs) > 1 and xs[1] != c_in:
        raise UsageError(f"{where(node)}: weight '{node.input[1]}' expects {c_in} input channels, "
                         f"its input '{node.input[0]}' has {xs[1]}: the model is not valid")
    bs = ctx.shape(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if bs is not None and tuple(bs) != (c_out,):
        raise UsageError(f"{where(node)}: bias '{node.input[2]}' has shape {list(bs)}, the weight makes "
                         f"{c_out} channels: the model is not valid")


def _per_channel(ctx: Context, node, w_name, w_axis, b_name, ids, role) -> None:
    """Weight rows along w_axis and the bias follow `ids`."""
    ctx.slice(w_name, w_axis, ids, node, role, "weight")
    if b_name:
        ctx.slice(b_name, 0, ids, node, role, "bias")


def _dense_conv(ctx: Context, node, x, w_name, b_name, c_out, out_axis, in_axis) -> None:
    """An ungrouped (transposed) conv: fresh output channels on the weight's out_axis, the
    input's channels contracted on its in_axis."""
    y = ctx.fresh(c_out, node)
    _per_channel(ctx, node, w_name, out_axis, b_name, y, OUT)
    if x is not None:
        ctx.slice(w_name, in_axis, x.ids, node, IN, "weight")
    ctx.set(node.output[0], 1, y)


@rule("Conv")
def conv(ctx: Context, node) -> None:
    operands = _conv_operands(ctx, node)
    if operands is None:
        return
    x, w_name, w, b_name = operands
    out = node.output[0]
    groups = int(attr(node, "group", 1))
    c_out, c_in_pg = w[0], w[1]
    if groups == 1:
        _dense_conv(ctx, node, x, w_name, b_name, c_out, out_axis=0, in_axis=1)
        return
    if x is None:
        ctx.set(out, 1, ctx.fresh(c_out, node, frozen=f"{where(node)} is a grouped conv on untracked channels"))
        return
    c_in = len(x.ids)
    if c_in_pg == 1 and groups == c_in:
        # depthwise: output channel k*m..k*m+m-1 comes from input channel k alone
        y = np.repeat(x.ids, c_out // c_in)
        _per_channel(ctx, node, w_name, 0, b_name, y, THROUGH)
        ctx.fixup(node, "group", x.ids, unit=1)
        ctx.set(out, 1, y)
        return
    out_pg = c_out // groups
    if out_pg == c_in_pg:
        # a conv group maps input block k to output block k: prune whole groups
        for k in range(groups):
            ctx.atom(x.ids[k * c_in_pg:(k + 1) * c_in_pg])
        _per_channel(ctx, node, w_name, 0, b_name, x.ids, THROUGH)
        ctx.fixup(node, "group", x.ids, unit=c_in_pg)
        ctx.set(out, 1, x.ids)
        return
    reason = f"{where(node)} is a grouped conv with {c_in_pg} inputs and {out_pg} outputs per group"
    ctx.freeze(x.ids, reason)
    ctx.set(out, 1, ctx.fresh(c_out, node, frozen=reason))


@rule("ConvTranspose")
def conv_transpose(ctx: Context, node) -> None:
    operands = _conv_operands(ctx, node)
    if operands is None:
        return
    x, w_name, w, b_name = operands
    out = node.output[0]
    groups = int(attr(node, "group", 1))
    if groups == 1:
        _dense_conv(ctx, node, x, w_name, b_name, w[1], out_axis=1, in_axis=0)
        return
    if x is not None and groups == len(x.ids) and w[1] == 1:
        _per_channel(ctx, node, w_name, 0, b_name, x.ids, THROUGH)
        ctx.fixup(node, "group", x.ids, unit=1)
        ctx.set(out, 1, x.ids)
        return
    reason = f"{where(node)} is a grouped transposed conv"
    ctx.freeze_inputs(node, reason)
    ctx.set(out, 1, ctx.fresh(w[1] * groups, node, frozen=reason))


@rule("Gemm")
def gemm(ctx: Context, node) -> None:
    a = in_input(ctx, node, 0)
    b_name = node.input[1]
    b = ctx.shape(b_name)
    out = node.output[0]
    if attr(node, "transA", 0) or not ctx.is_const(b_name) or b is None or len(b) != 2:
        ctx.freeze_inputs(node, f"{where(node)} is not activation x constant weight")
        return
    trans_b = int(attr(node, "transB", 0))
    k_axis, n_axis = (1, 0) if trans_b else (0, 1)
    y = ctx.fresh(b[n_axis], node)
    ctx.slice(b_name, n_axis, y, node, OUT, "weight")
    if a is not None:
        if a.axis != 1:
            ctx.freeze(a.ids, f"{where(node)} contracts a non-channel axis")
        else:
            ctx.slice(b_name, k_axis, a.ids, node, IN, "weight")
    c_name = node.input[2] if len(node.input) > 2 else ""
    if c_name:
        c = ctx.shape(c_name)
        if not ctx.is_const(c_name) or c is None:
            ctx.freeze(y, f"{where(node)} has a non-constant bias")
        elif c and c[-1] == len(y) and int(np.prod(c)) == len(y):
            ctx.slice(c_name, len(c) - 1, y, node, OUT, "bias")
        elif c and c[-1] != 1:
            ctx.freeze(y, f"{where(node)} has a bias of shape {list(c)}")
    ctx.set(out, 1, y)


@rule("MatMul")
def matmul(ctx: Context, node) -> None:
    a_name, b_name = node.input[0], node.input[1]
    a, b = ctx.get(a_name), ctx.get(b_name)
    out = node.output[0]
    a_rank, out_rank = ctx.rank(a_name), ctx.rank(out)
    b_shape = ctx.shape(b_name)
    if ctx.is_const(b_name) and b_shape is not None and len(b_shape) == 2 and a_rank and out_rank:
        if a is not None and a.axis != a_rank - 1:
            # contracts another axis (e.g. spatial): channels pass through untouched
            ctx.set(out, a.axis + (out_rank - a_rank), a.ids)
            return
        y = ctx.fresh(b_shape[1], node)
        ctx.slice(b_name, 1, y, node, OUT, "weight")
        if a is not None:
            ctx.slice(b_name, 0, a.ids, node, IN, "weight")
        ctx.set(out, out_rank - 1, y)
        return
    if a is not None and b is not None and a_rank and ctx.rank(b_name) and out_rank:
        if _attention_matmul(ctx, node, a, b, a_rank, ctx.rank(b_name), out_rank):
            return
    reason = (f"{where(node)} multiplies two activations outside an attention-head pattern"
              if a is not None and b is not None else f"{where(node)} is not activation x 2-D constant weight")
    ctx.freeze_inputs(node, reason)


def _attention_matmul(ctx: Context, node, a, b, ra: int, rb: int, ro: int) -> bool:
    """Per-head products: scores = q @ k^T (contracts the head dim) and out = attn @ v.

    Both operands carry the heads on the same batch axis. Whole heads are atoms, so a head's
    first channel id stands for the head on the attention-score tensor."""
    a_out = [x + ro - ra for x in a.axes]
    b_out = [x + ro - rb for x in b.axes]
    batch = [x for x in a_out if x < ro - 2]
    if not batch or batch != [x for x in b_out if x < ro - 2]:
        return False
    a_rest = [x for x in a_out if x >= ro - 2]
    b_rest = [x for x in b_out if x >= ro - 2]
    nb = len(batch)
    if a_rest == [ro - 1] and b_rest == [ro - 2] and a.ids.shape == b.ids.shape:
        # q [.., H, N, d] @ kT [.., H, d, N]: q's and k's head dims pair up position by position
        ctx.union(a.ids, b.ids)
        for h in np.ndindex(*a.ids.shape[:nb]):
            ctx.atom(a.ids[h])
            ctx.atom(b.ids[h])
        ctx.set_axes(node.output[0], batch, a.ids[(Ellipsis, 0)])
        return True
    if not a_rest and b_rest == [ro - 1] and b.ids.shape[:nb] == a.ids.shape:
        # attn [.., H, N, N] @ v [.., H, N, d]: head h of v goes with head h of q and k (one
        # atom, one group) but v's channels stay channels of their own
        ctx.link(a.ids, b.ids[(Ellipsis, 0)])
        for h in np.ndindex(*a.ids.shape):
            ctx.atom(np.concatenate([[a.ids[h]], b.ids[h].ravel()]))
        ctx.set_axes(node.output[0], batch + [ro - 1], b.ids)
        return True
    return False
