"""ONNX Runtime backend for the runner: `load(path, threads, options) -> session`.

A backend module exposes `load`, returning an object with `input_specs()` (name, shape with
None for a dynamic dim, numpy dtype string) and `run(feeds) -> {output name: array}`. Imports only numpy and
onnxruntime.
"""

from __future__ import annotations

import onnxruntime as ort

_DTYPES = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int8)": "int8",
    "tensor(uint8)": "uint8", "tensor(bool)": "bool",
}


class OrtSession:
    def __init__(self, path: str, threads: int, options: dict):
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        level = options.get("graph_optimization_level", "all")
        so.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[level]
        if threads == 1:
            # a spinning worker would only steal the core the timed thread runs on
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # the artifact's own session entries (e.g. session.qdqisint8allowed): the LUT, the dense
        # reference and the artifact are timed with the ones it ships with
        for key, value in (options.get("session_config") or {}).items():
            so.add_session_config_entry(str(key), str(value))
        providers = options.get("providers") or ["CPUExecutionProvider"]
        self._sess = ort.InferenceSession(path, so, providers=providers)
        self._outputs = [o.name for o in self._sess.get_outputs()]

    def input_specs(self):
        """(name, shape, dtype) per input; a dynamic dim is None. ORT reports a dim_param as its
        name, `dim_value: -1` or an unset dim as None, and keeps `dim_value: 0` as 0: all dynamic."""
        specs = []
        for i in self._sess.get_inputs():
            shape = [d if isinstance(d, int) and d > 0 else None for d in i.shape]
            specs.append((i.name, shape, _DTYPES.get(i.type, "float32")))
        return specs

    def run(self, feeds):
        return dict(zip(self._outputs, self._sess.run(self._outputs, feeds)))


def load(path: str, threads: int = 1, options: dict | None = None) -> OrtSession:
    return OrtSession(path, threads, options or {})
