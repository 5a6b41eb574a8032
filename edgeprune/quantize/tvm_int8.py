"""QDQ patterns lowered to integer arithmetic in TVM Relax.

TVM's ONNX importer turns a QDQ model into dequantize → float conv2d/matmul → quantize.
`lower_qdq` rewrites every such pattern (with its optional dequantized int32 bias) into

    int8 input ─ pad with the zero point ─ conv2d / matmul (int8 × int8 → int32)
      + (bias − zero point × Σ weights)  (one int32 constant per output channel)
      → requantize: × (s_x · s_w / s_y) per output channel, round half to even, + z_y,
        saturate, cast to the output's 8-bit type

so the artifact's convolutions and matrix products compute on 8-bit integers, exactly
the arithmetic of ONNX Runtime's QLinearConv / QGemm. uint8 activations (ORT's x86
choice) are shifted by −128 into int8 first, a cheap elementwise op, so both operands of
the integer kernel are int8. Elementwise ops between the patterns (residual Add, pooling)
stay dequantize → float → quantize.

A pattern is left as it is when it is not the plain case: weight zero points not zero,
a bias whose scale is not s_x · s_w, a layout other than NCHW/OIHW, or scales that are not
constants.
"""

from __future__ import annotations

import numpy as np

_QRANGE = {"uint8": (0, 255), "int8": (-128, 127)}


def lower_qdq(mod):
    """`mod` with every dequantize → conv2d/matmul (→ +bias) → quantize in its Relax
    functions replaced by an integer kernel and a requantize."""
    from tvm import relax
    from tvm.relax.dpl import rewrite_call

    out = mod
    for gv, func in mod.functions.items():
        if not isinstance(func, relax.Function):
            continue
        new = func
        for pattern, rewriter in _patterns():
            new = rewrite_call(pattern, rewriter, new)
        if not new.same_as(func):
            out = _with(out, gv, new)
    return out


def _with(mod, gv, func):
    import tvm

    funcs = dict(mod.functions)
    funcs[gv] = func
    return tvm.IRModule(funcs, attrs=mod.attrs)


def _patterns():
    from tvm.relax.dpl import is_const, is_op, wildcard

    x_q = wildcard()
    sx, zx = is_const(), is_const()
    w_q, sw, zw = is_const(), is_const(), is_const()
    b_q, sb, zb = is_const(), is_const(), is_const()
    sy, zy = is_const(), is_const()
    dq_x = is_op("relax.dequantize")(x_q, sx, zx)
    dq_w = is_op("relax.dequantize")(w_q, sw, zw)
    dq_b = is_op("relax.dequantize")(b_q, sb, zb)
    names = dict(x_q=x_q, sx=sx, zx=zx, w_q=w_q, sw=sw, zw=zw, b_q=b_q, sb=sb, zb=zb, sy=sy, zy=zy)

    conv = is_op("relax.nn.conv2d")(dq_x, dq_w)
    conv_bias = is_op("relax.add")(conv, is_op("relax.reshape")(dq_b, wildcard()))
    w_t = is_op("relax.permute_dims")(dq_w)
    mm = is_op("relax.matmul")(dq_x, w_t) | is_op("relax.matmul")(dq_x, dq_w)
    mm_bias = is_op("relax.add")(mm, dq_b)

    found = []
    for body, kind in ((conv_bias, "conv"), (conv, "conv"), (mm_bias, "matmul"), (mm, "matmul")):
        q = is_op("relax.quantize")(body, sy, zy)
        found.append((q, _rewriter(kind, names, conv, mm, w_t)))
    return found


def _rewriter(kind, p, conv_pat, mm_pat, transposed_pat):
    def rewrite(expr, matches):
        try:
            return _lower(kind, expr, matches, p, conv_pat, mm_pat, transposed_pat)
        except _NotPlain:
            return expr
    return rewrite


class _NotPlain(Exception):
    pass


def _const(matches, pat) -> np.ndarray:
    c = matches[pat]
    return c.value.numpy()


def _lower(kind, expr, m, p, conv_pat, mm_pat, transposed_pat):
    from tvm import relax

    x_q = m[p["x_q"]]
    x_dtype = str(x_q.ty.dtype)
    y_dtype = str(expr.ty.dtype)
    if x_dtype not in _QRANGE or y_dtype not in _QRANGE:
        raise _NotPlain
    sx, zx = float(_const(m, p["sx"]).reshape(-1)[0]), int(_const(m, p["zx"]).reshape(-1)[0])
    if _const(m, p["sx"]).size != 1 or _const(m, p["zx"]).size != 1:
        raise _NotPlain
    w = _const(m, p["w_q"]).astype(np.int64)
    if str(m[p["w_q"]].ty.dtype) != "int8" or np.any(_const(m, p["zw"]) != 0):
        raise _NotPlain
    sy = _const(m, p["sy"]).astype(np.float64).reshape(-1)
    zy = _const(m, p["zy"]).astype(np.int64).reshape(-1)
    if sy.size != 1 or zy.size != 1:
        raise _NotPlain

    if kind == "conv":
        call = m[conv_pat]
        a = call.attrs
        if str(a.data_layout) != "NCHW" or str(a.kernel_layout) != "OIHW":
            raise _NotPlain
        n_out = w.shape[0]
        w_sum = w.reshape(n_out, -1).sum(1)
        sw = _per_channel(_const(m, p["sw"]), n_out)
    else:
        weight_is_transposed = transposed_pat in m and m[transposed_pat] is not None
        # the importer gives (out, in) weights behind a permute for Gemm, (in, out) for MatMul
        wk = w.T if weight_is_transposed else w
        if wk.ndim != 2:
            raise _NotPlain
        n_out = wk.shape[1]
        w_sum = wk.sum(0)
        sw = _per_channel(_const(m, p["sw"]), n_out)

    bias = np.zeros(n_out, dtype=np.int64)
    if p["b_q"] in m and m[p["b_q"]] is not None:
        b = _const(m, p["b_q"]).astype(np.int64).reshape(-1)
        sb = _per_channel(_const(m, p["sb"]), n_out)
        if np.any(_const(m, p["zb"]) != 0) or not np.allclose(sb, sx * sw, rtol=1e-5, atol=0):
            raise _NotPlain
        bias = b

    # uint8 activations shifted into int8, the zero point with them
    if x_dtype == "uint8":
        x8 = relax.op.astype(relax.op.subtract(relax.op.astype(x_q, "int16"), relax.const(128, "int16")), "int8")
        z8 = zx - 128
    else:
        x8, z8 = x_q, zx
    offset = (bias - z8 * w_sum).astype(np.int32)
    scale = (sx * sw / sy[0]).astype(np.float32)

    if kind == "conv":
        top, left, bottom, right = (int(v) for v in a.padding)
        if top or left or bottom or right:
            x8 = relax.op.nn.pad(x8, [0, 0, 0, 0, top, bottom, left, right], pad_value=float(z8))
        acc = relax.op.nn.conv2d(x8, relax.const(w.astype(np.int8)), strides=a.strides, padding=(0, 0, 0, 0),
                                 dilation=a.dilation, groups=int(a.groups), out_dtype="int32")
        shape = (1, n_out, 1, 1)
    else:
        acc = relax.op.matmul(x8, relax.const(wk.astype(np.int8)), out_dtype="int32")
        shape = (n_out,)
    acc = relax.op.add(acc, relax.const(offset.reshape(shape)))
    y = relax.op.round(relax.op.multiply(relax.op.astype(acc, "float32"), relax.const(scale.reshape(shape))))
    lo, hi = _QRANGE[y_dtype]
    y = relax.op.clip(relax.op.add(y, relax.const(np.float32(zy[0]))), lo, hi)
    return relax.op.astype(y, y_dtype)


def _per_channel(scale: np.ndarray, n: int) -> np.ndarray:
    s = scale.astype(np.float64).reshape(-1)
    if s.size == 1:
        return np.full(n, s[0])
    if s.size != n:
        raise _NotPlain
    return s
