"""Time to profile ResNet-18's whole LUT on this host from nothing (goal: under 10 minutes).

Measures into a fresh, temporary LUT: the channel step sweep, the coarse grids, the
refinement rounds and the whole-model calibration — everything `edgeprune profile --device
host --model resnet18` does on a machine that has no LUT yet.

    .venv/bin/python benchmarks/lut_profile_time.py [--model resnet18]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeprune import zoo  # noqa: E402
from edgeprune.devices.open import open_device  # noqa: E402
from edgeprune.frontend.export import export_module  # noqa: E402
from edgeprune.frontend.load import load_model  # noqa: E402
from edgeprune.lut.layers import model_layers  # noqa: E402
from edgeprune.lut.profiler import Profiler  # noqa: E402
from edgeprune.lut.session import open_writer, profile_settings  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="resnet18")
    args = ap.parse_args()
    device = open_device("host")
    with tempfile.TemporaryDirectory(prefix="lut-time-") as tmp:
        tmp = Path(tmp)
        model = load_model(export_module(zoo.get(args.model), zoo.input_shape(args.model), tmp / "m.onnx"))
        layers = model_layers(model)
        t0 = time.monotonic()
        writer, _ = open_writer(device, "ort", tmp / "lut.json")
        t_step = time.monotonic() - t0
        profiler = Profiler(device, writer, profile_settings(device, "ort"), workdir=tmp / "micro")
        profiler.profile_model(model, args.model)
        total = time.monotonic() - t0
        sigs = {l.signature.key for l in layers}
        print(f"{args.model}: {len(layers)} fused layers, {len(sigs)} signatures, channel step "
              f"{writer.lut.channel_step} (sweep {t_step:.0f} s)")
        print(f"  {profiler.measured} LUT entries measured + whole-model calibration in {total:.0f} s "
              f"({total / 60:.1f} min; goal < 10 min) -> {'OK' if total < 600 else 'OVER'}")
        print(f"  {total / max(profiler.measured, 1) * 1e3:.0f} ms per entry on average")
    return 0


if __name__ == "__main__":
    sys.exit(main())
