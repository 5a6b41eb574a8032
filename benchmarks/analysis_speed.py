"""Time channel analysis + rewrite of ResNet-50 (goal: under 2 s on 2 cores).

    .venv/bin/python benchmarks/analysis_speed.py [--repeats 5]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from edgeprune import zoo
from edgeprune.frontend.export import export_module
from edgeprune.frontend.load import load_model
from edgeprune.graph import analyze
from edgeprune.importance import scores
from edgeprune.rewrite import prune, ratio_keep


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="resnet50")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = export_module(zoo.get(args.model), zoo.input_shape(args.model), Path(tmp) / "m.onnx")
        t0 = time.perf_counter()
        model = load_model(path)
        t_load = time.perf_counter() - t0
    rows = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        analysis = analyze(model)
        t1 = time.perf_counter()
        keep = ratio_keep(analysis, scores(model, analysis, "l1"), 0.5, 8)
        t2 = time.perf_counter()
        prune(model, analysis, keep)
        t3 = time.perf_counter()
        rows.append((t1 - t0, t2 - t1, t3 - t2, t3 - t0))
    med = [statistics.median(r[i] for r in rows) for i in range(4)]
    print(f"{args.model}: load+normalise {t_load:.2f} s (once)")
    print(f"median of {args.repeats}: analysis {med[0]:.3f} s, importance+selection {med[1]:.3f} s, "
          f"rewrite {med[2]:.3f} s, analysis+rewrite total {med[3]:.3f} s (goal < 2 s)")


if __name__ == "__main__":
    main()
