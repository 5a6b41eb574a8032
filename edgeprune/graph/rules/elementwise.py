"""Elementwise ops: unary ones pass channel ids through; broadcasting ones (Add, Mul,
Where, Clip, ...) tie their tracked inputs' ids position by position and slice per-channel
constants along with them.
"""

from __future__ import annotations

from ..context import Context
from ..types import THROUGH
from .registry import pass_through, rule, where


UNARY = (
    "Relu", "Sigmoid", "HardSigmoid", "HardSwish", "LeakyRelu", "Gelu", "Tanh", "Elu", "Selu",
    "Celu", "Softplus", "Softsign", "Mish", "ThresholdedRelu", "Identity", "Dropout", "Neg",
    "Abs", "Exp", "Log", "Sqrt", "Reciprocal", "Erf", "Floor", "Ceil", "Round", "Sign",
    "Sin", "Cos", "Cast", "Relu6",
)


@rule(*UNARY)
def unary(ctx: Context, node) -> None:
    if node.op_type == "Dropout" and len(node.output) > 1 and node.output[1]:
        ctx.freeze_inputs(node, f"{where(node)} emits a mask")
        return
    pass_through(ctx, node)


@rule("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "PRelu", "Where", "Clip")
def broadcast_elementwise(ctx: Context, node) -> None:
    """Inputs broadcast to the output; tracked inputs with the full channel count are tied
    position by position, constants with the channel axis are sliced along with them."""
    out = node.output[0]
    out_rank = ctx.rank(out)
    operands = [n for n in node.input if n]
    if node.op_type == "Clip":
        operands = operands[:1] + [n for n in operands[1:] if (ctx.shape(n) or ()) != ()]
    tracked = [(n, ctx.get(n)) for n in operands if ctx.get(n) is not None]
    if not tracked or out_rank is None:
        if tracked:
            ctx.freeze_inputs(node, f"{where(node)} has an unknown output shape")
        return
    if any(info.multi for _, info in tracked):
        _broadcast_heads(ctx, node, operands, tracked, out_rank)
        return
    axes = {out_rank - ctx.rank(n) + info.axis for n, info in tracked}
    if len(axes) != 1:
        ctx.freeze_inputs(node, f"{where(node)} mixes channel axes")
        return
    axis = axes.pop()
    full = [(n, i) for n, i in tracked if len(i.ids) == ctx.shape(out)[axis]]
    if not full:
        ctx.freeze_inputs(node, f"{where(node)} broadcasts a channel axis")
        return
    y = full[0][1].ids
    for name in operands:
        info = ctx.get(name)
        shape = ctx.shape(name)
        if info is not None:
            if len(info.ids) == len(y):
                ctx.union(info.ids, y)
            else:
                ctx.freeze(info.ids, f"{where(node)} broadcasts a channel axis")
                ctx.freeze(y, f"{where(node)} broadcasts a channel axis")
            continue
        if shape is None:
            ctx.freeze(y, f"{where(node)}: input '{name}' has an unknown shape")
            continue
        in_axis = axis - (out_rank - len(shape))
        if in_axis < 0 or shape[in_axis] == 1:
            continue  # broadcast along channels: nothing per-channel to slice
        if ctx.is_const(name):
            ctx.slice(name, in_axis, y, node, THROUGH, "scale")
        else:
            ctx.freeze(y, f"{where(node)}: input '{name}' carries channels of unknown origin")
    ctx.set(out, axis, y)


def _broadcast_heads(ctx: Context, node, operands, tracked, out_rank) -> None:
    """Head-split channels meet scalars or masks that broadcast over every channel axis
    (attention scale, additive mask): they pass through; anything else freezes them."""
    (name, x), = tracked if len(tracked) == 1 else [(None, None)]
    if x is None:
        ctx.freeze_inputs(node, f"{where(node)} combines head-split channels")
        return
    shift = out_rank - ctx.rank(name)
    for other in operands:
        if other == name:
            continue
        shape = ctx.shape(other)
        if shape is None:
            ctx.freeze(x.ids, f"{where(node)}: input '{other}' has an unknown shape")
            return
        for a in x.axes:
            k = a + shift - (out_rank - len(shape))
            if k >= 0 and shape[k] != 1:
                ctx.freeze(x.ids, f"{where(node)}: input '{other}' varies along head-split channels")
                return
    ctx.set_axes(node.output[0], [a + shift for a in x.axes], x.ids)
