"""Short distillation (`compile --finetune-steps N`) on a pretrained model: time per step and
held-out fidelity with and without it, for a few learning rates, in one run.

The subject is pruned with one keep ratio for every group (channel counts a multiple of 16)
and recovered by least squares on the calibration views, as compile does; then, from that
same recovered model, `edgeprune.distill.distill` runs N steps at each learning rate. Each
row is judged on held-out natural-image views (another seed than calibration): top-1
agreement with the dense model, its 95% Wilson interval, top-5 agreement, and the seconds
the distillation took per step (single-threaded torch, as the stage runs it).

    .venv/bin/python benchmarks/distill_steps.py [--model efficientnet_lite0] [--keep 0.6]
        [--steps 100] [--lrs 1e-4,3e-4,1e-3] [--calib 512] [--eval 256]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from recovery_planner import subject  # noqa: E402

from edgeprune.distill import DistillOptions, distill  # noqa: E402
from edgeprune.fidelity import compare, outputs  # noqa: E402
from edgeprune.graph import analyze  # noqa: E402
from edgeprune.importance import compute  # noqa: E402
from edgeprune.recover import recover  # noqa: E402
from edgeprune.rewrite import prune, ratio_keep  # noqa: E402


def row(label: str, f, seconds_per_step: float | None) -> str:
    lo, hi = f.top1_interval
    per = "" if seconds_per_step is None else f"{seconds_per_step:.2f}"
    return f"| {label} | {f.top1_agreement:.3f} [{lo:.3f}, {hi:.3f}] | {f.top5_agreement:.3f} | {per} |"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--keep", type=float, default=0.6, help="keep ratio of every prunable group")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--lrs", default="1e-4,3e-4,1e-3")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--calib", type=int, default=512)
    ap.add_argument("--eval", type=int, default=256)
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        dense, calib, held = subject(args.model, args.calib, args.eval, Path(tmp))
    analysis = analyze(dense)
    keep = ratio_keep(analysis, compute(dense, analysis, "l1"), args.keep, 16)
    pruned = prune(dense, analysis, keep)
    t0 = time.perf_counter()
    recovered = recover(dense, pruned, analysis, keep, calib).model
    recovery_s = time.perf_counter() - t0
    ref = outputs(dense, held)

    print(f"{args.model} (pretrained), uniform keep {args.keep} (multiple of 16): "
          f"{analyze(pruned).macs / analysis.macs:.2f}x MACs; {args.calib} calibration views, "
          f"{args.eval} held-out views; {args.steps} steps of batch {args.batch}; "
          f"load average {os.getloadavg()[0]:.1f}")
    print("| model | top-1 agreement [95%] | top-5 | s/step |\n|---|---|---|---|")
    print(row(f"recovered (least squares, {recovery_s:.0f} s)", compare(ref, outputs(recovered, held)), None),
          flush=True)
    for lr in (float(x) for x in args.lrs.split(",")):
        t0 = time.perf_counter()
        d = distill(dense, recovered, calib, DistillOptions(steps=args.steps, batch_size=args.batch, lr=lr))
        per_step = (time.perf_counter() - t0) / args.steps
        label = (f"+ {args.steps} steps, lr {lr:g} (calibration loss {d.loss_before:.3g} -> {d.loss_after:.3g}"
                 f"{'' if d.kept else ', not kept'})")
        print(row(label, compare(ref, outputs(d.model, held)), per_step), flush=True)


if __name__ == "__main__":
    main()
