"""Time to profile a model's whole LUT on this host from nothing, and where it goes.

Measures into a fresh, temporary LUT: the channel step sweep, the coarse grids, the
refinement rounds and the whole-model calibration — everything `edgeprune profile --device
host --model MODEL` does on a machine that has no LUT yet. `--dtype int8` profiles the
model's int8 form (static QDQ, as `compile --quantize int8` prices it) after its fp32 LUT,
into the same file, as a compile that asks for int8 would find it.

    .venv/bin/python benchmarks/lut_profile_time.py [--model resnet18] [--dtype fp32|int8]

Goals (issue 18, this 2-core host): ResNet-18 fp32 < 3 min, EfficientNet-Lite0 fp32 < 5 min,
the int8 entries in less than the fp32 ones took.
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
from edgeprune.frontend.load import load_model  # noqa: E402
from edgeprune.lut.layers import model_layers  # noqa: E402
from edgeprune.lut.profiler import Profiler  # noqa: E402
from edgeprune.lut.session import open_writer, profile_settings  # noqa: E402

GOALS_S = {"resnet18": 180, "efficientnet_lite0": 300}


def int8_form(model, shape):
    from edgeprune.quantize import quantize_int8

    rng = np.random.default_rng(0)
    name = model.proto.graph.input[0].name
    return quantize_int8(model, {name: rng.standard_normal((8, *shape[1:])).astype(np.float32)})


def profile(device, writer, model, name, tmp) -> tuple[float, Profiler, int]:
    t0 = time.monotonic()
    profiler = Profiler(device, writer, profile_settings(device, "ort"), workdir=tmp / "micro")
    layers = profiler.profile_model(model, name)
    return time.monotonic() - t0, profiler, len(layers)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "int8"])
    args = ap.parse_args()
    device = open_device("host")
    settings = profile_settings(device, "ort")
    print(f"timing: warmup {settings.warmup}, at least {settings.repeats} runs and {settings.min_seconds} s, "
          f"then to ±{settings.precision:.0%} (95% interval of the median, at most {settings.max_seconds} s), "
          f"{settings.passes} pass(es), clock {settings.clock}; load average at the start "
          + " ".join(f"{v:.1f}" for v in os.getloadavg()))
    with tempfile.TemporaryDirectory(prefix="lut-time-") as tmp:
        tmp = Path(tmp)
        shape = zoo.input_shape(args.model)
        model = load_model(export_module(zoo.get(args.model), shape, tmp / "m.onnx"))
        t0 = time.monotonic()
        writer, _ = open_writer(device, "ort", tmp / "lut.json")
        t_step = time.monotonic() - t0
        t_fp32, profiler, n_layers = profile(device, writer, model, args.model, tmp)
        sigs = {l.signature.key for l in model_layers(model)}
        total = t_step + t_fp32
        print(f"{args.model}: {n_layers} fused layers, {len(sigs)} signatures, channel step "
              f"{writer.lut.channel_step} (sweep {t_step:.0f} s)")
        goal = GOALS_S.get(args.model)
        verdict = "" if goal is None else f"; goal < {goal / 60:.0f} min -> {'OK' if total < goal else 'OVER'}"
        print(f"  fp32: {profiler.measured} LUT entries measured + whole-model calibration in {t_fp32:.0f} s; "
              f"from nothing (with the sweep) {total:.0f} s ({total / 60:.1f} min{verdict})")
        print(f"  {t_fp32 / max(profiler.measured, 1) * 1e3:.0f} ms per entry on average")
        if args.dtype == "int8":
            t_int8, q, _ = profile(device, writer, int8_form(model, shape), f"{args.model}-int8", tmp)
            print(f"  int8: {q.measured} LUT entries measured + calibration in {t_int8:.0f} s "
                  f"({t_int8 / max(total, 1):.2f}x the fp32 LUT from nothing; goal < 1x)")
    print("load average (1, 5, 15 min) at the end: " + " ".join(f"{v:.1f}" for v in os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
