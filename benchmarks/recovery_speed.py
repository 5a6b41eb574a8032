"""Recovery speed: pretrained EfficientNet-Lite0 (224x224) pruned to ~0.5x MACs, recovered
from 512 calibration views with the batched path (activations computed once per model,
normal equations accumulated in batches), and, when asked, the reference path (every
layer probed from the model inputs, sample by sample) on as many views as `--old-calib`.

The plan is one uniform keep ratio (L1 norm, channels multiples of 16) for every group,
the ratio whose MACs come closest to 0.5x dense. Calibration views and held-out views
(>= 256) are natural-image views of the pictures bundled with scikit-image /
scikit-learn, with different seeds (as in benchmarks/peers.py). Printed: seconds per
recovery and top-1 agreement with the dense model on the held-out views (95% Wilson
interval), before and after recovery.

    nice -n 10 .venv/bin/python benchmarks/recovery_speed.py [--calib 512] [--eval 256] [--old-calib 64]
"""

from __future__ import annotations

import argparse
import math
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from recovery_efficientnet import lite0_subject  # noqa: E402

from edgeprune.fidelity import outputs  # noqa: E402
from edgeprune.graph import analyze  # noqa: E402
from edgeprune.importance import compute  # noqa: E402
from edgeprune.recover import RecoverOptions, recover  # noqa: E402
from edgeprune.rewrite import prune, ratio_keep  # noqa: E402

TARGET = 0.5


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return c - h, c + h


def uniform_keep(model, analysis, scores):
    best = None
    for ratio in np.arange(0.4, 0.9, 0.025):
        keep = ratio_keep(analysis, scores, float(ratio), 16)
        macs = analyze(prune(model, analysis, keep)).macs / analysis.macs
        if best is None or abs(macs - TARGET) < abs(best[1] - TARGET):
            best = (keep, macs, float(ratio))
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calib", type=int, default=512)
    ap.add_argument("--eval", type=int, default=256)
    ap.add_argument("--old-calib", type=int, default=0,
                    help="also time the reference (sample by sample) path on this many views (0: skip)")
    args = ap.parse_args(argv)

    dense, analysis, calib, held = lite0_subject(args.calib, args.eval)
    (name, _), = dense.input_shapes.items()
    keep, macs, ratio = uniform_keep(dense, analysis, compute(dense, analysis, "l1"))
    pruned = prune(dense, analysis, keep)
    ref = outputs(dense, held)[0].argmax(1)
    n = len(ref)

    def agreement(m) -> str:
        k = int((outputs(m, held)[0].argmax(1) == ref).sum())
        lo, hi = wilson(k, n)
        return f"{k / n:.3f} [{lo:.3f}, {hi:.3f}]"

    print(f"EfficientNet-Lite0 (pretrained, 224x224), uniform keep ratio {ratio:.3f} (L1, multiples of 16): "
          f"{macs:.2f}x MACs; held-out {n} views")
    rows = [("pruned, no recovery", "-", 0.0, agreement(pruned))]
    runs = [("batched (new)", args.calib, RecoverOptions())]
    if args.old_calib:
        runs.append(("reference (old)", args.old_calib, RecoverOptions(batched=False)))
    for label, views, opts in runs:
        c = {name: calib[name][:views]}
        t0 = time.perf_counter()
        rec = recover(dense, pruned, analysis, keep, c, opts)
        seconds = time.perf_counter() - t0
        rows.append((label, str(views), seconds, agreement(rec.model)))
    print(f"{'recovery':<22} | {'calib views':>11} | {'seconds':>8} | top-1 agreement [95% Wilson]")
    for label, views, seconds, agree in rows:
        print(f"{label:<22} | {views:>11} | {seconds:>8.1f} | {agree}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GB")


if __name__ == "__main__":
    main()
