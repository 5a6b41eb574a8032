"""One channel rule per ONNX op kind.

A rule reads its inputs' channel facts from the Context and writes its outputs'. An op
with no rule freezes every channel it touches, naming itself: unknown ops are never
assumed to be elementwise (that is how silent mis-pruning happens).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import onnx

from ..errors import UsageError
from .context import Context
from .types import IN, OUT, SHAPE, THROUGH

Rule = Callable[[Context, onnx.NodeProto], None]
RULES: dict[str, Rule] = {}


def rule(*op_types: str):
    def register(fn: Rule) -> Rule:
        for op in op_types:
            if op in RULES:
                raise ValueError(f"duplicate channel rule for {op}")
            RULES[op] = fn
        return fn

    return register


def attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def where(node) -> str:
    return f"{node.op_type} '{node.name}'"


def no_rule(ctx: Context, node) -> None:
    """An op we cannot prove safe: freeze what flows in, mark what flows out unknown."""
    ctx.freeze_inputs(node, f"{where(node)} has no channel rule")


def _in_input(ctx: Context, node, k: int):
    return ctx.get(node.input[k]) if len(node.input) > k else None


def _pass_through(ctx: Context, node) -> None:
    x = _in_input(ctx, node, 0)
    if x is not None and node.output:
        ctx.set_axes(node.output[0], x.axes, x.ids)


# Ops whose rules understand channels spread over several axes (attention heads); any
# other op meeting such channels freezes them.
MULTI_AXIS_OPS = {"Reshape", "Transpose", "Gather", "MatMul", "Softmax", "Mul", "Div", "Add", "Sub",
                  "Cast", "Identity", "Dropout", "Where", "Split", "Squeeze"}


# ---- elementwise -------------------------------------------------------------------------
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
    _pass_through(ctx, node)


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


# ---- producers -----------------------------------------------------------------------------
def _conv_operands(ctx: Context, node):
    """(x info or None, weight name, weight shape, bias name) of a Conv/ConvTranspose, or
    None when the weight is not a constant (then its inputs are frozen)."""
    x = _in_input(ctx, node, 0)
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
    a = _in_input(ctx, node, 0)
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


# ---- per-channel normalisation -------------------------------------------------------------
@rule("BatchNormalization")
def batchnorm(ctx: Context, node) -> None:
    x = _in_input(ctx, node, 0)
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
    x = _in_input(ctx, node, 0)
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
    x = _in_input(ctx, node, 0)
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
    x = _in_input(ctx, node, 0)
    if x is None:
        return
    rank = ctx.rank(node.input[0])
    axis = int(attr(node, "axis", -1)) % rank
    if axis in x.axes:
        ctx.freeze(x.ids, f"{where(node)} normalises across the channel axis")
    ctx.set_axes(node.output[0], x.axes, x.ids)


# ---- spatial ops: per channel --------------------------------------------------------------
@rule("MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool", "GlobalLpPool")
def pool(ctx: Context, node) -> None:
    x = _in_input(ctx, node, 0)
    if x is None:
        return
    if x.axis != 1 or (len(node.output) > 1 and node.output[1]):
        ctx.freeze(x.ids, f"{where(node)} pools off axis 1 or returns indices")
        return
    ctx.set(node.output[0], 1, x.ids)


@rule("Resize", "Upsample")
def resize(ctx: Context, node) -> None:
    x = _in_input(ctx, node, 0)
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
    x = _in_input(ctx, node, 0)
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


# ---- layout ops --------------------------------------------------------------------------------
@rule("Transpose")
def transpose(ctx: Context, node) -> None:
    x = _in_input(ctx, node, 0)
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
    x = _in_input(ctx, node, 0)
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
    x = _in_input(ctx, node, 0)
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
    x = _in_input(ctx, node, 0)
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
    x = _in_input(ctx, node, 0)
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
    x = _in_input(ctx, node, 0)
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


@rule("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
      "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare")
def reduce(ctx: Context, node) -> None:
    x = _in_input(ctx, node, 0)
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


@rule("Gather")
def gather(ctx: Context, node) -> None:
    x = _in_input(ctx, node, 0)
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


@rule("Shape", "Size")
def shape_of(ctx: Context, node) -> None:
    x = _in_input(ctx, node, 0)
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
    x = _in_input(ctx, node, 0)
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
