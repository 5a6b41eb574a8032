"""int8 against fp32 on the same pruned model, host ONNX Runtime.

EfficientNet-Lite0 (pretrained) pruned by the planner to 0.6x host latency and recovered
(least squares + BN matching, no fine-tuning), then quantized to static QDQ int8 (BN
folded, per-channel weights) with each calibration method. Printed side by side on
held-out natural-image views: latency of fp32 and int8 measured in interleaved rounds in
one process (goal: int8 >= 1.5x faster), top-1 agreement of each with the dense model, and
the fidelity loss int8 costs (goal <= 1 point), plus int8's agreement with its own fp32
model (on all views and on the "confident" views, where the fp32 model's top-1 softmax
probability is at least 0.5) and max abs logit error. The dense model quantized alike is
printed for reference.

    .venv/bin/python benchmarks/int8_efficientnet.py [--calib 64] [--eval 256] [--methods minmax,percentile,entropy]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from int8_timing import ort_latencies  # noqa: E402
from recovery_efficientnet import lite0_subject, plan_keep  # noqa: E402

from edgeprune.fidelity import compare, outputs  # noqa: E402
from edgeprune.importance import compute  # noqa: E402
from edgeprune.quantize import quantize_int8  # noqa: E402
from edgeprune.recover import recover  # noqa: E402
from edgeprune.rewrite import prune  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calib", type=int, default=64)
    ap.add_argument("--eval", type=int, default=256)
    ap.add_argument("--methods", default="minmax,percentile,entropy")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--uniform", action="store_true")
    args = ap.parse_args(argv)

    dense, analysis, calib, held = lite0_subject(args.calib, args.eval)
    (name, _), = dense.input_shapes.items()
    keep, how = plan_keep(dense, analysis, compute(dense, analysis, "l1"), args.uniform)
    t0 = time.perf_counter()
    fp32 = recover(dense, prune(dense, analysis, keep), analysis, keep, calib).model
    print(f"EfficientNet-Lite0 (pretrained), plan: {how}; recovered in {time.perf_counter() - t0:.0f} s; "
          f"calibration {args.calib} views, held-out {args.eval} views; ORT {args.threads} thread(s)")

    ref = outputs(dense, held)
    fp32_out = outputs(fp32, held)
    base = compare(ref, fp32_out)
    int8 = {}
    for method in args.methods.split(","):
        t0 = time.perf_counter()
        int8[method] = (quantize_int8(fp32, calib, method=method), time.perf_counter() - t0)
    dense_int8 = quantize_int8(dense, calib, method="minmax")
    first = next(iter(int8))
    ms = ort_latencies({"dense fp32": dense.proto, "dense int8": dense_int8.proto,
                        "pruned fp32": fp32.proto, "pruned int8": int8[first][0].proto},
                       {name: held[name][:1]}, threads=args.threads)

    def confident(logits):
        e = np.exp(logits - logits.max(1, keepdims=True))
        return (e / e.sum(1, keepdims=True)).max(1) >= 0.5

    def agree_on(mask, a, b):
        return float(np.mean(a[mask].argmax(1) == b[mask].argmax(1))) if mask.any() else float("nan")

    sure_dense, sure_fp32 = confident(ref[0]), confident(fp32_out[0])
    print(f"confident views: {sure_dense.mean():.2f} of the dense model's, {sure_fp32.mean():.2f} of the pruned fp32 model's")
    print(f"{'model':<36} | {'ms':>6} | {'agree w/ dense':>14} | {'loss (pts)':>10} | "
          f"{'agree w/ fp32':>13} | {'confident':>9} | {'max |err| vs fp32':>17}")
    d8_out = outputs(dense_int8, held)
    d8 = compare(ref, d8_out)
    print(f"{'dense fp32':<36} | {ms['dense fp32']:>6.2f} | {1.0:>14.3f} | {'':>10} | {'':>13} | {'':>9} | {'':>17}")
    print(f"{'dense int8 (minmax)':<36} | {ms['dense int8']:>6.2f} | {d8.top1_agreement:>14.3f} | "
          f"{100 * (1 - d8.top1_agreement):>10.1f} | {d8.top1_agreement:>13.3f} | "
          f"{agree_on(sure_dense, ref[0], d8_out[0]):>9.3f} | {d8.max_abs_error:>17.3f}")
    print(f"{'pruned+recovered fp32':<36} | {ms['pruned fp32']:>6.2f} | {base.top1_agreement:>14.3f} | "
          f"{'':>10} | {'':>13} | {'':>9} | {'':>17}")
    for method, (model, seconds) in int8.items():
        out = outputs(model, held)
        vs_dense, vs_fp32 = compare(ref, out), compare(fp32_out, out)
        t = f"{ms['pruned int8']:>6.2f}" if method == first else f"{'':>6}"
        print(f"{'pruned+recovered int8 (' + method + ')':<36} | {t} | {vs_dense.top1_agreement:>14.3f} | "
              f"{100 * (base.top1_agreement - vs_dense.top1_agreement):>10.1f} | {vs_fp32.top1_agreement:>13.3f} | "
              f"{agree_on(sure_fp32, fp32_out[0], out[0]):>9.3f} | {vs_fp32.max_abs_error:>17.3f}")
    print(f"int8 speed-up on the pruned model: {ms['pruned fp32'] / ms['pruned int8']:.2f}x "
          f"(dense: {ms['dense fp32'] / ms['dense int8']:.2f}x); pruned int8 vs dense fp32: "
          f"{ms['dense fp32'] / ms['pruned int8']:.2f}x")


if __name__ == "__main__":
    main()
