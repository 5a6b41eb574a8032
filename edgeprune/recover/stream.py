"""Activations of a model computed once, segment by segment, for all calibration samples.

The reference recovery path asked ONNX Runtime, for every layer it refit, to run the
pruned and the dense model from their inputs up to that layer, sample by sample: on a
60-layer network that is about 60 full passes of each model over the calibration set.

A `Frontier` streams a model's tensors over the calibration set in chunks of samples,
starting from the tensors it keeps (every computed tensor that a node still to run reads,
when it is small enough to keep for all samples) and dropping what nothing ahead needs.
Recovery walks the graph in order, so most nodes run once per model over the calibration
set, and the pruned model's nodes run after every fix upstream of them was written into
the graph. Each segment is a small ONNX model built from the current graph and run at the
model's static batch, writing into preallocated arrays (ONNX Runtime I/O binding).

Memory: tensors larger than `keep_bytes` over all samples (the expanded 6x activations of
a MobileNet-style block: 96x112x112 floats are 2.4 GB over 512 samples) are not kept but
recomputed chunk by chunk from their nearest kept ancestors; what is kept is at most a few
hundred MB per tensor, plus the calibration inputs themselves.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import numpy as np
import onnx
from onnx import numpy_helper

from ..frontend.links import Links
from .probe import Calib



class Frontier:
    """Tensors of `proto` over all samples of `calib`, streamed in chunks of samples.

    `chunks(names, at)` yields the tensors `names` for `chunk` samples at a time. What it
    computes on the way and a node at or after `at` still reads is kept for all samples if
    it is small enough (at most `keep_bytes`), so the next request starts from there;
    larger tensors (a 96x112x112 activation is 2.4 GB over 512 samples) are recomputed
    from the nearest kept ancestors, chunk by chunk, which bounds memory.

    The graph may be edited between requests (weights of nodes not yet run, nodes
    inserted after the last tensor asked for): segments are built from the graph as it is
    when a request comes."""

    def __init__(self, proto: onnx.ModelProto, calib: Calib, static_batch: int,
                 chunk: int = 16, keep_bytes: int = 512 << 20, threads: int = 1):
        self.proto = proto
        self.n = len(next(iter(calib.values())))
        self.b = max(1, static_batch)
        self.chunk = max(self.b, chunk // self.b * self.b)
        self.keep_bytes = keep_bytes
        self.threads = threads
        self.cache: dict[str, np.ndarray] = {k: np.ascontiguousarray(v, dtype=np.float32)
                                             if np.asarray(v).dtype.kind == "f" else np.asarray(v)
                                             for k, v in calib.items()}
        self.inputs = set(self.cache)

    def chunks(self, names: Sequence[str], at: str | None = None) -> Iterator[list[np.ndarray]]:
        g = self.proto.graph
        order = {n.name: i for i, n in enumerate(g.node)}
        pos = order.get(at, 0) if at is not None else 0
        self._evict(pos)
        if all(t in self.cache for t in names):
            for lo in range(0, self.n, self.chunk):
                yield [self.cache[t][lo:lo + self.chunk] for t in names]
            return
        if any(t in self.cache for t in names):
            for parts in zip(*(self.chunks([t], at) for t in names)):
                yield [p[0] for p in parts]
            return
        inits = {t.name: t for t in g.initializer}
        producer = Links(g).producers
        needed: dict[str, onnx.NodeProto] = {}
        stack, seen = list(names), set()
        while stack:
            t = stack.pop()
            if t in seen or t in self.cache or t in inits or not t:
                continue
            seen.add(t)
            node = producer.get(t)
            if node is None:
                raise KeyError(f"tensor '{t}' cannot be computed from the calibration inputs")
            if node.name not in needed:
                needed[node.name] = node
                stack.extend(node.input)
        nodes = sorted(needed.values(), key=lambda n: order[n.name])
        read_later = {t for m in g.node[pos:] for t in m.input} | set(names)
        produced = [o for n in nodes for o in n.output if o]
        feeds = list(dict.fromkeys(t for n in nodes for t in n.input if t in self.cache))
        sess = segment_session(self.proto, nodes, feeds, list(dict.fromkeys(list(names) + produced)), inits,
                               self.b, self.threads, {k: self.cache[k] for k in feeds})
        per_sample = sess.shapes
        for t in names:
            if t not in sess.float32:
                raise ValueError(f"recovery reads float32 activations; '{t}' is not float32")
        keep = [o for o in produced if o in read_later and o not in self.cache and o in sess.float32
                and self.n * int(np.prod(per_sample[o])) * 4 <= self.keep_bytes]
        outs = list(dict.fromkeys(list(names) + keep))
        full = {o: np.empty((self.n,) + per_sample[o], dtype=np.float32) for o in keep}
        bufs = {o: np.empty((self.chunk,) + per_sample[o], dtype=np.float32) for o in outs if o not in full}
        for lo in range(0, self.n, self.chunk):
            hi = min(lo + self.chunk, self.n)
            views = {o: (full[o][lo:hi] if o in full else bufs[o][:hi - lo]) for o in outs}
            sess.run_into(outs, {k: self.cache[k] for k in feeds}, views, lo, hi)
            if hi == self.n:
                # complete: kept before the last yield (a zip of two streams may not resume us)
                self.cache.update(full)
            yield [views[t] for t in names]

    def _evict(self, pos: int) -> None:
        """Drop kept tensors that nothing from graph position `pos` on can need."""
        g = self.proto.graph
        producer = {o: i for i, n in enumerate(g.node) for o in n.output if o}
        live: set[str] = set()
        stack = [t for m in g.node[pos:] for t in m.input if t]
        while stack:
            t = stack.pop()
            if t in live:
                continue
            live.add(t)
            if t in self.cache:
                continue
            i = producer.get(t)
            if i is not None and i < pos:
                stack.extend(x for x in g.node[i].input if x)
        for k in list(self.cache):
            if k not in live and k not in self.inputs:
                del self.cache[k]


class _Session:
    def __init__(self, sess, shapes):
        self.sess, self.shapes = sess, shapes

    def run_into(self, outs, arrays, views, lo, hi):
        io = self.sess.io_binding()
        # a segment whose ops treat samples independently takes a whole chunk in one run
        b = hi - lo if self.any_batch else self.b
        for s in range(lo, hi, b):
            for k, a in arrays.items():
                io.bind_cpu_input(k, a[s:s + b])
            for o in outs:
                v = views[o][s - lo:s - lo + b]
                io.bind_output(o, "cpu", 0, v.dtype, v.shape, v.ctypes.data)
            self.sess.run_with_iobinding(io)


def segment_session(proto, nodes, feeds, outputs, inits, static_batch: int, threads: int,
                    arrays: Mapping[str, np.ndarray], optimize: bool = True) -> _Session:
    """An ONNX Runtime session running `nodes` from `feeds` (static batch), with the
    per-sample shapes of `outputs` found by running the first batch. `optimize=False` runs
    the graph as written (no fusions or layout changes), as ORT's calibrators do."""
    import onnxruntime as ort

    if not feeds:
        raise ValueError("a segment with no inputs")
    used = {t for nd in nodes for t in nd.input if t}
    any_batch = static_batch == 1 and all(_per_sample(nd, inits) for nd in nodes)
    ins = [onnx.helper.make_tensor_value_info(k, onnx.helper.np_dtype_to_tensor_dtype(arrays[k].dtype),
                                              ["samples" if any_batch else static_batch] + list(arrays[k].shape[1:]))
           for k in feeds]
    outs = [onnx.helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None) for o in outputs]
    graph = onnx.helper.make_graph(list(nodes), "segment", ins, outs, [inits[t] for t in used if t in inits])
    m = onnx.helper.make_model(graph, opset_imports=list(proto.opset_import))
    m.ir_version = proto.ir_version
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        so.intra_op_num_threads = threads
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    first = sess.run(outputs, {k: arrays[k][:static_batch] for k in feeds})
    out = _Session(sess, {o: tuple(f.shape[1:]) for o, f in zip(outputs, first)})
    out.float32 = {o for o, f in zip(outputs, first) if f.dtype == np.float32}
    out.b, out.any_batch = static_batch, any_batch
    return out


# ops that compute each sample on its own whatever the batch (their constant inputs broadcast
# over it), so a segment of them runs a chunk of samples at once: one ONNX Runtime call per
# chunk instead of per sample, which on a 60-layer network was most of recovery's run time
_PER_SAMPLE = {"Conv", "BatchNormalization", "Relu", "Clip", "LeakyRelu", "Sigmoid", "HardSigmoid",
               "HardSwish", "Tanh", "Add", "Sub", "Mul", "Div", "GlobalAveragePool", "GlobalMaxPool",
               "AveragePool", "MaxPool", "Identity"}


def _per_sample(node: onnx.NodeProto, inits) -> bool:
    if node.op_type in _PER_SAMPLE:
        return True
    if node.op_type == "Pad":   # the batch axis unpadded, pads given as a constant
        if len(node.input) < 2 or node.input[1] not in inits:
            return False
        pads = numpy_helper.to_array(inits[node.input[1]]).reshape(-1)
        axes = len(node.input) > 3 and node.input[3]
        return not axes and len(pads) >= 2 and pads[0] == 0 and pads[len(pads) // 2] == 0
    return False


def sample_positions(n: int, positions: int, per_sample: int, seed: Sequence[int]) -> np.ndarray:
    """(n, k) sorted output positions per sample, k = min(positions, per_sample): all of
    them when they fit, else a seeded random subset per sample, fixed by `seed` (recovery
    seeds it with its own seed and the layer's name, so it does not depend on the order
    layers are visited in)."""
    if positions <= per_sample:
        return np.broadcast_to(np.arange(positions), (n, positions))
    rng = np.random.default_rng(list(seed))
    pick = np.argpartition(rng.random((n, positions)), per_sample, axis=1)[:, :per_sample]
    return np.sort(pick, axis=1)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_GLIBC_DEFAULT = 128 * 1024


@contextmanager
def heap_kept():
    """Keep freed memory in the process while recovery runs (glibc only), then give it back.

    Recovery allocates and frees many arrays of tens to hundreds of MB (activation chunks,
    gathered rows). glibc serves those with mmap and returns them on free; on a VM whose
    free pages go back to the host, touching fresh pages again cost more than the
    arithmetic (measured here: 2 s for the first 300 MB; Lite0 recovery on 64 views 54 s
    -> 34 s with the heap kept). Inside this block large blocks come from the heap and
    are reused; on exit the thresholds go back to glibc's defaults and `malloc_trim`
    returns what is free."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt, trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):
        yield
        return
    mallopt(_M_MMAP_THRESHOLD, 1 << 30)
    mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1)
    try:
        yield
    finally:
        mallopt(_M_MMAP_THRESHOLD, _GLIBC_DEFAULT)
        mallopt(_M_TRIM_THRESHOLD, _GLIBC_DEFAULT)
        trim(0)
