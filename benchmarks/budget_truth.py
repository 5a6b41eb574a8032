"""Does the artifact `compile` ships meet its budget, timed the way a user would time it?

For each model, budget and dtype: `edgeprune.compile(..., target="host")`, then the shipped
artifact (loaded exactly as its ort_config.json says) and the dense model (ONNX Runtime with
its default session options, the same thread count) are timed in interleaved rounds in one
process, so a noisy machine slows both alike. Prints, per row, the budget as a fraction of
dense, the measured fraction, and measured ÷ budget (≤ 1.05 is a kept promise), next to
what compile itself reported and its exit status.

    .venv/bin/python benchmarks/budget_truth.py                      # the full table
    .venv/bin/python benchmarks/budget_truth.py --models efficientnet_lite0 --budgets 0.5 --dtypes fp32

The first run of a model profiles the host LUT (minutes per model); later runs reuse it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MODELS = ("resnet18", "mobilenetv2", "efficientnet_lite0", "digits_cnn")
BUDGETS = (0.3, 0.5, 0.7, 0.9)
DTYPES = ("fp32", "int8")


def _calibration(shape: tuple[int, ...], n: int = 32) -> np.ndarray:
    # image-like inputs for int8 ranges; the benchmark measures time, not fidelity
    return np.random.default_rng(0).standard_normal((n, *shape[1:])).astype(np.float32)


def _sessions(outdir: Path, dense_onnx: Path, threads: int):
    import onnxruntime as ort

    from edgeprune.backends.base import Artifact
    from edgeprune.backends.ort import load_session

    shipped = load_session(Artifact.load(outdir, "ort"))
    so = ort.SessionOptions()          # ORT's defaults, as a user would run the dense model
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    dense = ort.InferenceSession(str(dense_onnx), so, providers=["CPUExecutionProvider"])
    return shipped, dense


def side_by_side(shipped, dense, feed: dict[str, np.ndarray], rounds: int = 9, runs: int = 10) -> tuple[float, float]:
    """Median ms of each, timed in alternating rounds."""
    times: dict[str, list[float]] = {"shipped": [], "dense": []}
    sessions = {"shipped": shipped, "dense": dense}
    for s in sessions.values():
        for _ in range(3):
            s.run(None, feed)
    for _ in range(rounds):
        for name, s in sessions.items():
            t0 = time.perf_counter()
            for _ in range(runs):
                s.run(None, feed)
            times[name].append((time.perf_counter() - t0) * 1000 / runs)
    return statistics.median(times["shipped"]), statistics.median(times["dense"])


def run_one(model: str, dense_onnx: Path, shape: tuple[int, ...], budget: float, dtype: str, threads: int) -> dict:
    import edgeprune
    from edgeprune.errors import EdgePruneError

    with tempfile.TemporaryDirectory(prefix="budget-truth-") as tmp:
        out = Path(tmp) / "out"
        kwargs = {"quantize": "int8", "data": _calibration(shape)} if dtype == "int8" else {}
        t0 = time.perf_counter()
        try:
            result = edgeprune.compile(str(dense_onnx), target="host", budget=f"{budget}x", output=out, **kwargs)
        except EdgePruneError as e:
            return {"exit": e.exit_code, "error": str(e).splitlines()[0], "seconds": time.perf_counter() - t0}
        seconds = time.perf_counter() - t0
        shipped, dense = _sessions(out, dense_onnx, threads)
        name = shipped.get_inputs()[0].name
        feed = {name: np.random.default_rng(1).standard_normal(shape).astype(np.float32)}
        shipped_ms, dense_ms = side_by_side(shipped, dense, feed)
        lat = result.manifest["latency_ms"]
        return {"exit": 0, "seconds": seconds, "measured_ratio": shipped_ms / dense_ms,
                "shipped_ms": shipped_ms, "dense_ms": dense_ms,
                "reported_ratio": 1 / lat["speedup_measured"] if lat.get("speedup_measured") else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--budgets", nargs="+", type=float, default=list(BUDGETS))
    ap.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=DTYPES)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    print("| model | dtype | budget | exit | shipped ms | dense ms (ORT defaults) | measured ÷ dense | "
          "measured ÷ budget | compile reported | compile s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    kept = total = 0
    from edgeprune import zoo
    from edgeprune.frontend.export import export_module

    work = Path(tempfile.mkdtemp(prefix="budget-truth-models-"))
    for model in args.models:
        shape = zoo.input_shape(model)
        dense_onnx = export_module(zoo.get(model), shape, work / f"{model}.onnx")
        for dtype in args.dtypes:
            for budget in args.budgets:
                r = run_one(model, dense_onnx, shape, budget, dtype, args.threads)
                if r["exit"] != 0:
                    print(f"| {model} | {dtype} | {budget}x | {r['exit']} | — | — | — | — | {r['error'][:90]} | "
                          f"{r['seconds']:.0f} |", flush=True)
                    continue
                total += 1
                promise = r["measured_ratio"] / budget
                kept += promise <= 1.05
                rep = f"{r['reported_ratio']:.3f}" if r["reported_ratio"] else "—"
                print(f"| {model} | {dtype} | {budget}x | 0 | {r['shipped_ms']:.3f} | {r['dense_ms']:.3f} | "
                      f"{r['measured_ratio']:.3f} | {promise:.3f} | {rep} | {r['seconds']:.0f} |", flush=True)
    print(f"\n{kept} of {total} shipped artifacts within 5% of their budget (compiles that exited "
          "non-zero shipped nothing)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
