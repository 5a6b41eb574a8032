"""Post-training recovery of a pruned model from unlabelled calibration data.

Walks the pruned graph in topological order. Every layer whose input differs from the
dense model's (it lost input channels, or something upstream changed) is refit by least
squares so that its output matches the dense layer's output on the calibration data
(`reconstruct`), and every BatchNormalization on a changed path gets its input moments
matched to the dense ones (`bn.match_moments`). Each fix sees the pruned model with all
earlier fixes applied, so errors are corrected where they arise instead of piling up.
"""

from __future__ import annotations

import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import onnx
import torch

from ..errors import UsageError
from ..frontend.load import Model
from ..graph.groups import Analysis
from ..graph.types import IN
from .bn import BnParams, Moments, is_inference_bn, match_moments, read_bn, write_bn
from .probe import Calib, Probe
from .reconstruct import Layer, NormalEquations, layer_kind
from .stream import Frontier, heap_kept, sample_positions


@dataclass(frozen=True)
class RecoverOptions:
    """How `recover` runs.

    `max_samples`: recovery uses up to this many calibration samples (all of them when the
    user gives fewer; an evenly spaced subset when more). `rows_per_sample`: a layer whose
    output has more positions per sample than this (a 112x112 convolution has 12544) is fit
    on a fixed random subset of that many positions per sample, seeded by `seed` and the
    layer's name (deterministic; neighbouring positions say nearly the same thing, more
    samples say more). The batched path also caps the rows of one layer at `max_rows`
    (`max_rows_depthwise` for a depthwise conv, whose channels have kh*kw + 1 unknowns
    each) by taking fewer positions per sample when many samples are given. `batched=False` runs the reference path (every layer probed from
    the model inputs, sample by sample: same fit, ~5-10x slower on a deep network)."""

    reconstruct: bool = True       # least-squares refit of consumer layers
    match_bn: bool = True          # BN moment matching on changed paths
    ridge: float = 1e-2            # pull towards the sliced weights, relative to AᵀA's diagonal
    rows_per_sample: int = 512     # output positions per calibration sample and layer
    samples_per_chunk: int = 16    # reference path: samples per probe chunk
    seed: int = 0
    max_samples: int = 512         # calibration samples used (the first/evenly spaced ones)
    batched: bool = True           # activations computed once per model, rows gathered in batches
    max_rows: int = 131072         # batched path: rows per layer at most (positions per sample shrink)
    max_rows_depthwise: int = 8192   # batched path: rows per depthwise channel (kh*kw + 1 unknowns each)


@dataclass
class Step:
    node: str
    kind: str                      # "conv", "depthwise", "gemm", "matmul" or "bn"
    rows: int
    error_before: float = float("nan")   # relative squared error vs the dense layer output
    error_after: float = float("nan")


@dataclass
class Recovered:
    model: Model
    steps: list[Step] = field(default_factory=list)


def recover(dense: Model, pruned: Model, analysis: Analysis, keep: Mapping[str, Sequence[int]],
            calib: Calib, options: RecoverOptions = RecoverOptions()) -> Recovered:
    """The pruned model with consumer layers reconstructed and BNs matched to the dense
    model on `calib` (input name -> samples stacked on axis 0, unlabelled)."""
    if analysis.model_sha256 != dense.sha256:
        raise UsageError("the channel analysis belongs to another model than the dense one")
    _check_calib(dense, calib)
    calib = _subset(calib, options.max_samples)
    with single_threaded_torch():
        if options.batched:
            with heap_kept():
                return _recover(dense, pruned, analysis, keep, calib, options, _Batched(dense, pruned, calib))
        return _recover(dense, pruned, analysis, keep, calib, options, None)


def _subset(calib: Calib, limit: int) -> Calib:
    """At most `limit` samples, evenly spaced over what was given (the model's static
    batch permitting)."""
    n = len(next(iter(calib.values())))
    if limit is None or n <= limit:
        return calib
    idx = np.linspace(0, n - 1, limit).round().astype(int)
    return {k: np.asarray(v)[idx] for k, v in calib.items()}


class _Batched:
    """The batched path's state: the pruned and dense models' activation frontiers."""

    def __init__(self, dense: Model, pruned: Model, calib: Calib):
        shape = next(iter(dense.input_shapes.values()))
        batch = int(shape[0]) if shape and isinstance(shape[0], int) and shape[0] > 0 else 1
        n = len(next(iter(calib.values())))
        if n < batch or n % batch:
            raise UsageError(f"calibration data has {n} samples; the model's static batch is {batch}")
        self.calib, self.batch, self.n = calib, batch, n
        self.dense = Frontier(dense.proto, calib, batch)
        self.pruned: Frontier | None = None

    def attach(self, proto: onnx.ModelProto) -> None:
        self.pruned = Frontier(proto, self.calib, self.batch)


def _recover(dense, pruned, analysis, keep, calib, options, batched: "_Batched | None") -> Recovered:
    mask = analysis.keep_mask(keep)
    proto = onnx.ModelProto()
    proto.CopyFrom(pruned.proto)
    graph = proto.graph
    inits = {t.name: t for t in graph.initializer}
    dense_names = {o for n in dense.proto.graph.node for o in n.output}
    kept = _KeptPositions(analysis, mask)
    consumers = _consumers(graph)
    rng = np.random.default_rng(options.seed)
    if batched is not None:
        batched.attach(proto)

    affected: set[str] = set()
    starts = _lost_inputs(analysis, mask)
    done_bn: set[str] = set()
    steps: list[Step] = []
    i = 0
    while i < len(graph.node):
        node = graph.node[i]
        i += 1
        hit = node.name in starts or (bool(node.input) and node.input[0] in affected)
        if hit or any(x in affected for x in node.input):
            affected.update(node.output)
        if not hit or node.output[0] not in dense_names:
            continue
        kind = layer_kind(node, inits)
        if kind and options.reconstruct:
            if batched is not None:
                step, eq, layer, coef = _refit_batched(node, kind, batched, kept, options, inits)
            else:
                step, eq, layer, coef = _refit(node, kind, proto, dense, kept, calib, options, rng, inits)
            steps.append(step)
            # a BN normalises axis 1: a MatMul's channels are on the last axis
            bn = _only_bn_after(node, consumers, inits, graph) if kind != "matmul" else None
            if options.match_bn and bn is not None:
                mean_p, var_p = eq.output_moments(coef)
                mean_d, var_d = eq.target_moments()
                write_bn(bn, inits, match_moments(read_bn(bn, inits), mean_p, var_p, mean_d, var_d))
                done_bn.add(bn.name)
            fold = bn is not None and not layer.has_bias
            if fold:
                # BN(x + b) is BN(x) with its mean moved by -b: no bias input added
                p = read_bn(bn, inits)
                write_bn(bn, inits, BnParams(p.scale, p.bias, p.mean - layer.bias_of(coef), p.var, p.eps))
            layer.write(coef, inits, graph, bias=not fold)
            if kind == "matmul":
                i += 1  # skip the bias Add just inserted after it
        elif options.match_bn and is_inference_bn(node, inits) and node.name not in done_bn:
            if batched is not None:
                steps.append(_match_bn_batched(node, batched, kept, options, inits))
            else:
                steps.append(_match_bn(node, proto, dense, kept, calib, options, inits))
    return Recovered(pruned.replace(proto), steps)


def _check_calib(model: Model, calib: Calib) -> None:
    missing = [n for n in model.input_shapes if n not in calib]
    if missing:
        raise UsageError(f"calibration data lacks input(s) {missing}")
    for name, shape in model.input_shapes.items():
        got = tuple(np.shape(calib[name])[1:])
        if got != tuple(shape[1:]):
            raise UsageError(f"calibration input '{name}' has sample shape {got}, the model wants {tuple(shape[1:])}")


def _refit(node, kind, proto, dense, kept, calib, options, rng, inits):
    layer = Layer.read(node, kind, inits)
    y_name = node.output[0]
    eq = NormalEquations()
    pruned_probe = Probe(proto, [node.input[0]])
    dense_probe = Probe(dense.proto, [y_name])
    axis = 1 if kind in ("conv", "depthwise", "gemm") else -1
    for (x,), (y,) in zip(pruned_probe.chunks(calib, options.samples_per_chunk),
                          dense_probe.chunks(calib, options.samples_per_chunk)):
        y = np.take(y, kept(y_name, y.shape[axis]), axis=axis)
        a, t = layer.rows(x, y, options.rows_per_sample, rng)
        eq.add(a, t)
    coef = eq.solve(layer.coef, options.ridge)
    step = Step(node.name, kind, eq.n, eq.error(layer.coef), eq.error(coef))
    return step, eq, layer, coef


def _refit_batched(node, kind, b: _Batched, kept, options, inits):
    """`_refit` on streamed activations: the pruned input and the dense output come chunk
    by chunk from the two frontiers (each node computed once where its output is small
    enough to keep), rows gathered for a whole chunk at fixed seeded positions."""
    layer = Layer.read(node, kind, inits)
    y_name = node.output[0]
    axis = 1 if kind in ("conv", "depthwise", "gemm") else -1
    eq = NormalEquations()
    idx = out_keep = None
    lo = 0
    for (x,), (y,) in zip(b.pruned.chunks([node.input[0]], node.name), b.dense.chunks([y_name], node.name)):
        if idx is None:
            cols = kept(y_name, y.shape[axis])
            out_keep = None if len(cols) == y.shape[axis] else cols
            budget = options.max_rows_depthwise if kind == "depthwise" else options.max_rows
            per_sample = min(options.rows_per_sample, max(1, budget // b.n))
            idx = sample_positions(b.n, layer.positions(x.shape, y.shape), per_sample,
                                   (options.seed, zlib.crc32(node.name.encode())))
        a, t = layer.gather(x, y, idx[lo:lo + len(x)], out_keep)
        lo += len(x)
        eq.add(torch.from_numpy(a), torch.from_numpy(t))
    coef = eq.solve(layer.coef, options.ridge)
    return Step(node.name, kind, eq.n, eq.error(layer.coef), eq.error(coef)), eq, layer, coef


def _match_bn_batched(node, b: _Batched, kept, options, inits) -> Step:
    x_name = node.input[0]
    mp, md = Moments(), Moments()
    cols = None
    for (x,), (xd,) in zip(b.pruned.chunks([x_name], node.name), b.dense.chunks([x_name], node.name)):
        cols = kept(x_name, xd.shape[1]) if cols is None else cols
        mp.add(x)
        md.add(np.take(xd, cols, axis=1))
    write_bn(node, inits, match_moments(read_bn(node, inits), mp.mean, mp.var, md.mean, md.var))
    return Step(node.name, "bn", int(mp.n))


def _match_bn(node, proto, dense, kept, calib, options, inits) -> Step:
    x_name = node.input[0]
    mp, md = Moments(), Moments()
    for (x,), (xd,) in zip(Probe(proto, [x_name]).chunks(calib, options.samples_per_chunk),
                           Probe(dense.proto, [x_name]).chunks(calib, options.samples_per_chunk)):
        mp.add(x)
        md.add(np.take(xd, kept(x_name, xd.shape[1]), axis=1))
    write_bn(node, inits, match_moments(read_bn(node, inits), mp.mean, mp.var, md.mean, md.var))
    return Step(node.name, "bn", int(mp.n))


class _KeptPositions:
    """Positions along a dense tensor's channel axis that survive the plan."""

    def __init__(self, analysis: Analysis, mask: np.ndarray):
        self.analysis, self.mask = analysis, mask

    def __call__(self, tensor: str, size: int) -> np.ndarray:
        info = self.analysis.tensors.get(tensor)
        if info is None or len(info.ids) != size:
            return np.arange(size)
        return np.flatnonzero(self.analysis.positions_kept(info.ids, self.mask))


def _lost_inputs(analysis: Analysis, mask: np.ndarray) -> set[str]:
    """Nodes that lost input channels (an IN member with removed positions)."""
    return {s.member.node for s in analysis.slices
            if s.member.role == IN and not analysis.positions_kept(s.ids, mask).all()}


def _consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    out: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for x in n.input:
            out.setdefault(x, []).append(n)
    return out


def _only_bn_after(node, consumers, inits, graph) -> onnx.NodeProto | None:
    y = node.output[0]
    users = consumers.get(y, [])
    if len(users) != 1 or any(o.name == y for o in graph.output):
        return None
    bn = users[0]
    return bn if is_inference_bn(bn, inits) and bn.input[0] == y else None



@contextmanager
def single_threaded_torch():
    """The normal equations are small matrix products on many small batches: one torch
    thread does them as fast as several, and OpenMP threads spinning against ONNX
    Runtime's on a shared machine made them 10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
