"""Who produces and who reads each tensor of an ONNX graph: the one place that knows.

Stages edit the `onnx.GraphProto` in place (slice an initializer, rewire an input, drop a
node) and look up a tensor's producer or readers around those edits. `Links` is built in
one pass over the nodes and is a snapshot: rebuild it after changing which nodes exist or
what they read. onnx-graphsurgeon keeps such links live, but only on its own graph objects,
and converting to them and back costs more than the edits (README, "Graph model").

Empty names are ONNX's "optional input/output not given", not tensors, and are left out.
"""

from __future__ import annotations

import onnx


class Links:
    def __init__(self, graph: onnx.GraphProto):
        self.producers: dict[str, onnx.NodeProto] = {}
        # a node appears once per input slot that reads the tensor (Mul(x, x) reads x twice)
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in graph.node:
            for name in node.output:
                if name:
                    self.producers[name] = node
            for name in node.input:
                if name:
                    self.consumers.setdefault(name, []).append(node)
        self.graph_outputs = {o.name for o in graph.output}

    def producer(self, name: str) -> onnx.NodeProto | None:
        """The node that computes `name`; None for graph inputs, initializers and unknowns."""
        return self.producers.get(name)

    def readers(self, name: str) -> list[onnx.NodeProto]:
        return self.consumers.get(name, [])

    def uses(self, name: str) -> int:
        """How many node input slots read `name` (graph outputs not counted)."""
        return len(self.consumers.get(name, ()))

    def read(self) -> set[str]:
        """Every tensor some node reads."""
        return set(self.consumers)
