"""Side-by-side host ONNX Runtime latency of several models (shared by the recovery and
int8 benchmarks): the models are timed in interleaved rounds in one process, so that the
noise of a shared machine falls on all of them alike; the median per model is reported."""

from __future__ import annotations

import time

import numpy as np
import onnx


def ort_latencies(models: dict[str, onnx.ModelProto], feeds: dict[str, np.ndarray],
                  rounds: int = 7, runs_per_round: int = 10, threads: int = 1) -> dict[str, float]:
    """Median milliseconds per inference of each model (ORT_ENABLE_ALL, `threads` threads)."""
    import onnxruntime as ort

    sessions = {}
    for name, proto in models.items():
        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sessions[name] = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    for s in sessions.values():  # warm-up
        for _ in range(3):
            s.run(None, feeds)
    times: dict[str, list[float]] = {n: [] for n in sessions}
    for _ in range(rounds):
        for name, s in sessions.items():
            t0 = time.perf_counter()
            for _ in range(runs_per_round):
                s.run(None, feeds)
            times[name].append((time.perf_counter() - t0) * 1000 / runs_per_round)
    return {n: float(np.median(t)) for n, t in times.items()}
