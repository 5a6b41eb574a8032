"""Run an ONNX model (or the part of it that a few tensors need) on calibration data.

Recovery reads intermediate activations of both the dense and the pruned model: each probe
keeps only the nodes its requested tensors depend on and makes those tensors graph
outputs, so ONNX Runtime computes nothing else. Models are static-shaped (batch 1 as a
rule), so calibration samples are fed one static batch at a time and the results are
concatenated in chunks that the caller reduces (sums of products, moments) as they come.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import onnx

from ..errors import UsageError
from ..frontend.links import Links

Calib = Mapping[str, np.ndarray]


class Probe:
    """An ONNX Runtime session computing `outputs` (tensor names) of `proto`."""

    def __init__(self, proto: onnx.ModelProto, outputs: Sequence[str]):
        import onnxruntime as ort

        self.outputs = list(outputs)
        sub = truncate(proto, self.outputs)
        so = ort.SessionOptions()
        so.log_severity_level = 3
        # recovery alternates ORT runs with torch math: spinning ORT threads would starve it
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(sub.SerializeToString(), so, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(self.outputs, {k: feeds[k] for k in self.inputs})

    def chunks(self, calib: Calib, samples_per_chunk: int = 16) -> Iterator[list[np.ndarray]]:
        """The requested tensors over all calibration samples, concatenated along axis 0 in
        chunks of about `samples_per_chunk` samples."""
        pending: list[list[np.ndarray]] = []
        for feeds in split_batches(calib, self.static_batch):
            pending.append(self.run(feeds))
            if len(pending) * self.static_batch >= samples_per_chunk:
                yield [np.concatenate(parts, axis=0) for parts in zip(*pending)]
                pending = []
        if pending:
            yield [np.concatenate(parts, axis=0) for parts in zip(*pending)]

    @property
    def static_batch(self) -> int:
        shape = self.session.get_inputs()[0].shape if self.inputs else [1]
        return int(shape[0]) if shape and isinstance(shape[0], int) and shape[0] > 0 else 1


def split_batches(calib: Calib, batch: int) -> Iterator[dict[str, np.ndarray]]:
    """Feeds of `batch` samples each, from arrays stacked along axis 0."""
    if not calib:
        raise UsageError("calibration data is empty")
    sizes = {name: len(a) for name, a in calib.items()}
    n = min(sizes.values())
    if len(set(sizes.values())) != 1:
        raise UsageError(f"calibration inputs have different sample counts: {sizes}")
    if n < batch or n % batch:
        raise UsageError(f"calibration data has {n} samples; the model's static batch is {batch}")
    for i in range(0, n, batch):
        yield {name: np.ascontiguousarray(a[i:i + batch], dtype=np.float32) for name, a in calib.items()}


def truncate(proto: onnx.ModelProto, outputs: Sequence[str]) -> onnx.ModelProto:
    """A copy keeping only the nodes `outputs` depend on, with `outputs` as graph outputs."""
    g = proto.graph
    producer = Links(g).producers
    known = {t.name for t in g.initializer} | {i.name for i in g.input}
    for name in outputs:
        if name not in producer and name not in known:
            raise UsageError(f"tensor '{name}' is not in the model")
    needed: set[str] = set()
    stack = list(outputs)
    seen: set[str] = set()
    while stack:
        t = stack.pop()
        if t in seen:
            continue
        seen.add(t)
        node = producer.get(t)
        if node is None or node.name in needed:
            continue
        needed.add(node.name)
        stack.extend(i for i in node.input if i)
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    og = out.graph
    keep = [n for n in og.node if n.name in needed]
    del og.node[:]
    og.node.extend(keep)
    used = {i for n in keep for i in n.input} | set(outputs)
    inits = [t for t in og.initializer if t.name in used]
    del og.initializer[:]
    og.initializer.extend(inits)
    types = {vi.name: vi.type.tensor_type.elem_type for vi in list(g.value_info) + list(g.output) + list(g.input)}
    types.update({t.name: t.data_type for t in g.initializer})
    del og.output[:]
    for name in outputs:
        og.output.append(onnx.helper.make_tensor_value_info(name, types.get(name, onnx.TensorProto.FLOAT), None))
    inputs = [i for i in og.input if i.name in used]
    del og.input[:]
    og.input.extend(inputs)
    return out
