"""How well the LUT predicts whole-model latency on this host (ONNX Runtime, 1 thread), and
what the LUT cost to build.

For each model: profile its LUT (into a fresh temporary LUT with `--fresh`, so the build time
is from nothing; otherwise reusing the entries already in the LUT file), then draw random
channel configurations — every prunable group keeps a random ratio in [0.2, 1], rounded to
the measured channel step as the planner does — prune them physically, and time each pruned
model on the device. The headline per model is the share of configurations predicted within
±10% and within ±5% of the measured median, beside the LUT's build time. `random` stands for
`--archs` random architectures (benchmarks/lut_random_archs.py), `--configs` each, pooled.
Each pruned model is timed as the whole-model calibration times (precision ±1%, the middle
of 3 interleaved passes); errors are printed against that median and
against it at the LUT's nominal speed (the reference layer timed beside it, reference.py),
which is what the LUT's entries and whole-model terms are kept at.

With `--retest` every pruned model is timed a second time, the same way, after all of its
model's configurations were timed once, and the second median at nominal speed is compared
with the first: how far this machine lets a whole-model measurement be trusted, i.e. the
floor under any prediction's error, printed beside it.

    .venv/bin/python benchmarks/lut_accuracy.py --fresh [--configs 30] [--archs 5] [--retest]
        [--models resnet18,mobilenetv2,efficientnet_lite0,random]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeprune import zoo  # noqa: E402
from edgeprune.devices.open import open_device  # noqa: E402
from edgeprune.frontend.export import export_module  # noqa: E402
from edgeprune.frontend.load import load_model, save_model  # noqa: E402
from edgeprune.graph import analyze  # noqa: E402
from edgeprune.lut.predict import LatencyModel  # noqa: E402
from edgeprune.lut.profiler import Profiler  # noqa: E402
from edgeprune.lut.session import open_writer, profile_settings  # noqa: E402
from edgeprune.rewrite import prune  # noqa: E402
from edgeprune.rewrite.select import round_keep, top_channels  # noqa: E402

from lut_random_archs import INPUT_SHAPE, random_arch  # noqa: E402


def random_keep(analysis, rng, step):
    keep, counts = {}, {}
    for g in analysis.prunable():
        k = round_keep(g.channels, float(rng.uniform(0.2, 1.0)), step)
        keep[g.id] = top_channels(g, np.zeros(g.channels), k)
        counts[g.id] = len(keep[g.id])
    return keep, counts


def subjects(names: list[str], archs: int, tmp: Path):
    """(row name, model name, exported .onnx) for every model to test."""
    for name in names:
        if name == "random":
            for seed in range(archs):
                yield "random", f"arch{seed}", export_module(random_arch(seed), INPUT_SHAPE, tmp / f"arch{seed}.onnx")
        else:
            yield name, name, export_module(zoo.get(name), zoo.input_shape(name), tmp / f"{name}.onnx")


def errors_of(device, settings, writer, name, model, configs, rng, tmp, profiler, retest=False):
    analysis = analyze(model)
    lm = LatencyModel.for_model(writer.lut, model)
    step = writer.lut.channel_step
    rows, tasks = [], []
    for i in range(configs):
        keep, counts = random_keep(analysis, rng, step)
        path = tmp / f"{name}-{i}.onnx"
        save_model(prune(model, analysis, keep).proto, path)
        kept = sum(counts.values()) / sum(g.channels for g in analysis.prunable())
        rows.append((i, lm.predict_ms(analysis.layer_channels(counts)), kept))
        tasks.append(profiler.model_file_task(path, f"{name}-{i}"))
    measured = profiler.time_whole_models(tasks)
    again = profiler.time_whole_models(tasks) if retest else None
    print(f"\n{name}: scale {lm.scale:.3f}, rest {lm.rest_ms:+.2f} ms; dense predicted {lm.predict_ms():.2f} ms")
    print(f"{'cfg':>4} {'kept':>6} {'predicted ms':>13} {'measured ms':>12} {'error':>7} {'at nominal ms':>14} {'error':>7}")
    errors, nominal_errors, retest_errors = [], [], []
    for i, predicted, kept in rows:
        r = measured[f"model|{name}-{i}"]
        at_nominal = profiler.normalized(r)[0]
        errors.append(predicted / r.median_ms - 1)
        nominal_errors.append(predicted / at_nominal - 1)
        line = (f"{i:>4} {kept:>6.2f} {predicted:>13.3f} {r.median_ms:>12.3f} {errors[-1]:>+7.1%} "
                f"{at_nominal:>14.3f} {nominal_errors[-1]:>+7.1%}")
        if again is not None:
            second = profiler.normalized(again[f"model|{name}-{i}"])[0]
            retest_errors.append(second / at_nominal - 1)
            line += f"  retest {second:.3f} ({retest_errors[-1]:+.1%})"
        print(line)
    return errors, nominal_errors, retest_errors


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="resnet18,mobilenetv2,efficientnet_lite0,random")
    ap.add_argument("--configs", type=int, default=30)
    ap.add_argument("--archs", type=int, default=5, help="random architectures for `random`")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fresh", action="store_true", help="build the LUT from nothing in a temporary file")
    ap.add_argument("--lut", default=None, help="LUT file (default: the host's LUT in the user cache)")
    ap.add_argument("--retest", action="store_true",
                    help="time every pruned model twice and print how far the two measurements agree")
    args = ap.parse_args()

    device = open_device("host")
    settings = profile_settings(device, "ort")
    rng = np.random.default_rng(args.seed)
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="lut-accuracy-") as tmp:
        tmp = Path(tmp)
        t0 = time.monotonic()
        writer, lut_path = open_writer(device, "ort", tmp / "lut.json" if args.fresh else args.lut)
        t_step = time.monotonic() - t0
        print(f"device host ({device.profile.description}), LUT {'fresh' if args.fresh else lut_path}, "
              f"channel step {writer.lut.channel_step} (step sweep {t_step:.0f} s); load average "
              + " ".join(f"{v:.1f}" for v in os.getloadavg()))
        for row, name, onnx_path in subjects(args.models.split(","), args.archs, tmp):
            model = load_model(onnx_path)
            t0 = time.monotonic()
            profiler = Profiler(device, writer, settings, workdir=tmp / "micro")
            profiler.profile_model(model, name)
            built = time.monotonic() - t0
            print(f"\n{name}: LUT build {built:.0f} s ({profiler.measured} entries measured, "
                  f"{profiler.reused} shared with earlier models)")
            errs, nominal, retest = errors_of(device, settings, writer, name, model, args.configs, rng, tmp,
                                              profiler, args.retest)
            r = rows.setdefault(row, {"errors": [], "nominal": [], "retest": [], "build_s": 0.0, "measured": 0,
                                      "models": 0})
            r["errors"] += errs
            r["nominal"] += nominal
            r["retest"] += retest
            r["build_s"] += built
            r["measured"] += profiler.measured
            r["models"] += 1
    print("load average (1, 5, 15 min) at the end: " + " ".join(f"{v:.1f}" for v in os.getloadavg()))
    print(f"\nchannel step sweep: {t_step:.0f} s (once per LUT)")
    print("Against each pruned model's measured median, and (at nominal) that median at the LUT's nominal speed")
    print("(the reference layer timed beside it, reference.py); LUT build: entries and calibration this model added.")
    # one header line (starting "model", saying "within"): benchmarks/peers.py copies from it on
    print(f"{'model':<14}{'models':>6}{'configs':>8}  {'measured: within ±10%  ±5%  mean|e|  max|e|':<44}"
          f"{'at nominal: within ±10%  ±5%  mean|e|  max|e|':<47}{'entries':>7}{'build s':>9}"
          + (f"  {'retest at nominal: within ±10%  ±5%  mean|e|  max|e|'}" if args.retest else ""))
    for row, r in rows.items():
        print(f"{row:<14}{r['models']:>6}{len(r['errors']):>8}  {_shares(r['errors']):<44}{_shares(r['nominal']):<47}"
              f"{r['measured']:>7}{r['build_s']:>9.0f}" + (f"  {_shares(r['retest'])}" if r["retest"] else ""))
    return 0


def _shares(errors) -> str:
    e = np.abs(np.array(errors))
    return f"{'':>10}{np.mean(e <= 0.10):>11.0%}{np.mean(e <= 0.05):>5.0%}{e.mean():>9.1%}{e.max():>8.1%}"


if __name__ == "__main__":
    sys.exit(main())
