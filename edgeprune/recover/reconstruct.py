"""Least-squares reconstruction of one layer from calibration activations.

For a consumer layer (Conv, depthwise Conv, Gemm, MatMul with a constant weight) the rows
are its input as the *pruned* model computes it (kept channels only, unfolded into
patches for a convolution) with a column of ones appended, and the targets are the
*dense* layer's outputs on the same samples. Solving for weights and bias together is
what compensates the removed channels: their contribution was not zero on average, and
the ones column folds that mean into the bias. The fit is a ridge regression pulled
towards the current (sliced) weights rather than towards zero, so a layer with few
calibration rows moves only as far as the data asks.

`NormalEquations` accumulates Aᵀ A and Aᵀ Y chunk by chunk (the activations of a whole
calibration set never sit in memory at once); `solve` gives the refit weights and the
fitted layer's output moments, which the BN after it needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

CONV, DEPTHWISE, GEMM, MATMUL = "conv", "depthwise", "gemm", "matmul"


def _attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def layer_kind(node: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> str | None:
    """Which reconstruction applies to `node`, or None (grouped conv, non-2-D conv,
    auto_pad, scaled Gemm, activation x activation MatMul: left as they are)."""
    if node.domain not in ("", "ai.onnx") or len(node.input) < 2 or node.input[1] not in inits:
        return None
    w = inits[node.input[1]].dims
    if node.op_type == "Conv":
        if len(w) != 4 or _attr(node, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            return None
        groups = int(_attr(node, "group", 1))
        if groups == 1:
            return CONV
        if w[1] == 1 and w[0] == groups:
            return DEPTHWISE
        return None
    if node.op_type == "Gemm":
        plain = (_attr(node, "transA", 0) == 0 and float(_attr(node, "alpha", 1.0)) == 1.0
                 and float(_attr(node, "beta", 1.0)) == 1.0 and len(w) == 2)
        bias_ok = len(node.input) < 3 or not node.input[2] or node.input[2] in inits
        return GEMM if plain and bias_ok else None
    if node.op_type == "MatMul" and len(w) == 2:
        return MATMUL
    return None


@dataclass
class Layer:
    """A layer's weights as a regression: `coef` is (groups, features + 1, outputs), the
    last feature row being the bias."""

    kind: str
    node: onnx.NodeProto
    weight_shape: tuple[int, ...]
    coef: np.ndarray

    @classmethod
    def read(cls, node: onnx.NodeProto, kind: str, inits) -> "Layer":
        w = numpy_helper.to_array(inits[node.input[1]]).astype(np.float64)
        bias_name = node.input[2] if len(node.input) > 2 and node.input[2] else ""
        if kind == CONV:
            b = numpy_helper.to_array(inits[bias_name]).astype(np.float64) if bias_name else np.zeros(w.shape[0])
            coef = np.concatenate([w.reshape(w.shape[0], -1).T, b[None]], axis=0)[None]
        elif kind == DEPTHWISE:
            b = numpy_helper.to_array(inits[bias_name]).astype(np.float64) if bias_name else np.zeros(w.shape[0])
            coef = np.concatenate([w.reshape(w.shape[0], -1), b[:, None]], axis=1)[:, :, None]
        else:
            wk = w.T if kind == GEMM and _attr(node, "transB", 0) else w
            b = np.zeros(wk.shape[1])
            if kind == GEMM and bias_name:
                b = b + numpy_helper.to_array(inits[bias_name]).astype(np.float64).reshape(-1)
            coef = np.concatenate([wk, b[None]], axis=0)[None]
        return cls(kind, node, tuple(w.shape), coef)

    def rows(self, x: np.ndarray, y: np.ndarray, rows_per_sample: int,
             rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(groups, rows, features) inputs and (groups, rows, outputs) targets of a batch,
        at most `rows_per_sample` random output positions per sample (a convolution's
        neighbouring positions say nearly the same thing; more samples say more)."""
        parts = [self._rows(x[i:i + 1], y[i:i + 1]) for i in range(len(x))]
        picked = []
        for a, t in parts:
            if a.shape[1] > rows_per_sample:
                idx = torch.from_numpy(np.sort(rng.choice(a.shape[1], rows_per_sample, replace=False)))
                a, t = a[:, idx], t[:, idx]
            picked.append((a, t))
        return torch.cat([a for a, _ in picked], dim=1), torch.cat([t for _, t in picked], dim=1)

    def _rows(self, x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        if self.kind in (CONV, DEPTHWISE):
            kh, kw = self.weight_shape[2:]
            pads = list(_attr(self.node, "pads", [0, 0, 0, 0]))
            strides = list(_attr(self.node, "strides", [1, 1]))
            dil = list(_attr(self.node, "dilations", [1, 1]))
            t = F.pad(torch.from_numpy(x), (pads[1], pads[3], pads[0], pads[2]))
            cols = F.unfold(t, (kh, kw), dilation=dil, stride=strides)  # (n, C*kh*kw, L)
            n, L = cols.shape[0], cols.shape[2]
            yt = torch.from_numpy(y).reshape(n, y.shape[1], -1)          # (n, Cout, L)
            if self.kind == CONV:
                return cols.permute(0, 2, 1).reshape(1, n * L, -1), yt.permute(0, 2, 1).reshape(1, n * L, -1)
            c = x.shape[1]
            p = cols.reshape(n, c, kh * kw, L).permute(1, 0, 3, 2).reshape(c, n * L, kh * kw)
            return p, yt.permute(1, 0, 2).reshape(c, n * L, 1)
        k = x.shape[-1]
        return (torch.from_numpy(x.reshape(1, -1, k)), torch.from_numpy(y.reshape(1, -1, y.shape[-1])))

    def positions(self, x_shape: tuple[int, ...], y_shape: tuple[int, ...]) -> int:
        """Output positions per sample (rows a sample gives before any subsampling)."""
        if self.kind in (CONV, DEPTHWISE):
            return int(np.prod(y_shape[2:]))
        return int(np.prod(x_shape[1:-1])) if len(x_shape) > 2 else 1

    def gather(self, x: np.ndarray, y: np.ndarray, idx: np.ndarray,
               out_keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Batched rows without a per-sample loop: (groups, rows, features) inputs and
        (groups, rows, outputs) targets for samples x[i] at output positions idx[i] (flat
        indices into the output's spatial grid, or token positions). A convolution's
        patches are gathered at those positions only (no full im2col). `out_keep` picks
        the target's output channels (the dense layer's kept ones)."""
        n, k = idx.shape
        if self.kind in (CONV, DEPTHWISE):
            kh, kw = self.weight_shape[2:]
            pads = list(_attr(self.node, "pads", [0, 0, 0, 0]))
            sh, sw = list(_attr(self.node, "strides", [1, 1]))
            dh, dw = list(_attr(self.node, "dilations", [1, 1]))
            wout = y.shape[3]
            c = x.shape[1]
            xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3]))) if any(pads) else x
            flat = xp.reshape(n, c, -1)
            wp = xp.shape[3]
            sample = np.arange(n)[:, None]
            oy, ox = idx // wout, idx % wout
            full = k == y.shape[2] * wout
            yf = y.reshape(n, y.shape[1], -1)
            if out_keep is not None:
                yf = yf[:, out_keep]
            t = yf if full else np.take_along_axis(yf, idx[:, None, :], 2)            # (n, Cout, k)
            if self.kind == DEPTHWISE or not (kh == kw == 1 and sh == sw == 1 and not any(pads) and full):
                # positions as rows of channels: each tap gathers whole contiguous rows with an
                # (n, k) index, where take_along_axis on (n, c, positions) built an (n, c, k) one
                rows = np.ascontiguousarray(flat.transpose(0, 2, 1))                  # (n, HW, C)
            if self.kind == DEPTHWISE:
                # (channels, samples, positions, taps): each channel is its own regression
                patch = np.empty((c, n, k, kh * kw), dtype=x.dtype)
                for i in range(kh):
                    for j in range(kw):
                        src = (oy * sh + i * dh) * wp + ox * sw + j * dw
                        patch[:, :, :, i * kw + j] = rows[sample, src].transpose(2, 0, 1)
                return patch.reshape(c, n * k, kh * kw), np.ascontiguousarray(t.transpose(1, 0, 2)).reshape(c, n * k, 1)
            if kh == kw == 1 and sh == sw == 1 and not any(pads) and full:
                patch = flat.transpose(0, 2, 1)                                          # (n, k, C)
            else:
                patch = np.empty((n, k, c, kh * kw), dtype=x.dtype)
                for i in range(kh):
                    for j in range(kw):
                        src = (oy * sh + i * dh) * wp + ox * sw + j * dw               # (n, k)
                        patch[:, :, :, i * kw + j] = rows[sample, src]
            return (np.ascontiguousarray(patch).reshape(1, n * k, c * kh * kw),
                    np.ascontiguousarray(t.transpose(0, 2, 1)).reshape(1, n * k, -1))
        xs = x.reshape(n, -1, x.shape[-1])
        ys = y.reshape(n, -1, y.shape[-1])
        if out_keep is not None:
            ys = ys[:, :, out_keep]
        return (np.take_along_axis(xs, idx[:, :, None], 1).reshape(1, n * k, -1),
                np.take_along_axis(ys, idx[:, :, None], 1).reshape(1, n * k, -1))

    def bias_of(self, coef: np.ndarray) -> np.ndarray:
        """The bias part of a solution, one value per output channel."""
        return coef[:, -1, 0] if self.kind == DEPTHWISE else coef[0, -1]

    @property
    def has_bias(self) -> bool:
        node = self.node
        return self.kind != MATMUL and len(node.input) > 2 and bool(node.input[2])

    def write(self, coef: np.ndarray, inits, graph: onnx.GraphProto, bias: bool = True) -> None:
        """Store the refit weights, and the bias unless `bias` is False (the caller folds it
        into the BN that follows, so the graph keeps the pruned model's structure)."""
        node, w_name = self.node, self.node.input[1]
        dtype = numpy_helper.to_array(inits[w_name]).dtype
        if self.kind == CONV:
            w = coef[0, :-1].T.reshape(self.weight_shape)
            b = coef[0, -1]
        elif self.kind == DEPTHWISE:
            w = coef[:, :-1, 0].reshape(self.weight_shape)
            b = coef[:, -1, 0]
        else:
            wk = coef[0, :-1]
            w = wk.T if self.kind == GEMM and _attr(node, "transB", 0) else wk
            b = coef[0, -1]
        inits[w_name].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(w, dtype=dtype), w_name))
        if bias:
            _set_bias(self, np.asarray(b, dtype=dtype), inits, graph)


def _set_bias(layer: Layer, b: np.ndarray, inits, graph: onnx.GraphProto) -> None:
    node = layer.node
    if layer.kind == MATMUL:
        # MatMul has no bias input: an Add after it takes over its output name
        name = _fresh(f"{node.name}/recovered_bias", inits)
        inits[name] = graph.initializer.add()
        inits[name].CopyFrom(numpy_helper.from_array(b, name))
        out = node.output[0]
        node.output[0] = _fresh(f"{out}/unbiased", inits)
        add = onnx.helper.make_node("Add", [node.output[0], name], [out], name=f"{node.name}/recovered_bias_add")
        nodes = list(graph.node)
        idx = next(i for i, n in enumerate(nodes) if n.name == node.name)
        graph.node.insert(idx + 1, add)
        return
    if len(node.input) > 2 and node.input[2]:
        name = node.input[2]
        shape = tuple(inits[name].dims)
        inits[name].CopyFrom(numpy_helper.from_array(b.reshape(shape), name))
        return
    name = _fresh(f"{node.name}/recovered_bias", inits)
    inits[name] = graph.initializer.add()
    inits[name].CopyFrom(numpy_helper.from_array(b, name))
    while len(node.input) < 3:
        node.input.append("")
    node.input[2] = name


def _fresh(base: str, taken) -> str:
    name, k = base, 1
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    return name


@dataclass
class NormalEquations:
    """Running AᵀA (features + ones column) and AᵀY per group, plus Σ y and Σ y² per output."""

    n: int = 0
    ata: torch.Tensor | None = None
    aty: torch.Tensor | None = None
    y1: torch.Tensor | None = None
    y2: torch.Tensor | None = None

    def add(self, a: torch.Tensor, y: torch.Tensor) -> None:
        """Add rows `a` (groups, rows, features) with targets `y` (groups, rows, outputs);
        the ones column is implicit. The products of one batch are taken in the rows'
        precision (float32 rows of a few thousand samples x positions) and summed over
        batches in float64."""
        g, r, f = a.shape
        at = a.transpose(1, 2)
        ata = torch.empty(g, f + 1, f + 1, dtype=torch.float64)
        ata[:, :f, :f] = at @ a
        s = a.double().sum(1)
        ata[:, :f, f] = s
        ata[:, f, :f] = s
        ata[:, f, f] = r
        yd = y.double()
        aty = torch.cat([(at @ y).double(), yd.sum(1, keepdim=True)], dim=1)
        y1, y2 = yd.sum(1), (yd * yd).sum(1)
        if self.ata is None:
            self.ata, self.aty, self.y1, self.y2 = ata, aty, y1, y2
        else:
            self.ata += ata
            self.aty += aty
            self.y1 += y1
            self.y2 += y2
        self.n += r

    def error(self, coef: np.ndarray) -> float:
        """Σ ||y - a·coef||² over all rows and groups, relative to Σ ||y||²."""
        c = torch.from_numpy(coef)
        sq = (torch.einsum("gfo,gfh,gho->", c, self.ata, c) - 2 * torch.einsum("gfo,gfo->", c, self.aty)
              + self.y2.sum())
        return float(sq / self.y2.sum().clamp_min(1e-30))

    def solve(self, prior: np.ndarray, ridge: float) -> np.ndarray:
        """argmin ||y - a·coef||² + λ ||coef - prior||² (bias row unregularised), with λ =
        ridge × the mean diagonal of AᵀA (per group), so `ridge` is scale free."""
        a = self.ata
        f = a.shape[1]
        diag = torch.diagonal(a, dim1=1, dim2=2)[:, :-1].mean(1).clamp_min(1e-12)
        reg = torch.ones(f, dtype=a.dtype)
        reg[-1] = 0
        lam = (ridge * diag)[:, None, None] * torch.diag(reg)[None]
        p = torch.from_numpy(prior)
        lhs = a + lam
        # the ones column makes AᵀA positive definite only if some input varies; a tiny
        # jitter keeps dead (constant) inputs from making it singular
        lhs = lhs + 1e-9 * diag[:, None, None] * torch.eye(f, dtype=a.dtype)[None]
        return torch.linalg.solve(lhs, self.aty + lam @ p).numpy()

    def output_moments(self, coef: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per output channel mean and variance of a·coef over the accumulated rows
        (groups of a depthwise layer are its channels)."""
        c = torch.from_numpy(coef)
        mean = torch.einsum("gf,gfo->go", self.ata[:, -1, :], c) / self.n
        sq = torch.einsum("gfo,gfh,gho->go", c, self.ata, c) / self.n
        return _flat(mean), np.maximum(_flat(sq) - _flat(mean) ** 2, 0.0)

    def target_moments(self) -> tuple[np.ndarray, np.ndarray]:
        mean = self.y1 / self.n
        return _flat(mean), np.maximum(_flat(self.y2 / self.n) - _flat(mean) ** 2, 0.0)


def _flat(t: torch.Tensor) -> np.ndarray:
    return t.numpy().reshape(-1)
