"""Recovery without fine-tuning: pretrained EfficientNet-Lite0 pruned to ~0.6x latency.

One run, printed side by side on held-out natural-image views (crops, flips, rescalings
of the pictures bundled with scikit-image / scikit-learn; calibration views use another
seed): top-1 agreement with the dense model and max abs logit error for

- pruned:          channels removed, nothing else
- adaptive BN:     BN running statistics re-estimated on the pruned model
- BN matched:      recover(reconstruct=False): BN input moments matched to the dense ones
- reconstructed:   recover(): least-squares refit of every changed layer (bias included:
                   the removed channels' mean) + BN matching

The plan comes from the planner at a 0.6x host-latency budget (the host ORT LUT; missing
entries are measured first), or with --uniform from one keep ratio for every group whose
MACs come closest to 0.6x dense. Latencies are measured side by side on host ORT.

    .venv/bin/python benchmarks/recovery_efficientnet.py [--calib 64] [--eval 256] [--uniform]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from int8_timing import ort_latencies  # noqa: E402

from edgeprune import zoo  # noqa: E402
from edgeprune.data import natural_images  # noqa: E402
from edgeprune.fidelity import compare, outputs  # noqa: E402
from edgeprune.frontend.export import export_module  # noqa: E402
from edgeprune.frontend.load import load_model  # noqa: E402
from edgeprune.graph import analyze  # noqa: E402
from edgeprune.importance import compute  # noqa: E402
from edgeprune.recover import RecoverOptions, recover, reestimate_bn  # noqa: E402
from edgeprune.rewrite import prune, ratio_keep  # noqa: E402

TARGET = 0.6


def lite0_subject(n_calib: int, n_eval: int):
    """Pretrained EfficientNet-Lite0 as ONNX, its analysis, and calibration / held-out natural
    views (seeds 1 and 2), keyed by its input name: the subject every Lite0 benchmark shares."""
    with tempfile.TemporaryDirectory() as tmp:
        dense = load_model(export_module(zoo.get("efficientnet_lite0"), (1, 3, 224, 224), Path(tmp) / "lite0.onnx"))
    (name, _), = dense.input_shapes.items()
    return (dense, analyze(dense), {name: natural_images(n_calib, 224, seed=1, normalize="tflite")},
            {name: natural_images(n_eval, 224, seed=2, normalize="tflite")})


def plan_keep(model, analysis, scores, uniform: bool):
    if not uniform:
        from edgeprune.lut.api import latency_model
        from edgeprune.plan.budget import parse_budget
        from edgeprune.plan.costs import LutCostModel
        from edgeprune.plan.planner import Planner

        planner = Planner(analysis, scores, LutCostModel(latency_model(model, "host", "ort")))
        plan = planner.run(parse_budget(f"{TARGET}x")).plan
        return plan.keep, f"planner, predicted {plan.predicted['latency_ms'] / plan.predicted['dense_latency_ms']:.2f}x latency"
    best = None
    for ratio in np.arange(0.5, 1.0, 0.025):
        keep = ratio_keep(analysis, scores, float(ratio), 16)
        macs = analyze(prune(model, analysis, keep)).macs / analysis.macs
        if best is None or abs(macs - TARGET) < abs(best[1] - TARGET):
            best = (keep, macs, ratio)
    return best[0], f"uniform keep ratio {best[2]:.3f}, {best[1]:.2f}x MACs (channels multiple of 16)"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calib", type=int, default=64)
    ap.add_argument("--eval", type=int, default=256)
    ap.add_argument("--criterion", default="l1")
    ap.add_argument("--uniform", action="store_true", help="uniform keep ratio at ~0.6x MACs instead of the planner")
    args = ap.parse_args(argv)

    dense, analysis, calib, held = lite0_subject(args.calib, args.eval)
    (name, _), = dense.input_shapes.items()
    scores = compute(dense, analysis, args.criterion, data=calib)
    keep, how = plan_keep(dense, analysis, scores, args.uniform)
    pruned = prune(dense, analysis, keep)
    print(f"EfficientNet-Lite0 (pretrained), plan: {how}; {analyze(pruned).macs / analysis.macs:.2f}x MACs; "
          f"calibration {args.calib} views, held-out {args.eval} views, criterion {args.criterion}")

    stages = {"pruned": lambda: pruned,
              "adaptive BN": lambda: reestimate_bn(pruned, calib),
              "BN matched": lambda: recover(dense, pruned, analysis, keep, calib,
                                            RecoverOptions(reconstruct=False)).model,
              "reconstructed": lambda: recover(dense, pruned, analysis, keep, calib).model}
    ref = outputs(dense, held)
    rows = []
    for stage, make in stages.items():
        t0 = time.perf_counter()
        m = make()
        seconds = time.perf_counter() - t0
        rows.append((stage, compare(ref, outputs(m, held)), seconds, m))
    ms = ort_latencies({"dense": dense.proto, "pruned": pruned.proto, "reconstructed": rows[-1][3].proto},
                       {name: held[name][:1]})
    print(f"{'stage':<15} | {'top-1 agree':>11} | {'max |err|':>9} | {'recovery s':>10}")
    for stage, f, seconds, _ in rows:
        print(f"{stage:<15} | {f.top1_agreement:>11.3f} | {f.max_abs_error:>9.3f} | {seconds:>10.1f}")
    print(f"host ORT latency (1 thread): dense {ms['dense']:.2f} ms, pruned {ms['pruned']:.2f} ms "
          f"({ms['pruned'] / ms['dense']:.2f}x), reconstructed {ms['reconstructed']:.2f} ms "
          f"({ms['reconstructed'] / ms['dense']:.2f}x)")


if __name__ == "__main__":
    main()
