"""How well the LUT predicts whole-model latency on this host (ONNX Runtime, 1 thread).

For each model: profile its LUT (reusing entries already in the LUT file), then draw random
channel configurations — every prunable group keeps a random ratio in [0.2, 1], rounded to
the measured channel step as the planner does — prune them physically, and time each pruned
model on the device. Predictions and measurements are printed side by side; the headline is
the share of configurations predicted within ±10% and within ±5% of the measured median,
beside the LUT's build time. Each model is timed like a LUT entry: in the device's number of passes (2 on host), the fastest median.

    .venv/bin/python benchmarks/lut_accuracy.py [--configs 30] [--models resnet18,mobilenetv2,efficientnet_lite0]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeprune import zoo  # noqa: E402
from edgeprune.devices.base import BenchTask  # noqa: E402
from edgeprune.devices.open import open_device  # noqa: E402
from edgeprune.frontend.export import export_module  # noqa: E402
from edgeprune.frontend.load import load_model, save_model  # noqa: E402
from edgeprune.graph import analyze  # noqa: E402
from edgeprune.lut.predict import LatencyModel  # noqa: E402
from edgeprune.lut.session import open_writer, profile_settings  # noqa: E402
from edgeprune.lut.profiler import Profiler  # noqa: E402
from edgeprune.rewrite import prune  # noqa: E402
from edgeprune.rewrite.select import round_keep, top_channels  # noqa: E402


def random_keep(analysis, rng, step):
    keep, counts = {}, {}
    for g in analysis.prunable():
        k = round_keep(g.channels, float(rng.uniform(0.2, 1.0)), step)
        keep[g.id] = top_channels(g, np.zeros(g.channels), k)
        counts[g.id] = len(keep[g.id])
    return keep, counts


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="resnet18,mobilenetv2,efficientnet_lite0")
    ap.add_argument("--configs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lut", default=None, help="LUT file (default: the host's LUT in the user cache, ~/.cache/edgeprune/luts/)")
    ap.add_argument("--min-seconds", type=float, default=0.6, help="timing per measured model")
    args = ap.parse_args()

    device = open_device("host")
    writer, lut_path = open_writer(device, "ort", args.lut)
    settings = profile_settings(device, "ort")
    print(f"device host ({device.profile.description}), LUT {lut_path}, channel step {writer.lut.channel_step}")
    rng = np.random.default_rng(args.seed)
    summary = []
    with tempfile.TemporaryDirectory(prefix="lut-accuracy-") as tmp:
        tmp = Path(tmp)
        for name in args.models.split(","):
            onnx_path = export_module(zoo.get(name), zoo.input_shape(name), tmp / f"{name}.onnx")
            model = load_model(onnx_path)
            t0 = time.time()
            profiler = Profiler(device, writer, settings, workdir=tmp / "micro")
            profiler.profile_model(model, name)
            t_prof = time.time() - t0
            analysis = analyze(model)
            lm = LatencyModel.for_model(writer.lut, model)
            step = writer.lut.channel_step
            configs, tasks = [], []
            for i in range(args.configs):
                keep, counts = random_keep(analysis, rng, step)
                pruned = prune(model, analysis, keep)
                path = tmp / f"{name}-{i}.onnx"
                save_model(pruned.proto, path)
                predicted = lm.predict_ms(analysis.layer_channels(counts))
                macs = sum(counts.values()) / sum(g.channels for g in analysis.prunable())
                configs.append((i, predicted, macs))
                tasks.append(BenchTask(id=f"{name}-{i}", model=path, threads=settings.threads,
                                       cores=settings.cores, warmup=3, repeats=10, min_seconds=args.min_seconds,
                                       clock=settings.clock))
            # as for LUT entries: `passes` interleaved passes, the fastest median counts
            measured = {}
            for k in range(settings.passes):
                for r in device.measure([replace(t, id=f"{t.id}|{k}") for t in tasks]):
                    base = r.id.rsplit("|", 1)[0]
                    if base not in measured or r.median_ms < measured[base].median_ms:
                        measured[base] = r
            print(f"\n{name}: LUT profile {t_prof:.0f} s ({profiler.measured} entries measured, "
                  f"{profiler.reused} reused); scale {lm.scale:.3f}, rest {lm.rest_ms:+.2f} ms; dense predicted "
                  f"{lm.predict_ms():.2f} ms")
            print(f"{'cfg':>4} {'kept':>6} {'predicted ms':>13} {'measured ms':>12} {'p90 ms':>8} {'error':>7}")
            errors = []
            for i, predicted, kept in configs:
                r = measured[f"{name}-{i}"]
                err = predicted / r.median_ms - 1
                errors.append(err)
                print(f"{i:>4} {kept:>6.2f} {predicted:>13.2f} {r.median_ms:>12.2f} {r.p90_ms:>8.2f} {err:>+7.1%}")
            errors = np.array(errors)
            within10 = float(np.mean(np.abs(errors) <= 0.10))
            within5 = float(np.mean(np.abs(errors) <= 0.05))
            summary.append((name, len(errors), within10, within5, float(np.mean(np.abs(errors))),
                            float(np.max(np.abs(errors))), t_prof))
    print("\nmodel               configs  within ±10%  within ±5%  mean |err|  max |err|  LUT build s")
    for name, n, within10, within5, mean, worst, t_prof in summary:
        print(f"{name:<20}{n:>7}  {within10:>10.0%}  {within5:>9.0%}  {mean:>10.1%}  {worst:>9.1%}  {t_prof:>11.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
